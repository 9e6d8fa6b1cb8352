"""The HTTP framework the api and the realms share: typed endpoints, the caller, errors, keys."""

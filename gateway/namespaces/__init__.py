"""The gateway's own namespace (users' streams); realms bring the others."""

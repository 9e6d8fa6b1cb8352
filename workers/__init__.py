"""Background workers: notification delivery and the seed's scheduled jobs."""

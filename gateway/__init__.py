"""The realtime WebSocket gateway: auth, channel membership, rate limits, persisted fan-out."""

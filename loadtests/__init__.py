"""Load tests and benchmarks: locust replay, an asyncio harness for raw numbers, seeding."""

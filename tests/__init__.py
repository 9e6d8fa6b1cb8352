"""The test suite: real Postgres, Redis, SMTP and processes (see conftest.py)."""

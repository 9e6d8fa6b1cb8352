"""Command-line tools for people running Switchboard (not a process: nothing imports them).

    python -m tools.demo                          # `make demo`: demo data, logins and tokens
    python -m tools.admin create-admin --email …  # an admin (staff) user of the analyst realm

Unlike gateway/, api/ and workers/, tools may name a realm: each realm's demo data and admin
accounts are written for its own schema (tools/analyst.py)."""

"""Switchboard's shared kernel: configuration, database, migrations, tokens, errors, logging."""

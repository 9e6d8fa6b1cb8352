#!/usr/bin/env bash
# `make test`: the same set-up as `make run`, then the whole pytest suite. Extra args go to pytest.
source "$(dirname "$0")/lib.sh"
ensure_system_packages
ensure_venv
export SWITCHBOARD_SECRET="${SWITCHBOARD_SECRET:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')}"
if [ -z "${DATABASE_URL:-}" ]; then
  # Tests get their own cluster (var/pg-test), tuned for throwaway databases, not durability.
  DATABASE_URL="$(start_private_postgres pg-test "${SB_PG_TEST_PORT:-55433}" \
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")"
  export DATABASE_URL
fi
cd "$ROOT"
# Tests wait on sockets and processes far more than they compute: several workers overlap
# that waiting (each has its own template database, Redis and SMTP sink). SB_TEST_WORKERS=0
# runs in one process.
exec python -m pytest -n "${SB_TEST_WORKERS:-4}" "$@"

#!/usr/bin/env bash
# `make test`: the same set-up as `make run`, then the whole pytest suite. Extra args go to pytest.
# Stops what it started: the test Postgres cluster, unless it was already running (another
# session's) or another `make test` still uses it. Redis, gateways and SMTP sinks belong to the
# pytest fixtures. The exit status is pytest's (5: no tests were collected).
source "$(dirname "$0")/lib.sh"
ensure_system_packages browser
ensure_venv test loadtest
export SWITCHBOARD_SECRET="${SWITCHBOARD_SECRET:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')}"
pg_port="${SB_PG_TEST_PORT:-55433}"
joined=0
finish() {
  local status=$?
  trap - EXIT INT TERM
  if [ "$joined" = 1 ]; then leave_test_postgres "$pg_port" || true; fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ -z "${DATABASE_URL:-}" ]; then
  # Tests get their own cluster (var/pg-test), tuned for throwaway databases, not durability.
  joined=1
  DATABASE_URL="$(join_test_postgres "$pg_port" \
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")"
  export DATABASE_URL
fi
cd "$ROOT"
# Tests wait on sockets and processes far more than they compute: several workers overlap
# that waiting (each has its own template database, Redis and SMTP sink). SB_TEST_WORKERS=0
# runs in one process.
status=0
python -m pytest -n "${SB_TEST_WORKERS:-4}" --dist loadgroup "$@" || status=$?
[ "$status" != 5 ] || say "pytest collected no tests (exit 5): nothing was tested"
exit "$status"

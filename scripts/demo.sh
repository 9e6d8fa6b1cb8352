#!/usr/bin/env bash
# `make demo`: demo data in every enabled realm that has users, then ready-to-use logins,
# access tokens and sign-in links for the demo web app (python -m tools.demo; `--json` too).
# Uses what `make run` uses: its private Postgres cluster (unless DATABASE_URL is set; started
# for the run and stopped again when `make run` is not running) and var/secret.
#   bash scripts/demo.sh                                   # the same as `make demo`
#   bash scripts/demo.sh create-admin --email ops@example.com [--password …]
source "$(dirname "$0")/lib.sh"
ensure_system_packages
ensure_venv run
ensure_secret
started_pg=0
if [ -z "${DATABASE_URL:-}" ]; then
  private_postgres_running pg || started_pg=1
  DATABASE_URL="$(start_private_postgres pg "${SB_PG_PORT:-55432}")"
  export DATABASE_URL
fi
cleanup() {
  [ "$started_pg" = 1 ] && stop_private_postgres pg
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$ROOT"
migrated="$(python -m kernel.migrate 2>&1)" || { echo "$migrated" >&2; exit 1; }
if [ "${1:-}" = create-admin ]; then
  python -m tools.admin "$@"
else
  python -m tools.demo "$@"
fi

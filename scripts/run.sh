#!/usr/bin/env bash
# `make run`: install what is missing, start Postgres, migrate, run the Procfile. Ctrl-C stops all.
source "$(dirname "$0")/lib.sh"
ensure_system_packages
ensure_venv run
ensure_secret
started_pg=0
if [ -z "${DATABASE_URL:-}" ]; then
  DATABASE_URL="$(start_private_postgres pg "${SB_PG_PORT:-55432}")"
  export DATABASE_URL
  started_pg=1
fi
cleanup() {
  [ "$started_pg" = 1 ] && stop_private_postgres pg
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$ROOT"
python -m kernel.migrate
say "gateway  ws://${GATEWAY_HOST:-127.0.0.1}:${GATEWAY_PORT:-8765}/ws  (health /healthz, metrics /metrics)"
say "api      http://${API_HOST:-127.0.0.1}:${API_PORT:-8080}/  (health /healthz, OpenAPI /openapi.json)"
say "worker   notification delivery and scheduled jobs"
say "database $DATABASE_URL"
honcho start -f Procfile

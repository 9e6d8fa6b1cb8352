#!/usr/bin/env bash
# `make race`: Switchboard against python-socketio and Node socket.io, the same workloads side
# by side on this machine; writes loadtests/results/race.json, docs/race.md, docs/img/race-*.png.
# The peers are benchmark tools, not project dependencies: python-socketio goes into .venv
# only, socket.io into loadtests/peers/node/node_modules (ignored by git).
source "$(dirname "$0")/lib.sh"
ensure_system_packages
ensure_venv
mkdir -p "$SB_VAR"
say "installing python-socketio and matplotlib into .venv (benchmark only)"
pip install --disable-pip-version-check "python-socketio>=5.11,<6" matplotlib >"$SB_VAR/race-pip.log" 2>&1 \
  || { tail -n 20 "$SB_VAR/race-pip.log" >&2; say "pip install failed (log: var/race-pip.log)"; exit 1; }
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "installing Debian packages: nodejs npm"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
NODE_DIR="$ROOT/loadtests/peers/node"
stamp="$NODE_DIR/node_modules/.race-$(sha256sum "$NODE_DIR/package-lock.json" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "installing socket.io with npm into loadtests/peers/node/"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  touch "$stamp"
fi
if [ -z "${DATABASE_URL:-}" ]; then
  # The durable cluster of `make run`, as `make bench` uses: Switchboard commits as in production.
  DATABASE_URL="$(start_private_postgres pg "${SB_PG_PORT:-55432}")"
  export DATABASE_URL
fi
cd "$ROOT"
python -m loadtests.race --subscribers 100 500 1000 --messages 200 --senders 20 \
  --rates 250 500 1000 2000 3000 --rooms 100 --members 10 --duration 10

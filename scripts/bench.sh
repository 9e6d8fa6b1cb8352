#!/usr/bin/env bash
# `make bench`: the gateway benchmarks at their documented sizes, then docs/benchmarks.md.
source "$(dirname "$0")/lib.sh"
ensure_system_packages
ensure_venv
pip install -q --disable-pip-version-check matplotlib >/dev/null 2>&1 || say "matplotlib unavailable: no plots"
if [ -z "${DATABASE_URL:-}" ]; then
  # The durable cluster of `make run`: benchmarks commit the way production would.
  DATABASE_URL="$(start_private_postgres pg "${SB_PG_PORT:-55432}")"
  export DATABASE_URL
fi
cd "$ROOT"
python -m loadtests.bench_gateway idle --sockets "${BENCH_SOCKETS:-15000}"
python -m loadtests.bench_gateway fanout --processes 1 --subscribers 100 500 1000 2000 --messages 1000
python -m loadtests.bench_gateway fanout --processes 2 --subscribers 100 500 1000 2000 --messages 1000
python -m loadtests.bench_gateway latency --rates 250 500 1000 1500 2000
python -m loadtests.bench_notifications
python -m loadtests.report

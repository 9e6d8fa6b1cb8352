#!/usr/bin/env bash
# `make loadtest`: a bounded, headless locust run against a running stack (`make run` in another
# terminal), with the population `python -m loadtests.seed` wrote (docs/loadtesting.md).
# Writes loadtests/results/locust_*.csv and loadtests/results/locust.html.
#   LOCUST_USERS (200), LOCUST_SPAWN_RATE (50), LOCUST_RUN_TIME (60s): the run's size
#   API_URL, GATEWAY_URL: the stack (default: make run's addresses, from API_*/GATEWAY_*)
#   LOADTEST_CREDENTIALS: the seed's credentials file; extra arguments go to locust.
source "$(dirname "$0")/lib.sh"
ensure_venv
cd "$ROOT"
API_URL="${API_URL:-http://${API_HOST:-127.0.0.1}:${API_PORT:-8080}}"
GATEWAY_URL="${GATEWAY_URL:-ws://${GATEWAY_HOST:-127.0.0.1}:${GATEWAY_PORT:-8765}/ws}"
CREDENTIALS="${LOADTEST_CREDENTIALS:-loadtests/results/credentials.csv}"
RESULTS="loadtests/results"

if [ ! -s "$CREDENTIALS" ]; then
  say "no $CREDENTIALS: seed the stack's database first, for example"
  say "  DATABASE_URL=postgresql://postgres@127.0.0.1:${SB_PG_PORT:-55432}/switchboard \\"
  say "    .venv/bin/python -m loadtests.seed --users 100000 --analysts 200 --hot-channels 5"
  exit 1
fi
gateway_health="http://${GATEWAY_URL#ws://}"
gateway_health="${gateway_health%%/ws*}/healthz"
for url in "$API_URL/healthz" "$gateway_health"; do
  python - "$url" 2>/dev/null <<'PY' || { say "$url does not answer: start the stack with \`make run\`"; exit 1; }
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=5).read()
PY
done

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true  # one descriptor per socket and HTTP connection
mkdir -p "$RESULTS"
say "locust: ${LOCUST_USERS:-200} users (+${LOCUST_SPAWN_RATE:-50}/s) for ${LOCUST_RUN_TIME:-60s}"
say "  api $API_URL, gateway $GATEWAY_URL, credentials $CREDENTIALS"
status=0
locust -f loadtests/locustfile.py --headless \
  --users "${LOCUST_USERS:-200}" --spawn-rate "${LOCUST_SPAWN_RATE:-50}" \
  --run-time "${LOCUST_RUN_TIME:-60s}" --stop-timeout 10 \
  --host "$API_URL" --gateway-url "$GATEWAY_URL" --credentials "$CREDENTIALS" \
  --csv "$RESULTS/locust" --html "$RESULTS/locust.html" "$@" || status=$?
say "results: $RESULTS/locust_stats.csv, locust_failures.csv, locust_stats_history.csv, locust.html"
[ "$status" = 0 ] || say "locust exited with $status (1: some requests failed, see locust_failures.csv)"
exit "$status"

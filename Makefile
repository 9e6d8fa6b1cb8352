# The two commands: `make run` and `make test`. Everything else is a convenience.
.PHONY: run test lint loadtest bench clean

run:
	@bash scripts/run.sh

test:
	@bash scripts/test.sh $(PYTEST_ARGS)

lint:
	@bash -c 'source scripts/lib.sh && ensure_venv && cd "$$ROOT" && ruff check . && ruff format --check . && mypy'

clean:
	@bash -c 'source scripts/lib.sh && stop_private_postgres pg; stop_private_postgres pg-test; rm -rf var'

# Benchmarks (not tests): figures go to loadtests/results/ and docs/benchmarks.md.
bench:
	@bash scripts/bench.sh

# Locust against a running stack (`make run` in another terminal, seeded first: see
# docs/loadtesting.md): loadtests/results/locust_*.csv and locust.html.
loadtest:
	@bash scripts/loadtest.sh $(LOADTEST_ARGS)

# Side by side against python-socketio and Node socket.io (installs them for the run only):
# loadtests/results/race.json and docs/race.md.
.PHONY: race
race:
	@bash scripts/race.sh

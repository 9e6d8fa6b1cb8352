# The two commands: `make run` and `make test`. Everything else is a convenience.
# Each target installs into .venv the extras it needs, at the versions in constraints-dev.txt.
.PHONY: run test lint constraints loadtest bench race clean demo

run:
	@bash scripts/run.sh

test:
	@bash scripts/test.sh $(PYTEST_ARGS)

# Demo users, channels, messages and a notification in every enabled realm that has users, then
# logins, tokens and sign-in links (run it next to `make run`; again at any time). Admins:
# bash scripts/demo.sh create-admin --email you@example.com
demo:
	@bash scripts/demo.sh $(DEMO_ARGS)

# ruff (lint and format) and mypy, pinned: the same findings on every clone and in CI.
# All three run (every finding in one go); any finding fails the target.
lint:
	@bash -c 'source scripts/lib.sh && ensure_venv dev && cd "$$ROOT" && rc=0 && \
	  { ruff check . || rc=1; } && { ruff format --check . || rc=1; } && { mypy || rc=1; } && exit $$rc'

# Refresh constraints-dev.txt to the newest versions pyproject.toml allows (then lint, test, commit).
constraints:
	@bash -c 'source scripts/lib.sh && write_constraints'

clean:
	@bash -c 'source scripts/lib.sh && stop_private_postgres pg; stop_private_postgres pg-test; rm -rf var'

# Benchmarks (not tests): figures go to loadtests/results/ and docs/benchmarks.md.
# bench_notifications uses the test fakes (aiosmtpd), hence the test extra.
bench:
	@SB_EXTRAS=test bash scripts/bench.sh

# Locust against a running stack (`make run` in another terminal, seeded first: see
# docs/loadtesting.md): loadtests/results/locust_*.csv and locust.html.
loadtest:
	@SB_EXTRAS=loadtest bash scripts/loadtest.sh $(LOADTEST_ARGS)

# Side by side against python-socketio and Node socket.io (installs them for the run only):
# loadtests/results/race.json and docs/race.md.
race:
	@SB_EXTRAS= bash scripts/race.sh

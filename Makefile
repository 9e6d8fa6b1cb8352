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

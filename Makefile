# `make demo` installs everything and runs the main job; `make test` installs everything and runs the tests.
VENV ?= .venv
SCENE ?= falling_objects
OUT ?= out

.PHONY: setup demo test lint bench lock
setup:
	@bash tools/setup.sh

demo: setup
	$(VENV)/bin/rendiff run $(SCENE) -o $(OUT)

test: setup
	$(VENV)/bin/python -m pytest -n 2 -q

lint: setup
	$(VENV)/bin/ruff check .

# Every benchmark in turn (each prints its table and writes benchmarks/results/*.json).
bench: setup
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

# Newest releases in a new venv, the whole suite, then tools/requirements.lock (commit it after).
lock:
	@bash tools/lock.sh

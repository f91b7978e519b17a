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

bench: setup
	$(VENV)/bin/python benchmarks/run_all.py

# Newest releases in a new venv, the whole suite, then tools/requirements.lock (commit it after).
lock:
	@bash tools/lock.sh

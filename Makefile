# The two entry points README promises: `make demo` and `make test`. Both set the machine up first.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint unit bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m pytcp_green demo

lint: setup
	$(VENV)/bin/ruff check pytcp_green tests bench examples
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q -rs

unit: setup
	$(PY) -m pytest -q -m "not lab"

bench: setup
	$(PY) bench/all.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache

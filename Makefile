# The two commands of the README: `make demo` and `make test`. Both set up the
# virtual environment from pyproject.toml first (once).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
REFERRALS ?= 200

.PHONY: demo test lint asyncapi setup clean

$(BIN)/aiguillage: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/aiguillage

demo: setup
	$(BIN)/aiguillage demo --referrals $(REFERRALS)

# The fault suite breaks the broker and the database on purpose: it runs after the
# others, alone.
test: setup
	$(BIN)/pytest -m "not faults"
	$(BIN)/pytest -m faults tests/faults

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

asyncapi: setup
	$(BIN)/aiguillage asyncapi --output docs/asyncapi.yaml

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache

# The two commands of the README: `make demo` and `make test`. Both set up the
# virtual environment from pyproject.toml first (once).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
REFERRALS ?= 200

.PHONY: demo test test-cluster lint asyncapi screenshots docs setup clean

$(BIN)/aiguillage: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

# axe-core, which the browser tests inject in every page of the console (npm, from
# tests/browser/package-lock.json; node_modules is not committed). Without npm the
# rest installs, and the browser tests say that axe-core is missing.
AXE := tests/browser/node_modules/axe-core/axe.min.js

$(AXE): tests/browser/package.json tests/browser/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: axe-core not installed (the browser tests need it)"; fi

setup: $(BIN)/aiguillage $(AXE)

demo: setup
	$(BIN)/aiguillage demo --referrals $(REFERRALS)

# The fault suite breaks the broker and the database on purpose, and the "alone" tests
# compare latencies (another worker on the same cores would be what they measure): they
# run after the others, one at a time.
test: setup
	$(BIN)/pytest -m "not faults and not alone" -n 2 --durations=15
	$(BIN)/pytest -m "faults or alone" --durations=10 tests/faults tests/e2e

# The cluster tests alone (part of `make test` too): a three-node RabbitMQ cluster started
# locally, two replicas of every service, a node lost mid-burst (about 3 minutes).
test-cluster: setup
	$(BIN)/pytest -m cluster tests/faults

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	# bench/ is scripts, not a package: they import each other from their folder.
	MYPYPATH=bench $(BIN)/mypy bench/*.py

# The console's three pages at the end of the Île-de-France scenario.
screenshots: setup
	$(BIN)/aiguillage demo --scenario idf-2020-03 --speed 10 --no-watch --console-port 0 \
		--screenshots docs/screenshots

asyncapi: setup
	$(BIN)/aiguillage asyncapi --output docs/asyncapi.yaml

# The documentation site into site/ (not committed); `$(BIN)/mkdocs serve` to read it live.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) data site .pytest_cache .mypy_cache .ruff_cache

# The README's two commands are `make demo` (the main job) and `make test` (the test suite).
# Both install what they need first (scripts/install.sh is idempotent: seconds on a second run).
VENV := .venv/bin
STACK ?= both

.PHONY: install install-test demo test test-fast lint

install:
	scripts/install.sh

install-test:
	scripts/install.sh --test

CAMPAIGN ?= examples/demo-batio3.yaml

demo: install
	$(VENV)/aiida-perovskite setup
	$(VENV)/aiida-perovskite campaign run $(CAMPAIGN) --report demo-report

test: install-test
	scripts/run-tests.sh $(STACK)

test-fast: install-test
	PEROVSKITE_TEST_STACK=embedded $(VENV)/pytest -m "not slow" -x -q

lint: install
	$(VENV)/ruff check . && $(VENV)/ruff format --check .


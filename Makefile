# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast test-integration test-system test-e2e bench clean venv simulate

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	SANZHANG_DEMO=1 SANZHANG_COOKIE_SECURE=$${SANZHANG_COOKIE_SECURE:-0} $(BIN)/sanzhang run

# The whole suite (what CI runs): every tier.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The unit tier alone: pure rules and services with fakes, under a minute; run it after each change.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

test-system: $(STAMP)
	$(BIN)/python -m pytest tests/system $(PYTEST_ARGS)

test-e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

# A year of a Shaoshan-sized city through the real code under virtual time (docs/simulation.md).
# SIMULATE_ARGS="--preset township --days 30 --intensity 10" for a quick one; --compare policy.json for a what-if.
simulate: $(STAMP)
	$(BIN)/sanzhang simulate --out simulation $(SIMULATE_ARGS)

clean:
	rm -rf $(VENV) data

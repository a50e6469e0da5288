# Two entry points for a fresh machine: `make plan` and `make test`. Both create .venv if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STACK ?= dev

PLAN_ARGS ?=

.PHONY: install policy-install plan test lint typecheck unit bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

# The policy pack's own virtualenv (PulumiPolicy.yaml: virtualenv venv).
policy-install:
	test -x policy/venv/bin/python || $(PYTHON) -m venv policy/venv
	policy/venv/bin/python -m pip install --quiet -r policy/requirements.txt

plan: $(STAMP)
	$(BIN)/floe secrets plan --stack $(STACK) $(PLAN_ARGS)

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check floe_infra tests bench policy tools __main__.py

typecheck: $(STAMP)
	$(BIN)/mypy --strict floe_infra policy/floe_policies.py

unit: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/program_scale.py
	$(BIN)/python bench/provider_requests.py
	$(BIN)/python bench/cli.py

clean:
	rm -rf $(VENV) policy/venv .pytest_cache .mypy_cache .ruff_cache build *.egg-info

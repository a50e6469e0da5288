# Two entry points for a fresh machine: `make plan` and `make test`. Both create .venv if needed.
# Two virtualenvs: venv/ is the Pulumi program's runtime (Pulumi.yaml), requirements.txt only;
# .venv/ adds the test and lint tools (requirements-dev.txt).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNTIME_STAMP := venv/.installed
STACK ?= dev

PLAN_ARGS ?=

.PHONY: install runtime policy-install plan test lint typecheck unit docs bench fuzz clean tools tools-cold tools-bin cluster cluster-down e2e demo demo-down

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

$(RUNTIME_STAMP): requirements.txt pyproject.toml
	test -x venv/bin/python || $(PYTHON) -m venv venv
	venv/bin/python -m pip install --quiet --upgrade pip
	venv/bin/python -m pip install --quiet -r requirements.txt
	touch $(RUNTIME_STAMP)

install: $(STAMP)

# What `pulumi preview/up` runs the program with.
runtime: $(RUNTIME_STAMP)

# The policy pack's own virtualenv (PulumiPolicy.yaml: virtualenv venv).
policy-install:
	test -x policy/venv/bin/python || $(PYTHON) -m venv policy/venv
	policy/venv/bin/python -m pip install --quiet -r policy/requirements.txt

plan: $(STAMP)
	$(BIN)/floe secrets plan --stack $(STACK) $(PLAN_ARGS)

test: lint typecheck unit docs

lint: $(STAMP)
	$(BIN)/ruff check floe_infra tests bench policy tools __main__.py
	$(BIN)/ruff format --check floe_infra tests bench policy tools __main__.py
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy --strict floe_infra policy/floe_policies.py
	# tests and benches too; the e2e suite has a conftest.py of its own, so it is checked apart
	MYPYPATH=tests:tools:policy $(BIN)/mypy --strict --explicit-package-bases tests/*.py \
		bench/cli.py bench/program_scale.py bench/provider_requests.py
	MYPYPATH=tests:tools $(BIN)/mypy --strict --explicit-package-bases tests/e2e/*.py \
		bench/engine_scale.py bench/sync_latency.py bench/operator_load.py tools/harness tools/demo.py tools/e2e.py

unit: $(STAMP)
	$(BIN)/pytest

# The docs site (mkdocs.yml, docs/), strict: a broken link or anchor fails; tests/test_docs.py checks the text.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir build/site

# The real engine, providers and control plane, built from Go modules (tools/build.sh), cached in
# $${FLOE_TOOLS:-~/.cache/floe-tools}/<key>/bin outside the tree.
tools:
	tools/build.sh

tools-bin:
	@tools/build.sh --dir

# The same build as a new machine does it: empty Go module cache, build cache and tools dir (in a
# scratch dir, removed afterwards); the result is installed where `make tools` puts it.
tools-cold:
	tools/build.sh --cold

# The main job end to end on local defaults: local cluster, the real Infisical server, the operator,
# `pulumi up` of a demo stack of the example manifest, then `floe secrets status`.
# AUTH=kubernetes: the operator logs in with a ServiceAccount token (Infisical Kubernetes Auth).
AUTH ?= universal
demo: $(STAMP) $(RUNTIME_STAMP)
	$(if $(filter-out universal kubernetes,$(AUTH)),$(error AUTH is $(AUTH): use universal or kubernetes))
	$(BIN)/python tools/demo.py up $(if $(filter kubernetes,$(AUTH)),--kubernetes-auth)

demo-down: $(STAMP)
	$(BIN)/python tools/demo.py down

# A control plane on 127.0.0.1 that stays up; kubeconfig in .local-cluster/kubeconfig.
cluster: tools
	$(PYTHON) tools/harness/cluster.py up .local-cluster "$$(tools/build.sh --dir)"

cluster-down:
	$(PYTHON) tools/harness/cluster.py down .local-cluster

# The program under the real CLI against a cluster and Infisical that the tests start and stop: the
# modules in two groups at once, each on a cluster of its own (tools/e2e.py; output marked [a]/[b]).
# -vv over pyproject's -q: a line per step as it ends.
e2e: $(STAMP) $(RUNTIME_STAMP) tools policy-install
	FLOE_E2E_STRICT=1 $(BIN)/python tools/e2e.py -m e2e -p no:cacheprovider -vv --durations=20

# Generated manifests through `floe secrets plan` for MINUTES (not part of `make test`).
MINUTES ?= 10
fuzz: $(STAMP)
	$(BIN)/python tests/fuzz_manifest.py --minutes $(MINUTES)

bench: $(STAMP)
	$(BIN)/python bench/program_scale.py
	$(BIN)/python bench/provider_requests.py
	$(BIN)/python bench/cli.py

clean:
	rm -rf $(VENV) venv policy/venv .pytest_cache .mypy_cache .ruff_cache build *.egg-info

# The verbs a person types. Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAM_VENV ?= .sam-venv
CHECKOV_VENV ?= .checkov-venv
STACK ?= activation-dev

.PHONY: install demo test test-suite test-fast lint scan soak soak-snapshots bench schemas template build validate deploy clean sam-local sam-base-image test-sam-local

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Run the whole stack on this machine (moto + fake vendors), publish the sample events, print outcomes.
demo: $(STAMP)
	$(PY) -m local.demo

## Lint, type-check, scan the template and run the whole test suite, all at once: the suite on two
## workers (PYTEST_WORKERS), lint and scan beside it, each printed whole when it ends (the suite's output
## streams and its summary closes the output); any failure fails make test. docs/decisions.md "make test
## in parallel".
PYTEST_WORKERS ?= 2

test: $(STAMP)
	$(MAKE) --no-print-directory -j 3 --output-sync=target lint scan test-suite

# `+`: the suite's output is not held back by --output-sync (it streams, as in a plain pytest run).
# loadfile: a module's tests share one worker, so a module-scoped local stack starts once.
test-suite: $(STAMP)
	+$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

test-fast: $(STAMP)
	$(PY) -m pytest -q tests/unit tests/contract

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy layers/activation_core/activation_core functions local activation_cli tests

## Infrastructure-as-code scan of template.yaml (checkov, in its own venv: its pins clash with the
## project's). Accepted findings and their reasons: .checkov.yaml; any other finding fails.
$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet "checkov==3.3.30"

scan: $(CHECKOV_VENV)/bin/checkov
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml

## Soak: 10,000 events through every destination with ~20% injected vendor faults (not in make test).
soak: $(STAMP)
	SOAK_EVENTS=$${SOAK_EVENTS:-10000} SOAK_REPORT=soak-report.json $(PY) -m pytest -q tests/integration/test_soak.py

## Audience snapshots at 10,000 members through the local stack (a backfill, a 10%/10% diff, a CLI push,
## two interrupted runs): delivered + skipped + rejected = members per instance. About 80 min: the run
## sends Outreach ~12,000 PATCHes and its user may make 10,000 an hour, so the backfill's last prospects
## wait for the hour's reset (docs/snapshots.md); not in make test (the same tests at 200 members).
soak-snapshots: $(STAMP)
	SNAPSHOT_MEMBERS=$${SNAPSHOT_MEMBERS:-10000} $(PY) -m pytest -q tests/integration/test_snapshots_e2e.py

## Benchmarks (never part of make test); writes BENCHMARKS.md and docs/capacity.md (the cost model).
bench: $(STAMP)
	$(PY) -m tests.bench.run

## Regenerate shared/schemas/ from the pydantic models.
schemas: $(STAMP)
	$(PY) local/schemas.py
	$(PY) -m activation_cli.docs

## Rewrite template.yaml's per-destination blocks from functions/destinations.json (a test fails when
## they differ).
template: $(STAMP)
	$(PY) -m local.template_blocks

# ---- AWS: the SAM CLI lives in its own venv (its pins clash with the project's).
$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli

validate: $(SAM_VENV)/bin/sam
	$(SAM_VENV)/bin/sam validate --lint --region us-east-1

build: $(SAM_VENV)/bin/sam
	PATH="$(abspath $(SAM_VENV))/bin:$$PATH" $(SAM_VENV)/bin/sam build

# ---- SAM local (needs a Docker daemon; README "SAM local"). SAM_ARCH: x86_64 runs natively here,
# arm64 (what AWS runs) needs qemu-user-static; see docs/decisions.md.
SAM_ARCH ?= x86_64

## The Lambda base image SAM runs functions on, built from Debian packages when it is not there.
sam-base-image: $(STAMP) $(SAM_VENV)/bin/sam
	$(PY) -m local.sam_local.base_image ensure --arch $(SAM_ARCH)

## Every function in `sam local invoke` against the local stack, checked against the local runner.
sam-local: $(STAMP) $(SAM_VENV)/bin/sam
	$(PY) -m local.sam_local.run --arch $(SAM_ARCH)

## The SAM local smoke test (pytest; skipped with the reason where Docker is absent). CI's own step.
test-sam-local: $(STAMP) $(SAM_VENV)/bin/sam
	ACTIVATION_SAM_LOCAL=1 SAM_ARCH=$(SAM_ARCH) $(PY) -m pytest -q tests/integration/test_sam_local.py

deploy: build
	$(SAM_VENV)/bin/sam deploy --config-env $(if $(ENV),$(ENV),default)

clean:
	rm -rf .aws-sam .local-stack .pytest_cache .mypy_cache .ruff_cache

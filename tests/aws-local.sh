#!/usr/bin/env bash
# Runs a command with a local AWS stand-in (moto's server mode: DynamoDB and SSM Parameter Store)
# on a free loopback port, exporting the standard AWS variables that point the SDK at it, and
# stops the server afterwards. Usage: tests/aws-local.sh <command...>
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/moto_server ]; then
  echo "moto_server is missing: run 'make .venv/.installed' (make test does)" >&2
  exit 1
fi
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p .local
.venv/bin/python tests/moto_server.py 127.0.0.1 "$port" >.local/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port" AWS_ENDPOINT_URL_SSM="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1
# Failures must surface quickly in tests; production keeps the SDK's default retries.
export AWS_MAX_ATTEMPTS="${AWS_MAX_ATTEMPTS:-2}"
echo "moto server on $AWS_ENDPOINT_URL_DYNAMODB (log: .local/moto.log)"
"$@"

"""`make run` on DynamoDB: tokenctl creates the table, imports the seed, adds a client there,
and `tokenctl serve` with TABLE_NAME issues tokens from it."""

import os
import subprocess
import uuid

import pytest
from authlib.integrations.requests_client import OAuth2Session

from conftest import DEMO_CLIENT, ROOT, TOKENCTL


def tokenctl(*args, stdin=None):
    result = subprocess.run([str(TOKENCTL), *args], cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def table():
    if not os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        pytest.fail("needs a local DynamoDB: run through `make test` or tests/aws-local.sh")
    name = f"serve-{uuid.uuid4().hex[:12]}"
    tokenctl("create-table", "--table", name)
    tokenctl("import-seed", "--table", name, "--seed", "local/seed.toml", "--allow-plaintext")
    return name


def test_serve_issues_tokens_from_a_dynamodb_table(start_server, table):
    server = start_server(extra_env={"TABLE_NAME": table})
    assert any(f"DynamoDB table {table}" in line for line in server.output)
    token_url = f"{server.url}/oauth2/token"
    token = OAuth2Session(*DEMO_CLIENT).fetch_token(token_url, grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    login = OAuth2Session(*DEMO_CLIENT).fetch_token(
        token_url, grant_type="password", username="alice", password="alice-demo-password"
    )
    assert login["refresh_token"]


def test_clients_and_users_added_to_the_table_can_sign_in(start_server, table):
    out = tokenctl("add-client", "--table", table, "--id", "py-app", "--tenant", "/acme",
                   "--grants", "client_credentials,password", "--scopes", "read")
    secret = next(line.split()[-1] for line in out.splitlines() if line.startswith("client_secret:"))
    tokenctl("add-user", "--table", table, "--tenant", "/acme", "--username", "zoe", stdin="zoe-password-123\n")
    server = start_server(extra_env={"TABLE_NAME": table})
    token_url = f"{server.url}/oauth2/token"
    assert OAuth2Session("py-app", secret).fetch_token(token_url, grant_type="client_credentials")["scope"] == "read"
    login = OAuth2Session("py-app", secret).fetch_token(
        token_url, grant_type="password", username="zoe", password="zoe-password-123"
    )
    assert login["access_token"]

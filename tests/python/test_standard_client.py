"""`make run`'s server, driven by a standard OAuth2 client library (Authlib) and checked with an
independent JOSE implementation (PyJWT), neither of which shares code with the server."""

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from conftest import DEMO_CLIENT


def discover(url):
    metadata = requests.get(f"{url}/.well-known/oauth-authorization-server", timeout=10).json()
    assert metadata["issuer"] == url
    return metadata


def verify(token, metadata, alg):
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == alg
    signing_key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key(header["kid"])
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=[alg],
        audience="api",
        issuer=metadata["issuer"],
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_standard_client_fetches_a_token_that_verifies_against_the_jwks(start_server, alg, auth_method):
    server = start_server(alg)
    metadata = discover(server.url)
    assert auth_method in metadata["token_endpoint_auth_methods_supported"]
    client = OAuth2Session(*DEMO_CLIENT, token_endpoint_auth_method=auth_method, scope="read write")
    token = client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")

    assert token["token_type"] == "Bearer"
    assert token["scope"] == "read write"
    claims = verify(token["access_token"], metadata, alg)
    assert claims["sub"] == claims["client_id"] == DEMO_CLIENT[0]
    assert claims["tenant"] == "/acme"
    assert claims["scope"] == "read write"
    assert claims["exp"] - claims["iat"] == token["expires_in"]


def test_tampered_token_fails_independent_verification(start_server):
    server = start_server()
    metadata = discover(server.url)
    token = OAuth2Session(*DEMO_CLIENT).fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    head, payload, signature = token["access_token"].split(".")
    forged = f"{head}.{payload[:-2]}AA.{signature}"
    with pytest.raises(jwt.InvalidTokenError):
        verify(forged, metadata, "ES256")


def test_signing_key_survives_a_restart(start_server, tmp_path):
    keys_file = tmp_path / "persisted-keys.json"
    first = start_server(keys_file=keys_file)
    metadata = discover(first.url)
    token = OAuth2Session(*DEMO_CLIENT).fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert first.interrupt()[0] == 0
    assert oct(keys_file.stat().st_mode & 0o777) == "0o600"

    second = start_server(keys_file=keys_file)
    # Same key, so the old token still verifies; the issuer differs with the new port.
    jwks = requests.get(f"{second.url}/.well-known/jwks.json", timeout=10).json()
    kid = jwt.get_unverified_header(token["access_token"])["kid"]
    assert kid in [key["kid"] for key in jwks["keys"]]


def test_changing_the_algorithm_rotates_and_keeps_the_old_key(start_server, tmp_path):
    keys_file = tmp_path / "rotating-keys.json"
    first = start_server("ES256", keys_file=keys_file)
    old_kid = requests.get(f"{first.url}/.well-known/jwks.json", timeout=10).json()["keys"][0]["kid"]
    first.interrupt()
    second = start_server("EdDSA", keys_file=keys_file)
    keys = requests.get(f"{second.url}/.well-known/jwks.json", timeout=10).json()["keys"]
    assert keys[0]["alg"] == "EdDSA"
    assert old_kid in [key["kid"] for key in keys[1:]]


def test_startup_prints_the_url_and_demo_credentials(start_server):
    server = start_server()
    banner = "\n".join(server.output)
    assert server.url.startswith("http://127.0.0.1:")
    assert f"{server.url}/oauth2/token" in banner
    assert f"client {DEMO_CLIENT[0]} secret {DEMO_CLIENT[1]}" in banner


def test_ctrl_c_stops_the_server_cleanly(start_server):
    server = start_server()
    code, rest = server.interrupt()
    assert code == 0
    assert "stopped" in rest
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/.well-known/jwks.json", timeout=2)


def test_port_comes_from_the_environment(start_server):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = start_server(extra_env={"PORT": str(port)}, args=())
    assert server.url == f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_seed_file_comes_from_the_flag_or_the_environment(start_server, tmp_path, how):
    seed = tmp_path / "other-seed.toml"
    seed.write_text(
        '[[tenants]]\npath = "/globex"\n\n'
        '[[clients]]\nid = "globex-app"\nsecret = "globex-secret-for-this-test-only-0123"\n'
        'tenant = "/globex"\ngrants = ["client_credentials"]\nscopes = ["read"]\n'
        "max_access_token_lifetime = 60\n"
    )
    if how == "flag":
        server = start_server(args=("--port", "0", "--seed", str(seed)))
    else:
        server = start_server(extra_env={"SEED_FILE": str(seed)})
    token_url = f"{server.url}/oauth2/token"
    token = OAuth2Session("globex-app", "globex-secret-for-this-test-only-0123").fetch_token(
        token_url, grant_type="client_credentials"
    )
    assert verify(token["access_token"], discover(server.url), "ES256")["tenant"] == "/globex"
    refused = requests.post(token_url, data={"grant_type": "client_credentials"}, auth=DEMO_CLIENT, timeout=10)
    assert refused.status_code == 401, "the default seed's demo client is not loaded"

"""Key-bound clients and tokens, driven by independent libraries: `private_key_jwt` client
authentication (RFC 7523) through Authlib's own `PrivateKeyJWT`, and DPoP (RFC 9449) with proofs
built by hand with PyJWT and `cryptography`, the key thumbprint (RFC 7638) computed here too."""

import base64
import hashlib
import json
import time
import uuid

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey, OKPKey, RSAKey

from conftest import DEMO_CLIENT
from test_standard_client import discover, verify

ASSERTION_LIFETIME = 120  # the server accepts an exp at most 300 s ahead
KEY_CLIENT = "signer"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def generate_key(alg):
    if alg == "ES256":
        return ECKey.generate_key("P-256")
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519")
    return RSAKey.generate_key(2048)


def key_client_seed(tmp_path, public_jwk, **extra):
    """A seed with one private_key_jwt client registered with `public_jwk`, and its tenant."""
    settings = "".join(f"{name} = {json.dumps(value)}\n" for name, value in extra.items())
    seed = tmp_path / "key-client-seed.toml"
    seed.write_text(
        '[[tenants]]\npath = "/acme"\n\n'
        f'[[clients]]\nid = "{KEY_CLIENT}"\ntenant = "/acme"\n'
        'grants = ["client_credentials"]\nscopes = ["read"]\nmax_access_token_lifetime = 600\n'
        'token_endpoint_auth_method = "private_key_jwt"\n'
        f"jwks = '''{json.dumps({'keys': [public_jwk]})}'''\n{settings}"
    )
    return seed


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's PrivateKeyJWT with an `exp` the server accepts. Its default lifetime is an hour,
    and the `claims` it is given are one dict that its signing adds a `jti` to: given once, every
    later assertion would repeat the first one's jti (a replay). So each signing gets fresh ones."""

    def sign(self, auth, token_endpoint):
        self.claims = {"exp": int(time.time()) + ASSERTION_LIFETIME}
        return super().sign(auth, token_endpoint)


def key_session(private_key, alg, kid="k1", audience=None):
    auth = ShortLivedPrivateKeyJWT(token_endpoint=audience, headers={"kid": kid}, alg=alg)
    return OAuth2Session(
        KEY_CLIENT,
        private_key,
        token_endpoint_auth_method=auth,
        revocation_endpoint_auth_method=auth,
        scope="read",
    )


@pytest.fixture
def key_server(start_server, tmp_path):
    """A server whose seed registers a fresh key of `alg` for the client `signer`."""

    def start(alg="ES256", **seed_settings):
        private_key = generate_key(alg)
        public_jwk = {**private_key.as_dict(private=False), "kid": "k1", "alg": alg}
        seed = key_client_seed(tmp_path, public_jwk, **seed_settings)
        server = start_server(args=("--port", "0", "--seed", str(seed)))
        return server, private_key

    return start


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256", "PS256"])
def test_authlib_private_key_jwt_fetches_revokes_and_introspects(key_server, alg):
    server, private_key = key_server(alg)
    metadata = discover(server.url)
    for endpoint in ("token", "revocation", "introspection"):
        assert "private_key_jwt" in metadata[f"{endpoint}_endpoint_auth_methods_supported"]
        assert alg in metadata[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]
    client = key_session(private_key, alg)

    token = client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    claims = verify(token["access_token"], metadata, "ES256")
    assert claims["sub"] == claims["client_id"] == KEY_CLIENT
    assert claims["tenant"] == "/acme"
    assert claims["scope"] == "read"

    # Each call signs a new assertion, its aud the URL of the endpoint it goes to.
    introspected = client.introspect_token(metadata["introspection_endpoint"], token=token["access_token"])
    assert introspected.status_code == 200, introspected.text
    assert introspected.json()["active"] is True
    assert introspected.json()["client_id"] == KEY_CLIENT

    revoked = client.revoke_token(metadata["revocation_endpoint"], token=token["access_token"])
    assert revoked.status_code == 200, revoked.text
    after = client.introspect_token(metadata["introspection_endpoint"], token=token["access_token"])
    assert after.status_code == 200, after.text
    assert after.json() == {"active": False}


def test_an_assertion_for_the_issuer_is_accepted_and_its_jti_only_once(key_server):
    server, private_key = key_server()
    metadata = discover(server.url)
    # The issuer is the other audience the server accepts, at every endpoint.
    client = key_session(private_key, "ES256", audience=metadata["issuer"])
    token = client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert verify(token["access_token"], metadata, "ES256")["client_id"] == KEY_CLIENT

    now = int(time.time())
    claims = {"iss": KEY_CLIENT, "sub": KEY_CLIENT, "aud": metadata["issuer"], "jti": str(uuid.uuid4())}
    assertion = jwt.encode(
        {**claims, "iat": now, "exp": now + 60},
        private_key.as_pem(private=True),
        algorithm="ES256",
        headers={"kid": "k1"},
    )
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    first = requests.post(metadata["token_endpoint"], data=form, timeout=10)
    assert first.status_code == 200, first.text
    replayed = requests.post(metadata["token_endpoint"], data=form, timeout=10)
    assert (replayed.status_code, replayed.json()["error"]) == (401, "invalid_client")


@pytest.mark.parametrize(
    "audience",
    ["https://elsewhere.example/oauth2/token", "{issuer}/oauth2/revoke"],
    ids=["another-server", "another-endpoint"],
)
def test_an_assertion_for_another_audience_is_invalid_client(key_server, audience):
    server, private_key = key_server()
    metadata = discover(server.url)
    client = key_session(private_key, "ES256", audience=audience.format(issuer=metadata["issuer"]))
    statuses = []
    client.hooks["response"].append(lambda response, *args, **kwargs: statuses.append(response.status_code))
    with pytest.raises(OAuthError) as refused:
        client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert refused.value.error == "invalid_client"
    assert statuses == [401]


def test_an_assertion_with_an_unregistered_kid_or_a_lifetime_over_300_s_is_invalid_client(key_server):
    server, private_key = key_server()
    token_url = f"{server.url}/oauth2/token"
    for kid, lifetime in [("k2", 60), ("k1", 3600)]:
        now = int(time.time())
        assertion = jwt.encode(
            {"iss": KEY_CLIENT, "sub": KEY_CLIENT, "aud": token_url, "jti": str(uuid.uuid4()),
             "exp": now + lifetime},
            private_key.as_pem(private=True),
            algorithm="ES256",
            headers={"kid": kid},
        )
        response = requests.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
            timeout=10,
        )
        assert (response.status_code, response.json()["error"]) == (401, "invalid_client"), (kid, lifetime)


class DpopKey:
    """A P-256 key and DPoP proofs signed with it (RFC 9449 §4.2), built here by hand."""

    def __init__(self):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.private_key.public_key().public_numbers()
        self.jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }

    @property
    def thumbprint(self):
        """RFC 7638 §3: SHA-256 of the required members, in lexicographic order, no whitespace."""
        required = {name: self.jwk[name] for name in ("crv", "kty", "x", "y")}
        canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
        return b64url(hashlib.sha256(canonical.encode()).digest())

    def proof(self, url, access_token=None, method="POST", iat=None):
        claims = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": iat or int(time.time())}
        if access_token is not None:
            claims["ath"] = b64url(hashlib.sha256(access_token.encode()).digest())
        headers = {"typ": "dpop+jwt", "jwk": self.jwk}
        return jwt.encode(claims, self.private_key, algorithm="ES256", headers=headers)


def dpop_token(url, key, proof=None):
    return requests.post(
        f"{url}/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "read"},
        auth=DEMO_CLIENT,
        headers={"DPoP": proof or key.proof(f"{url}/oauth2/token")},
        timeout=10,
    )


def introspect(url, token):
    response = requests.post(f"{url}/oauth2/introspect", data={"token": token}, auth=DEMO_CLIENT, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def assert_bad_proof(response, status=400):
    """400 at the token endpoint (RFC 9449 §5); 401 with a DPoP challenge at a protected route
    (§7.1)."""
    assert response.status_code == status, response.text
    assert response.json()["error"] == "invalid_dpop_proof"
    assert response.headers["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"')


def test_a_dpop_proof_binds_the_token_to_its_key(start_server):
    server = start_server()
    metadata = discover(server.url)
    assert "ES256" in metadata["dpop_signing_alg_values_supported"]
    key = DpopKey()

    response = dpop_token(server.url, key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    claims = verify(body["access_token"], metadata, "ES256")
    assert claims["cnf"] == {"jkt": key.thumbprint}

    introspected = introspect(server.url, body["access_token"])
    assert introspected["active"] is True
    assert introspected["token_type"] == "DPoP"
    assert introspected["cnf"] == {"jkt": key.thumbprint}


def test_a_replayed_or_wrong_proof_is_an_invalid_dpop_proof(start_server):
    server = start_server()
    key = DpopKey()
    token_url = f"{server.url}/oauth2/token"
    proof = key.proof(token_url)
    assert dpop_token(server.url, key, proof).status_code == 200
    assert_bad_proof(dpop_token(server.url, key, proof))

    for wrong in [
        key.proof(f"{server.url}/oauth2/revoke"),
        key.proof(token_url, method="GET"),
        key.proof(token_url, iat=int(time.time()) - 600),
    ]:
        assert_bad_proof(dpop_token(server.url, key, wrong))


def test_a_bound_token_revokes_itself_with_a_proof_and_not_as_a_bearer_token(start_server):
    server = start_server()
    key = DpopKey()
    token = dpop_token(server.url, key).json()["access_token"]
    revoke_url = f"{server.url}/oauth2/revoke"

    as_bearer = requests.post(revoke_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert as_bearer.status_code == 401, as_bearer.text
    assert as_bearer.json()["error"] == "invalid_token"
    assert introspect(server.url, token)["active"] is True

    # A proof without ath, or by another key, does not do it either.
    for proof in [key.proof(revoke_url), DpopKey().proof(revoke_url, access_token=token)]:
        headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
        assert_bad_proof(requests.post(revoke_url, headers=headers, timeout=10), status=401)
    assert introspect(server.url, token)["active"] is True

    revoked = requests.post(
        revoke_url,
        headers={"Authorization": f"DPoP {token}", "DPoP": key.proof(revoke_url, access_token=token)},
        timeout=10,
    )
    assert revoked.status_code == 200, revoked.text
    assert introspect(server.url, token) == {"active": False}


def test_a_client_registered_for_bound_tokens_needs_a_proof(key_server):
    server, private_key = key_server(dpop_bound_access_tokens=True)
    metadata = discover(server.url)
    client = key_session(private_key, "ES256")
    statuses = []
    client.hooks["response"].append(lambda response, *args, **kwargs: statuses.append(response.status_code))
    with pytest.raises(OAuthError) as refused:
        client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert (statuses, refused.value.error) == ([400], "invalid_dpop_proof")

    key = DpopKey()
    token = client.fetch_token(
        metadata["token_endpoint"],
        grant_type="client_credentials",
        headers={
            "DPoP": key.proof(metadata["token_endpoint"]),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )
    assert token["token_type"] == "DPoP"
    assert verify(token["access_token"], metadata, "ES256")["cnf"] == {"jkt": key.thumbprint}

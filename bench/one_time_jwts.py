"""Pre-signed, one-time JWTs for the load test (bench/run.sh with bench/one_time.lua): wrk's Lua
cannot sign, and the server accepts each client assertion's and each DPoP proof's jti only once.

  one_time_jwts.py client --key KEY.pem --id ID --tenant PATH
      generates an ES256 key (KEY.pem, private) and prints a seed [[clients]] entry registering
      its public key for private_key_jwt
  one_time_jwts.py assertions --key KEY.pem --id ID --aud URL --count N --out FILE
      N token request bodies (client_credentials, private_key_jwt), one a line
  one_time_jwts.py dpop --htu URL --count N --out FILE
      N DPoP proofs for POST to URL, one a line, all by one key generated here

Signed on every core with `cryptography`; the first line of each file is checked with PyJWT. An
assertion's exp is 300 s (the server's limit) after it is signed, a proof's iat the moment it is
signed (the server accepts 60 s either way): use them straight away.
"""

import argparse
import base64
import json
import os
import secrets
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ASSERTION_TYPE = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
ASSERTION_LIFETIME = 300
KID = "bench-k1"
CHUNK = 5000


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value):
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def public_jwk(private_key):
    numbers = private_key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }


def es256(private_key, header, claims):
    signing_input = f"{header}.{segment(claims)}"
    r, s = decode_dss_signature(private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def sign_chunk(pem, kind, count, options):
    """`count` lines of `kind`: runs in a worker process."""
    private_key = serialization.load_pem_private_key(pem, password=None)
    lines = []
    if kind == "assertions":
        header = segment({"alg": "ES256", "typ": "JWT", "kid": KID})
        for _ in range(count):
            now = int(time.time())
            claims = {
                "iss": options["id"],
                "sub": options["id"],
                "aud": options["aud"],
                "jti": secrets.token_urlsafe(18),
                "iat": now,
                "exp": now + ASSERTION_LIFETIME,
            }
            assertion = es256(private_key, header, claims)
            lines.append(
                "grant_type=client_credentials"
                f"&client_assertion_type={ASSERTION_TYPE}&client_assertion={assertion}"
            )
    else:
        header = segment({"alg": "ES256", "typ": "dpop+jwt", "jwk": public_jwk(private_key)})
        for _ in range(count):
            claims = {
                "jti": secrets.token_urlsafe(18),
                "htm": "POST",
                "htu": options["htu"],
                "iat": int(time.time()),
            }
            lines.append(es256(private_key, header, claims))
    return lines


def write_signed(kind, private_key, count, out, options):
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    started = time.monotonic()
    chunks = [min(CHUNK, count - start) for start in range(0, count, CHUNK)]
    with ProcessPoolExecutor(os.cpu_count()) as pool, open(out, "w") as file:
        for lines in pool.map(sign_chunk, *zip(*[(pem, kind, n, options) for n in chunks])):
            file.write("\n".join(lines))
            file.write("\n")
    check_first_line(kind, private_key, out, options)
    print(f"{count} {kind} in {time.monotonic() - started:.1f} s: {out}", file=sys.stderr)


def check_first_line(kind, private_key, out, options):
    """The first line, read back and verified with PyJWT: a slip in the hand-made JWS fails here."""
    with open(out) as file:
        first = file.readline().rstrip("\n")
    if kind == "assertions":
        token = first.rsplit("client_assertion=", 1)[1]
        jwt.decode(
            token,
            private_key.public_key(),
            algorithms=["ES256"],
            audience=options["aud"],
            issuer=options["id"],
            options={"require": ["exp", "iss", "sub", "aud", "jti"]},
        )
        assert jwt.get_unverified_header(token)["kid"] == KID
    else:
        header = jwt.get_unverified_header(first)
        assert header["typ"] == "dpop+jwt"
        key = jwt.PyJWK(header["jwk"], algorithm="ES256").key
        claims = jwt.decode(first, key, algorithms=["ES256"], options={"require": ["iat", "jti"]})
        assert (claims["htm"], claims["htu"]) == ("POST", options["htu"])


def client_entry(args):
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(args.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    jwks = {"keys": [{**public_jwk(private_key), "kid": KID, "alg": "ES256", "use": "sig"}]}
    print(
        "\n# bench/one_time_jwts.py: a private_key_jwt client, its key generated for this run.\n"
        f'[[clients]]\nid = "{args.id}"\ntenant = "{args.tenant}"\n'
        'grants = ["client_credentials"]\nscopes = ["read"]\nmax_access_token_lifetime = 3600\n'
        'token_endpoint_auth_method = "private_key_jwt"\n'
        f"jwks = '''{json.dumps(jwks)}'''"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    client = commands.add_parser("client")
    client.add_argument("--key", required=True)
    client.add_argument("--id", required=True)
    client.add_argument("--tenant", required=True)
    assertions = commands.add_parser("assertions")
    assertions.add_argument("--key", required=True)
    assertions.add_argument("--id", required=True)
    assertions.add_argument("--aud", required=True)
    dpop = commands.add_parser("dpop")
    dpop.add_argument("--htu", required=True)
    for command in (assertions, dpop):
        command.add_argument("--count", type=int, required=True)
        command.add_argument("--out", required=True)
    args = parser.parse_args()

    if args.command == "client":
        client_entry(args)
    elif args.command == "assertions":
        with open(args.key, "rb") as file:
            private_key = serialization.load_pem_private_key(file.read(), password=None)
        write_signed("assertions", private_key, args.count, args.out, {"id": args.id, "aud": args.aud})
    else:
        private_key = ec.generate_private_key(ec.SECP256R1())
        write_signed("dpop", private_key, args.count, args.out, {"htu": args.htu})


if __name__ == "__main__":
    main()

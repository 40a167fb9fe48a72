"""`make run`'s server under the clients and conditions that broke it: a keep-alive session
after a refused upload (Python requests)."""

import requests

JWKS = "/.well-known/jwks.json"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_oversized_uploads_do_not_break_the_next_request_of_a_keep_alive_session(start_server):
    server = start_server()
    session = requests.Session()
    for _ in range(100):
        refused = session.post(f"{server.url}/oauth2/token", data=b"a" * 2_000_000, headers=FORM, timeout=10)
        assert refused.status_code == 413
        assert refused.json()["error"] == "invalid_request"
        # The server reads no further on this connection and says so, so the session opens a
        # new one instead of sending into a connection about to close.
        assert refused.headers["Connection"] == "close"
        assert session.get(f"{server.url}{JWKS}", timeout=10).status_code == 200

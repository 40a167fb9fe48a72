"""`make run`'s server under the clients and conditions that broke it: a keep-alive session
after a refused upload (Python requests), and a process out of file descriptors."""

import socket
import time

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


def test_out_of_file_descriptors_the_server_neither_spins_nor_floods_its_log_and_recovers(
    start_server, tmp_path
):
    stderr_path = tmp_path / "stderr.log"
    with open(stderr_path, "wb") as stderr:
        server = start_server(max_open_files=64, stderr=stderr)
    host, port = server.url.removeprefix("http://").split(":")
    # More connections than the server has descriptors left: accept fails with EMFILE while
    # these stay open (the test process has its own, higher limit).
    held = [socket.create_connection((host, int(port))) for _ in range(100)]
    try:
        time.sleep(0.5)
        before = server.cpu_seconds()
        time.sleep(2)
        spent = server.cpu_seconds() - before
        assert spent < 0.3, f"the server used {spent:.2f} s of CPU in 2 s while out of descriptors"
        logged = stderr_path.stat().st_size
        assert 0 < logged < 16 * 1024, f"{logged} bytes of log in 2.5 s"
    finally:
        for connection in held:
            connection.close()
    # The accept loop retries at least once a second, and the closed connections freed
    # descriptors.
    assert requests.get(f"{server.url}{JWKS}", timeout=10).status_code == 200


def test_silent_clients_holding_every_descriptor_do_not_lock_out_a_real_request(start_server):
    server = start_server(max_open_files=64, extra_env={"HEADER_READ_TIMEOUT": "1"})
    host, port = server.url.removeprefix("http://").split(":")
    # Connections that never send a byte, more than the server has descriptors for.
    held = [socket.create_connection((host, int(port))) for _ in range(100)]
    try:
        assert requests.get(f"{server.url}{JWKS}", timeout=20).status_code == 200
    finally:
        for connection in held:
            connection.close()

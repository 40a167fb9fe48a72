"""Starts the real `tokenctl serve` binary, as `make run` does, for tests written against
standard Python OAuth2 and JOSE libraries."""

import os
import pathlib
import resource
import select
import signal
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOKENCTL = pathlib.Path(os.environ.get("TOKENCTL", ROOT / "target" / "debug" / "tokenctl"))
DEMO_CLIENT = ("demo-client", "demo-secret-for-localhost-only-0123456789")


def _limit_open_files(count):
    """Runs in the child before exec: at most `count` file descriptors (RLIMIT_NOFILE)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


class LocalServer:
    def __init__(
        self, keys_file, alg="ES256", extra_env=None, args=("--port", "0"), stderr=None, max_open_files=None
    ):
        if not TOKENCTL.exists():
            pytest.fail(f"{TOKENCTL} is missing: build it with `cargo build -p tokenctl` (make test does)")
        env = {**os.environ, "SIGNING_ALG": alg, **(extra_env or {})}
        env.pop("ISSUER", None)
        self.process = subprocess.Popen(
            [str(TOKENCTL), "serve", "--keys", str(keys_file), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr or subprocess.DEVNULL,
            preexec_fn=None if max_open_files is None else lambda: _limit_open_files(max_open_files),
            # Unbuffered, so that select() sees every line not yet read.
            bufsize=0,
        )
        self.output = []
        self.url = None
        # The banner ends with the Ctrl-C hint, printed once the server is ready.
        while (line := self._readline(timeout=30)) != "Ctrl-C stops the server.":
            if line.startswith("token service listening on "):
                self.url = line.split()[-1]

    def _readline(self, timeout):
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline().decode() if ready else ""
        if not line:
            self.process.kill()
            pytest.fail(f"tokenctl exited or stalled before serving; output so far: {self.output}")
        self.output.append(line.rstrip("\n"))
        return line.strip()

    def interrupt(self, timeout=10):
        """Sends Ctrl-C (SIGINT) and returns the exit code and the rest of stdout."""
        self.process.send_signal(signal.SIGINT)
        rest, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, rest.decode()

    def cpu_seconds(self):
        """User and system CPU time the server has used so far (/proc/<pid>/stat)."""
        fields = pathlib.Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def start_server(tmp_path):
    servers = []

    def start(alg="ES256", keys_file=None, **kwargs):
        server = LocalServer(keys_file or tmp_path / "keys.json", alg, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()

"""make test-api: starts `tokenctl serve` on a free port with the demo seed, runs Schemathesis
with every check against openapi.json, stops the server. Exits with Schemathesis's status."""

import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOKENCTL = pathlib.Path(os.environ.get("TOKENCTL", ROOT / "target" / "debug" / "tokenctl"))
SCHEMATHESIS = pathlib.Path(sys.executable).parent / "schemathesis"
DEMO_CLIENT = ("demo-client", "demo-secret-for-localhost-only-0123456789")
DEMO_ADMIN = ("demo-admin", "demo-admin-secret-for-localhost-only-01234")
# Test cases per operation and phase: enough to reach every branch of the contract, small enough
# that the whole run stays well under two minutes on two cores.
MAX_EXAMPLES = os.environ.get("API_MAX_EXAMPLES", "100")


def start_server(keys_file):
    env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
    for name in ("ISSUER", "TABLE_NAME", "SEED_FILE", "SIGNING_KEYS_FILE", "PORT", "HOST"):
        env.pop(name, None)
    server = subprocess.Popen(
        [str(TOKENCTL), "serve", "--port", "0", "--seed", "local/seed.toml", "--keys", str(keys_file)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    url = None
    # The banner names the URL and ends with the Ctrl-C hint once the server is ready.
    for line in server.stdout:
        if line.startswith("token service listening on "):
            url = line.split()[-1]
        if line.strip() == "Ctrl-C stops the server.":
            return server, url
    server.wait()
    sys.exit(f"{TOKENCTL} exited before serving (status {server.returncode})")


def main():
    if not TOKENCTL.exists():
        sys.exit(f"{TOKENCTL} is missing: build it with `cargo build -p tokenctl` (make test-api does)")
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_server(pathlib.Path(tmp) / "keys.json")
        try:
            env = {
                **os.environ,
                "CLIENT_ID": DEMO_CLIENT[0],
                "CLIENT_SECRET": DEMO_CLIENT[1],
                "ADMIN_CLIENT_ID": DEMO_ADMIN[0],
                "ADMIN_CLIENT_SECRET": DEMO_ADMIN[1],
            }
            command = [
                str(SCHEMATHESIS),
                "--config-file", str(HERE / "schemathesis.toml"),
                "run", str(ROOT / "openapi.json"),
                "--url", url,
                "--max-examples", MAX_EXAMPLES,
                "--seed", os.environ.get("API_SEED", "1"),
                # One worker: Hypothesis compiles lambdas' source on every worker thread, and
                # CPython 3.11's ast module is not safe across threads ("AST constructor
                # recursion depth mismatch", python/cpython#106905), which failed a CI run.
                "--workers", "1",
                "--generation-database", "none",
                "--report", "junit",
                "--report-junit-path", str(ROOT / "target" / "schemathesis" / "junit.xml"),
                *sys.argv[1:],
            ]
            return subprocess.run(command, cwd=ROOT, env=env).returncode
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())

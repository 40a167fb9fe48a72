"""moto's server mode, applying one request at a time.

DynamoDB applies every conditional write and every transaction atomically. moto's in-memory
backend takes no locks, so under moto's threaded server two concurrent TransactWriteItems can
both pass their condition checks before either writes, which real DynamoDB never allows (this
made the concurrent refresh-rotation contract test see three winners). Serialising requests
restores DynamoDB's isolation.

moto's own server (werkzeug's) closes every connection after one response, so each SDK call would
connect anew, which real DynamoDB never makes a client do and which would inflate every measurement
of a function's CPU. waitress serves the same moto application with HTTP/1.1 keep-alive.

Usage: python tests/moto_server.py HOST PORT
"""

import sys
import threading

import waitress
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app


def one_at_a_time(app):
    lock = threading.Lock()

    def serialised(environ, start_response):
        with lock:
            # Materialise the body inside the lock: a lazy iterable would run after release.
            return list(app(environ, start_response))

    return serialised


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = one_at_a_time(DomainDispatcherApplication(create_backend_app))
    # Enough threads that a test's concurrent clients queue on the lock, not on the pool; and no
    # idle timeout shorter than the SDK's own pool keeps a connection.
    waitress.serve(app, host=host, port=port, threads=16, channel_timeout=120, ident="moto")


if __name__ == "__main__":
    main()

"""moto's server mode, applying one request at a time.

DynamoDB applies every conditional write and every transaction atomically. moto's in-memory
backend takes no locks, so under moto's threaded server two concurrent TransactWriteItems can
both pass their condition checks before either writes, which real DynamoDB never allows (this
made the concurrent refresh-rotation contract test see three winners). Serialising requests
restores DynamoDB's isolation; connections still stay open and are served by threads.

Usage: python tests/moto_server.py HOST PORT
"""

import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


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
    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()

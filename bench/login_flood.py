#!/usr/bin/env python3
"""A flood of password logins against a running local server (`tokenctl serve`).

    bench/login_flood.py URL [--connections N] [--seconds S] [--burst] [--honor-retry-after]
                             [--cancel-after-ms MS] [--pid PID]

Each connection sends wrong-password logins in a loop over keep-alive HTTP/1.1, half for a
known user and half for an unknown one; with --honor-retry-after, a connection answered 503
waits the Retry-After seconds before its next login. With --burst, each connection is opened
first and then sends one login, all at once. With --cancel-after-ms, each login is abandoned
that long after it was sent (the socket closed, as a client that gives up does), and a new
connection is opened for the next. With --pid, the server's resident memory and threads are read from
/proc during the flood and after it. Prints one line of JSON. Reports only; fails on nothing.
"""

import argparse
import asyncio
import base64
import json
import time
from urllib.parse import urlsplit

CLIENT = ("app-client", "app-client-secret-0123456789abcdefghij")
USERS = ("alice", "mallory")


def request(host: str, username: str) -> bytes:
    body = f"grant_type=password&username={username}&password=not-the-password&tenant_path=/acme"
    basic = base64.b64encode(f"{CLIENT[0]}:{CLIENT[1]}".encode()).decode()
    return (
        f"POST /oauth2/token HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {basic}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
        f"{body}"
    ).encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers


async def keep_alive(host, port, index, deadline, honor_retry_after, results):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        n = index
        while time.monotonic() < deadline:
            sent = time.monotonic()
            writer.write(request(host, USERS[n % 2]))
            n += 1
            status, headers = await read_response(reader)
            results.append((status, time.monotonic() - sent, "retry-after" in headers))
            if honor_retry_after and "retry-after" in headers:
                await asyncio.sleep(int(headers["retry-after"]))
    except (ConnectionError, asyncio.IncompleteReadError) as e:
        results.append((f"connection: {type(e).__name__}", 0.0, False))
    finally:
        writer.close()


async def burst(host, port, index, opened, start, results):
    reader, writer = await asyncio.open_connection(host, port)
    opened.append(index)
    await start.wait()
    sent = time.monotonic()
    writer.write(request(host, USERS[index % 2]))
    try:
        status, headers = await read_response(reader)
        results.append((status, time.monotonic() - sent, "retry-after" in headers))
    except (ConnectionError, asyncio.IncompleteReadError) as e:
        results.append((f"connection: {type(e).__name__}", 0.0, False))
    writer.close()


async def cancelling(host, port, index, deadline, cancel_after, results):
    n = index
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as e:
            results.append((f"connect: {type(e).__name__}", 0.0, False))
            await asyncio.sleep(0.01)
            continue
        writer.write(request(host, USERS[n % 2]))
        n += 1
        try:
            status, headers = await asyncio.wait_for(read_response(reader), cancel_after)
            results.append((status, 0.0, "retry-after" in headers))
        except asyncio.TimeoutError:
            results.append(("cancelled", 0.0, False))
        except (ConnectionError, asyncio.IncompleteReadError):
            results.append(("reset", 0.0, False))
        writer.transport.abort()


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, value = line.split(":", 1)
            fields[name] = (value.split() or [""])[0]
    return int(fields["VmRSS"]) // 1024, int(fields["VmHWM"]) // 1024, int(fields["Threads"])


async def watch(pid, deadline, samples):
    while time.monotonic() < deadline:
        samples.append(proc_status(pid))
        await asyncio.sleep(0.1)


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))] * 1000, 1)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--honor-retry-after", action="store_true")
    parser.add_argument("--cancel-after-ms", type=float)
    parser.add_argument("--pid", type=int)
    args = parser.parse_args()
    url = urlsplit(args.url)
    host, port = url.hostname, url.port
    results, samples = [], []
    started = time.monotonic()
    deadline = started + args.seconds
    start, opened = asyncio.Event(), []
    if args.burst:
        workers = [burst(host, port, i, opened, start, results) for i in range(args.connections)]
    elif args.cancel_after_ms is None:
        workers = [
            keep_alive(host, port, i, deadline, args.honor_retry_after, results)
            for i in range(args.connections)
        ]
    else:
        cancel_after = args.cancel_after_ms / 1000
        workers = [
            cancelling(host, port, i, deadline, cancel_after, results)
            for i in range(args.connections)
        ]
    if args.pid:
        workers.append(watch(args.pid, deadline, samples))
    gathered = asyncio.gather(*workers)
    if args.burst:
        while len(opened) < args.connections:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        start.set()
    await gathered
    elapsed = time.monotonic() - started
    report = {"connections": args.connections, "seconds": round(elapsed, 1)}
    counts = {}
    for status, _, _ in results:
        counts[str(status)] = counts.get(str(status), 0) + 1
    report["answers"] = counts
    if args.cancel_after_ms is None:
        served = sorted(t for s, t, _ in results if isinstance(s, int) and s != 503)
        shed = sorted(t for s, t, _ in results if s == 503)
        report["served_per_s"] = round(len(served) / elapsed, 1)
        report["served_ms"] = {p: percentile(served, q) for p, q in (("p50", 0.5), ("p99", 0.99))}
        report["shed_ms"] = {p: percentile(shed, q) for p, q in (("p50", 0.5), ("p99", 0.99))}
        report["shed_without_retry_after"] = sum(1 for s, _, r in results if s == 503 and not r)
    if args.pid:
        report["during_max_rss_mb"] = max((s[0] for s in samples), default=None)
        report["during_max_threads"] = max((s[2] for s in samples), default=None)
        await asyncio.sleep(2)
        rss, hwm, threads = proc_status(args.pid)
        report["after_2s"] = {"rss_mb": rss, "peak_rss_mb": hwm, "threads": threads}
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())

#!/usr/bin/python3
"""A paced keep-alive HTTP/1.1 load client that records WHEN each failure happened.

    timed_load.py PORT PATH EXPECTED_BODY --conns N --pace-ms MS [--max-seconds S]

wrk counts socket errors but cannot say when they happened, and HAProxy does not log every
one of them: when a server dies under a request that rode on a reused keep-alive connection,
HAProxy closes the client's connection without a response and without a log line (so that
the client may retry, as with any keep-alive close). tests/deploy/test_fleet.py needs the
times to measure how long a SIGKILLed instance makes requests fail, so this client keeps
them: every request's outcome, with the wall-clock time it ended.

N connections to 127.0.0.1:PORT, each sending GET PATH, reading the response (Content-Length
framing, which zerohttpd's small responses and HAProxy use), checking the status is 2xx and
the body is EXPECTED_BODY, then pausing MS before the next. A connection that fails is
reopened. Runs until SIGINT or SIGTERM (or --max-seconds), then prints one JSON line:
requests, ok, failed, the failures' kinds and their [start, end] times (epoch seconds).
"""
import argparse
import asyncio
import json
import signal
import sys
import time

TIMEOUT = 10.0


class Stats:
    def __init__(self):
        self.requests = 0
        self.ok = 0
        self.failures = []          # [start, end, kind, status]

    def fail(self, start, kind, status=0):
        self.failures.append([start, time.time(), kind, status])


async def one_request(reader, writer, req, expected):
    """Returns (status, body ok, server wants close)."""
    writer.write(req)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close = None, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and "close" in value.lower():
            close = True
    if length is None:
        raise ConnectionError("no Content-Length")
    body = await reader.readexactly(length)
    return status, body == expected, close


async def connection(port, path, expected, pace, stats, stop):
    req = ("GET %s HTTP/1.1\r\nHost: zerohttpd\r\n\r\n" % path).encode()
    reader = writer = None
    while not stop.is_set():
        start = time.time()
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), TIMEOUT)
            stats.requests += 1
            status, body_ok, close = await asyncio.wait_for(
                one_request(reader, writer, req, expected), TIMEOUT)
            if not 200 <= status <= 299:
                stats.fail(start, "status", status)
            elif not body_ok:
                stats.fail(start, "body", status)
            else:
                stats.ok += 1
            if close:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                asyncio.TimeoutError, ValueError, IndexError) as e:
            stats.fail(start, type(e).__name__)
            if writer is not None:
                writer.close()
            writer = None
        if pace:
            await asyncio.sleep(pace)
    if writer is not None:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("path")
    ap.add_argument("expected")
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--pace-ms", type=float, default=5.0)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    a = ap.parse_args()
    stats, stop = Stats(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(a.max_seconds, stop.set)
    t0 = time.time()
    tasks = [asyncio.create_task(connection(a.port, a.path, a.expected.encode(),
                                            a.pace_ms / 1000.0, stats, stop))
             for _ in range(a.conns)]
    print(json.dumps({"event": "started", "t": t0}), flush=True)
    await asyncio.gather(*tasks)
    print(json.dumps({"event": "summary", "elapsed": time.time() - t0,
                      "requests": stats.requests, "ok": stats.ok,
                      "failed": len(stats.failures), "failures": stats.failures[:1000]}),
          flush=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)

"""Refusing invalid bodies: time to the 400 and RSS growth against body size, up to the body limit.

Issue 16: a 0.3 MB ``/v1/responses`` body of 100,000 ``{}`` took 33 s to refuse and grew the process
by 3.7 GB. For each shape and size this sends the body to ``mock-server serve`` (a separate process
on 127.0.0.1), records the time to the answer and the server's RSS before and after (``VmRSS``), and
meanwhile times ``GET /v1/models`` from a second connection every 20 ms: the longest of those is how
long the refusal held the event loop. Figures are printed, never asserted.

    .venv/bin/python -m benchmarks.bench_refusal [--max-mb 32]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from benchmarks.common import KEY, base_config, free_port, machine, mock_argv, print_table, serve, write_config

#: Body shapes by name: ``n`` items -> the raw body, and the path it goes to.
SHAPES: dict[str, tuple[str, Callable[[int], bytes]]] = {
    "responses input of {}": ("/v1/responses", lambda n: b'{"model": "gpt-4o-mini", "input": [' +
                              b",".join([b"{}"] * n) + b"]}"),
    "chat messages of {}": ("/v1/chat/completions", lambda n: b'{"model": "gpt-4o-mini", "messages": [' +
                            b",".join([b"{}"] * n) + b"]}"),
    "chat stop of ints": ("/v1/chat/completions", lambda n: b'{"model": "gpt-4o-mini", "messages": [{"role": '
                          b'"user", "content": "hi"}], "stop": [' + b",".join([b"1"] * n) + b"]}"),
    "valid parts, last bad": ("/v1/chat/completions", lambda n: b'{"model": "gpt-4o-mini", "messages": [{"role": '
                              b'"user", "content": [' + b'{"type": "text", "text": "a"},' * n + b"{}]}]}"),
    # not a refusal: a valid body of that many values is judged in the worker, then parsed on the loop
    "valid parts, all valid": ("/v1/chat/completions", lambda n: b'{"model": "gpt-4o-mini", "messages": [{"role": '
                               b'"user", "content": [' + b",".join([b'{"type": "text", "text": "a"}'] * n) + b"]}]}"),
}


def _probe(url: str, stop: threading.Event, gaps: list[float]) -> None:
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get(url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
            gaps.append(time.perf_counter() - started)
            time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one table row per shape and size."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-mb", type=float, default=32.0, help="largest body, in MB (default 32: the limit)")
    args = parser.parse_args(argv)
    print("## Refusal: time to the 400 and RSS growth against body size")
    print(f"machine: {machine()}\n")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), "refusal", base_config())
        port = free_port()
        with serve(mock_argv(config, port), port) as server, httpx.Client(timeout=600) as client:
            for name, (path, build) in SHAPES.items():
                n = 1000
                while True:
                    raw = build(n)
                    if len(raw) > args.max_mb * 1e6:
                        break
                    rss_before = server.rss_mb()
                    stop, gaps = threading.Event(), []
                    probe = threading.Thread(target=_probe, args=(server.url, stop, gaps))
                    probe.start()
                    started = time.perf_counter()
                    response = client.post(server.url + path, content=raw, headers={
                        "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
                    took = time.perf_counter() - started
                    stop.set()
                    probe.join()
                    param = response.json().get("error", {}).get("param") if response.status_code < 500 else None
                    rows.append([name, f"{n:,}", f"{len(raw) / 1e6:.2f}", response.status_code, param,
                                 f"{took * 1000:.0f}", f"{max(gaps) * 1000:.0f}" if gaps else "-",
                                 f"{server.rss_mb() - rss_before:+.0f}", f"{server.rss_mb():.0f}",
                                 f"{server.children_rss_mb():.0f}"])
                    n *= 10
    print_table(["body", "items", "MB", "status", "param", "refused in ms", "longest /v1/models ms meanwhile",
                 "RSS growth MB", "RSS after MB",
                 "worker processes' RSS MB"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Concurrent readers over loopback: requests/s and latency of ``/best`` and ``/trials``.

A study of N trials is inserted into the server's database, then C clients (1, 16, 64) each
loop on one endpoint until the run's request count or time bound is reached.

    python bench/api_load.py                  # starts its own server (SQLite, local Ray)
    python bench/api_load.py --quick --url URL --database-url DB
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvloop

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from query_scale import make_study  # noqa: E402

from service.db import make_engine, metadata  # noqa: E402
from service.local_server import start_server, stop_server  # noqa: E402

RESULTS = REPO / "bench" / "results"


async def load(url: str, path: str, clients: int, requests: int, seconds: float) -> dict[str, Any]:
    """``clients`` concurrent keep-alive connections looping GET ``path``; stops at ``requests``
    or ``seconds``. A minimal HTTP/1.1 client on raw asyncio streams, so the load generator
    (sharing the machine's cores with the server) costs little next to the server."""
    parts = urlsplit(url)
    request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    latencies: list[float] = []
    failures: dict[str, int] = {}
    deadline = time.perf_counter() + seconds

    def done() -> bool:
        count = len(latencies) + sum(failures.values())
        return count >= requests or time.perf_counter() > deadline

    async def reader() -> None:
        stream, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while not done():
                started = time.perf_counter()
                writer.write(request)
                head = await stream.readuntil(b"\r\n\r\n")
                await stream.readexactly(_content_length(head))
                status = head[9:12].decode()
                if status == "200":
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    failures[status] = failures.get(status, 0) + 1
        except (OSError, asyncio.IncompleteReadError) as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(reader() for _ in range(clients)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": sum(failures.values()),
        "failures": failures,
        "requests_per_s": len(latencies) / wall,
        "p50_ms": latencies[len(latencies) // 2] if latencies else None,
        "p99_ms": latencies[max(0, math.ceil(0.99 * len(latencies)) - 1)] if latencies else None,
    }


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError("response without Content-Length")


def measure(url: str, study_id: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every endpoint at every client count."""
    paths = {"best": f"/studies/{study_id}/best", "trials": f"/studies/{study_id}/trials?limit=50"}
    rows = []
    for name, path in paths.items():
        for clients in args.clients:
            row = uvloop.run(load(url, path, clients, args.requests, args.seconds))
            row["endpoint"] = name
            rows.append(row)
            print(
                f"{name:7s} {clients:3d} clients: {row['requests_per_s']:7.1f} req/s, "
                f"p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, "
                f"{row['errors']} errors {row['failures'] or ''}",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few requests, a small study")
    parser.add_argument("--url", help="an hpo-service to load (with --database-url)")
    parser.add_argument("--database-url", help="the server's database, for the study")
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--requests", type=int, default=3000, help="per endpoint and level")
    parser.add_argument("--seconds", type=float, default=20.0, help="per endpoint and level")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.requests, args.seconds, args.clients = 200, 60, 10.0, [1, 8]
    if bool(args.url) != bool(args.database_url):
        parser.error("--url and --database-url go together")
    with tempfile.TemporaryDirectory(prefix="hpo-api-load-") as root:
        server = None
        if args.url:
            url, database_url = args.url, args.database_url
        else:
            database_url = f"sqlite:///{root}/load.db"
            server = start_server(Path(root), database_url)
            url = server.url
        try:
            engine = make_engine(database_url)
            metadata.create_all(engine)
            study_id, _ = make_study(engine, database_url, args.trials, 1, seed=7)
            engine.dispose()
            rows = measure(url, study_id, args)
        finally:
            if server is not None:
                stop_server(server)
    report = {"benchmark": "api_load", "quick": args.quick, "trials": args.trials, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("api_load_quick.json" if args.quick else "api_load.json")
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()

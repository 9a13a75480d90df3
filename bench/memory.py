"""Memory benchmark: resident memory of one ``pakn serve`` (webhook mode, SQLite), idle and with many open dialogs.

Starts the server against the fake Bot API, reads its RSS (``/proc/<pid>/statm``) once it is up and idle, then
drives ``--chats`` chats (default 10,000) to the second step of the citizen flow (``/start``, then "📝 Gửi phản
ánh, kiến nghị") with ``--concurrency`` chats at a time, and reads the RSS again (and the peak, VmHWM). The
dialogs live in the database, so what is measured is what the process keeps besides: caches, buffers, PTB and
aiohttp state, allocator fragmentation. Target: under 150 MB.

    python bench/memory.py                    # 10,000 chats
    python bench/memory.py --chats 1000 --json /tmp/memory.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    CITIZEN_SCRIPT,
    FIRST_CHAT,
    ArrivalFake,
    Driver,
    cpu_seconds,
    machine,
    rss_bytes,
    start_pakn,
    workdir,
)

SECOND_STEP = CITIZEN_SCRIPT[:2]


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


async def run(args: argparse.Namespace) -> dict[str, float | int | str]:
    fake = ArrivalFake()
    await fake.start()
    try:
        with workdir(keep=args.keep) as root:
            server = await start_pakn(fake, root)
            try:
                await asyncio.sleep(args.settle)
                idle = rss_bytes(server.pid)
                async with Driver(fake, fake.webhook_url or "", timeout=args.timeout) as driver:
                    replies = await driver.calibrate(FIRST_CHAT, SECOND_STEP)
                    chats = range(FIRST_CHAT + 1, FIRST_CHAT + 1 + args.chats)
                    cpu_before = cpu_seconds(server.pid)
                    started = time.perf_counter()
                    latencies, done = await driver.users(
                        chats, SECOND_STEP, replies, args.concurrency, deadline=time.monotonic() + args.max_seconds
                    )
                    seconds = time.perf_counter() - started
                    cpu = cpu_seconds(server.pid) - cpu_before
                await asyncio.sleep(args.settle)
                loaded = rss_bytes(server.pid)
                peak = peak_rss_bytes(server.pid)
                server.check_alive()
            finally:
                server.stop()
    finally:
        await fake.stop()
    return {
        "chats": done,
        "updates": len(latencies),
        "seconds": round(seconds, 1),
        "updates_per_s": round(len(latencies) / seconds, 1),
        "cpu_ms_per_update": round(cpu * 1000 / max(1, len(latencies)), 2),
        "idle_rss_mb": round(idle / 2**20, 1),
        "open_dialogs_rss_mb": round(loaded / 2**20, 1),
        "peak_rss_mb": round(peak / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/memory.py",
        description=__doc__.split("\n\n")[0],
        epilog="Loopback only; bounded by --chats and --max-seconds.",
    )
    parser.add_argument("--chats", type=int, default=10_000, help="dialogs to open (default 10,000)")
    parser.add_argument("-c", "--concurrency", type=int, default=50, help="chats in flight at once (default 50)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait before each reading")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop opening dialogs after this")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one reply")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the server's data directory and log")
    args = parser.parse_args(argv)
    if args.chats < 1 or args.concurrency < 1:
        parser.error("--chats and --concurrency must be at least 1")
    result = asyncio.run(run(args))
    info = machine()
    print(f"machine: {info['nproc']} × {info['cpu']}, Python {info['python']}, {info['date']}")
    print(
        f"pakn serve (SQLite): idle {result['idle_rss_mb']} MB; after {result['chats']:,} dialogs opened "
        f"({result['updates']:,} updates, {result['updates_per_s']}/s) {result['open_dialogs_rss_mb']} MB; "
        f"peak {result['peak_rss_mb']} MB"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "command": " ".join(sys.argv), **result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

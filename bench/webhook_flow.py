"""Full-flow webhook benchmark: N simulated citizens each file a whole anonymous phản ánh through
``POST /telegram/webhook`` of a real ``pakn serve`` process, and the same harness against a stock
python-telegram-bot echo bot (bench/echo_bot.py) with the same number of updates, in the same run.

Each citizen sends the 12 updates of the flow (/start, menu, type, category, commune, skip location, not about
conduct, description, done, no attachments, anonymous, send) one after the other, each once the previous one is
fully answered; ``--concurrency`` citizens are in flight at once. This process plays Telegram: it POSTs the
updates and it is the fake Bot API the replies go to (``--delay-ms`` before each answer mimics Telegram's round
trip). Reported per server: updates/s, items/s, latency from the update's POST to its last reply reaching the
fake API (p50/p90/p99/max), and the server's CPU time per update from /proc/<pid>/stat. Every step is answered
with one message in the webhook's answer, except "send": its receipt (with the menu under it) is durable, an
outbox row leased to the filing process, which sends it through the Bot API right after the commit.

Examples::

    python bench/webhook_flow.py                          # SQLite and the echo baseline, 1,000 citizens
    python bench/webhook_flow.py --database-url sqlite \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres --delay-ms 50
    python bench/webhook_flow.py -n 300 --profile /tmp/prof   # py-spy profile of each server

A PostgreSQL URL names the server (and a database to connect to for CREATE DATABASE): every run gets a
fresh database, migrated with ``pakn db upgrade`` and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    CITIZEN_SCRIPT,
    FIRST_CHAT,
    ArrivalFake,
    Driver,
    RunResult,
    create_database,
    display_url,
    drop_database,
    echo_script,
    machine,
    measure,
    print_costs,
    print_table,
    start_echo,
    start_pakn,
    top_costs,
    workdir,
)

COLUMNS = (
    ("target", "server"),
    ("database", "database"),
    ("citizens", "users"),
    ("updates", "updates"),
    ("seconds", "s"),
    ("updates_per_s", "updates/s"),
    ("items_per_s", "items/s"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("max_ms", "max ms"),
    ("cpu_ms_per_update", "CPU ms/update"),
    ("server_rss_mb", "RSS MB"),
    ("harness_cpu_s", "harness CPU s"),
)


async def run(args: argparse.Namespace, *, echo_first: bool = False, number: int = 1) -> list[RunResult]:
    """Round ``number``: pakn on each database, then the echo bot(s) (``echo_first``: the other way round, so that
    rounds alternate and a machine that drifts during a round does not always favour the same side)."""
    results: list[RunResult] = []
    fake = ArrivalFake(delay=args.delay_ms / 1000.0)
    await fake.start()
    profile_dir: Path | None = Path(args.profile) if args.profile else None
    if profile_dir is not None:
        profile_dir = profile_dir / f"round{number}" if args.rounds > 1 else profile_dir  # one folder per round
        profile_dir.mkdir(parents=True, exist_ok=True)

    async def run_pakn(root: Path) -> None:
        for index, database in enumerate([] if args.no_pakn else args.database_url or ["sqlite"]):
            fresh = ""
            if database != "sqlite":
                fresh = await create_database(database)
            try:
                directory = root / f"run{index}"
                directory.mkdir()
                servers = []
                try:
                    for number in range(args.processes):
                        servers.append(
                            await start_pakn(fake, directory, fresh, name=f"pakn{number}", migrate=number == 0)
                        )
                    webhooks = [server.webhook_url for server in servers]
                    async with Driver(fake, webhooks, timeout=args.timeout) as driver:
                        result = await measure(
                            target="pakn" if args.processes == 1 else f"pakn ×{args.processes}",
                            database=display_url(database).rsplit("/", 1)[0] if fresh else "sqlite",
                            server=servers,
                            driver=driver,
                            script=CITIZEN_SCRIPT,
                            citizens=args.citizens,
                            concurrency=args.concurrency,
                            max_seconds=args.max_seconds,
                            first_chat=FIRST_CHAT + index * 10_000_000,
                            counts_items=True,
                            quiet=args.quiet,
                            ramp_up=args.ramp_up,
                            profile=profile_dir / f"pakn-{index}.txt" if profile_dir else None,
                        )
                finally:
                    for server in servers:
                        server.stop()
            finally:
                if fresh:
                    await drop_database(fresh)
            result.database = "postgresql" if fresh else "sqlite"
            results.append(result)
            _report(result, profile_dir / f"pakn-{index}.txt" if profile_dir else None)

    async def run_echo(root: Path) -> None:
        transports = [] if args.no_echo else ["httpx"]
        if args.echo_aiohttp:
            transports.append("aiohttp")
        for offset, transport in enumerate(transports):
            directory = root / f"echo-{transport}"
            directory.mkdir()
            server = await start_echo(
                fake, directory, concurrent_updates=args.echo_concurrent_updates, transport=transport
            )
            name = "ptb-echo" if transport == "httpx" else "ptb-echo+aiohttp"
            try:
                async with Driver(fake, fake.webhook_url or "", timeout=args.timeout) as driver:
                    result = await measure(
                        target=name,
                        database="-",
                        server=server,
                        driver=driver,
                        script=echo_script(len(CITIZEN_SCRIPT)),
                        citizens=args.citizens,
                        concurrency=args.concurrency,
                        max_seconds=args.max_seconds,
                        first_chat=FIRST_CHAT + (90 + offset) * 1_000_000,
                        counts_items=False,
                        quiet=args.quiet,
                        ramp_up=args.ramp_up,
                        profile=profile_dir / f"{name}.txt" if profile_dir else None,
                    )
            finally:
                server.stop()
            results.append(result)
            _report(result, profile_dir / f"{name}.txt" if profile_dir else None)

    try:
        with workdir(keep=args.keep) as root:
            for part in (run_echo, run_pakn) if echo_first else (run_pakn, run_echo):
                await part(root)
    finally:
        await fake.stop()
    return results


def _ratios(rounds: list[list[RunResult]]) -> dict[str, dict[str, Any]]:
    """pakn's updates/s and CPU per update over the stock echo bot's, each round's pakn against that round's echo
    bot (the echo bot's own figure moves by ±20 % between runs on a small VM); over several rounds, the medians."""
    per_database: dict[str, list[tuple[float, float]]] = {}
    for results in rounds:
        echo = next((r for r in results if r.target == "ptb-echo"), None)
        if echo is None:
            continue
        for result in results:
            if not result.target.startswith("ptb-echo"):
                per_database.setdefault(result.database, []).append(
                    (result.updates_per_s / echo.updates_per_s, result.cpu_ms_per_update / echo.cpu_ms_per_update)
                )
    return {
        database: {
            "throughput": round(statistics.median(t for t, _ in pairs), 2),
            "cpu_per_update": round(statistics.median(c for _, c in pairs), 2),
            "rounds": [round(t, 2) for t, _ in pairs],
        }
        for database, pairs in per_database.items()
    }


def _report(result: RunResult, profile: Path | None) -> None:
    print(
        f"{result.target} ({result.database}): {result.updates} updates in {result.seconds:.1f} s, "
        f"{result.updates_per_s:.0f} updates/s, p99 {result.p99_ms:.0f} ms, "
        f"{result.cpu_ms_per_update:.2f} ms CPU/update",
        flush=True,
    )
    steps = result.extra.get("by_step", [])
    if steps and result.items:  # the citizen's flow, step by step (the echo bot has no steps)
        print(
            "  latency by step (p50 / p99 ms): "
            + ", ".join(f"{s['update']} {s['p50_ms']:.0f}/{s['p99_ms']:.0f}" for s in steps)
        )
    if profile is not None and profile.exists():
        costs = top_costs(profile)
        result.extra["profile"] = costs
        print_costs(f"py-spy profile of {result.target} ({result.database}), {profile}", costs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/webhook_flow.py",
        description=__doc__.split("\n\n")[0],
        epilog="Loopback only. Bounded by --citizens and --max-seconds per server.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-n", "--citizens", type=int, default=1000, help="citizens per server (default 1000)")
    parser.add_argument("-c", "--concurrency", type=int, default=50, help="citizens in flight at once (default 50)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="fake Bot API delay before each answer")
    parser.add_argument(
        "--ramp-up",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="start the concurrent citizens evenly spread over this many seconds (default 0: all at once, the worst "
        "case, in which they keep step: every /start and every filing of a wave together); about one flow's "
        "duration models independent citizens",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="pakn serve processes on one database, each chat always posted to the same one (default 1)",
    )
    parser.add_argument(
        "--database-url",
        action="append",
        metavar="URL",
        help="'sqlite' (default) or a PostgreSQL server URL (a fresh database is created per run); repeatable",
    )
    parser.add_argument("--no-echo", action="store_true", help="skip the PTB echo baseline")
    parser.add_argument("--no-pakn", action="store_true", help="run only the echo bot(s)")
    parser.add_argument(
        "--echo-aiohttp",
        action="store_true",
        help="also run the echo bot on PAKN's aiohttp transport (a reference, not the baseline)",
    )
    parser.add_argument(
        "--echo-concurrent-updates", type=int, default=256, help="the echo bot's concurrent_updates (0: one at a time)"
    )
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop starting new citizens after this")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one update's reply")
    parser.add_argument(
        "--quiet", type=float, default=0.25, help="calibration: seconds of silence that end an update's replies"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="py-spy record each server into DIR (DIR/roundN with --rounds; needs py-spy; samples the thread "
        "holding the GIL)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run everything this many times, one after the other (every other round the echo bot first); the "
        "ratios are each round's, and their medians",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the servers' data directories and logs")
    args = parser.parse_args(argv)
    if args.citizens < 1 or args.concurrency < 1 or args.processes < 1 or args.rounds < 1:
        parser.error("--citizens, --concurrency, --processes and --rounds must be at least 1")
    if args.ramp_up < 0:
        parser.error("--ramp-up cannot be negative")

    rounds = [asyncio.run(run(args, echo_first=index % 2 == 1, number=index + 1)) for index in range(args.rounds)]
    info = machine()
    print(f"\nmachine: {info['nproc']} × {info['cpu']}, Python {info['python']}, {info['date']}")
    print(
        f"{args.citizens} citizens, concurrency {args.concurrency}, fake API delay {args.delay_ms:g} ms, "
        f"ramp-up {args.ramp_up:g} s\n"
    )
    columns: tuple[tuple[str, str], ...] = COLUMNS
    rows = [result.as_dict() for each in rounds for result in each]
    if args.rounds > 1:
        columns = (("round", "round"), *COLUMNS)
        rows = [{"round": number, **result.as_dict()} for number, each in enumerate(rounds, 1) for result in each]
    print_table(rows, columns)
    ratios = _ratios(rounds)
    if ratios:
        print()
    for database, ratio in ratios.items():
        print(
            f"pakn ({database}) / stock PTB echo: {ratio['throughput']:.2f}× its updates/s, "
            f"{ratio['cpu_per_update']:.2f}× its CPU per update"
            + (
                f" (median of {args.rounds} rounds: {', '.join(f'{t:.2f}×' for t in ratio['rounds'])})"
                if args.rounds > 1
                else ""
            )
        )
    if args.json:
        document = {
            "machine": info,
            "command": " ".join(sys.argv),
            "ramp_up_s": args.ramp_up,
            "results": rows,
            "ratios": ratios,
        }
        Path(args.json).write_text(json.dumps(document, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

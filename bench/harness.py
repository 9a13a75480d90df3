"""What the webhook benchmarks share: a fake Bot API that notes when each reply arrives, the servers under test
as subprocesses, simulated Telegram users, and the figures (throughput, latency, CPU, memory, profiles).

The benchmark process plays Telegram: it POSTs updates to the server's webhook (as Telegram does) and it is
also the Bot API server the replies are sent to (:class:`ArrivalFake`, the test suite's fake with a hook that
timestamps every ``sendMessage`` as it arrives, before any artificial delay). The server under test is always
another process, so its CPU time (from ``/proc/<pid>/stat``) is its own. Everything is on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes.telegram_api import FakeBotAPI  # noqa: E402

TOKEN = "123456789:AAE-pakn-benchmark-token_0123456789abc"
SECRET = "bench-webhook-secret"
SECRET_KEY = "7c" * 32  # a fixed vault key: every run starts from an empty database anyway
WEBHOOK_PATH = "/telegram/webhook"
FIRST_CHAT = 700_000_001
DESCRIPTION = "Bãi rác tự phát cạnh suối Nậm Rốm bốc mùi, nước thải chảy ra suối nhiều ngày nay."

# The anonymous phản ánh of the issue, one update per step: (kind, text or callback data).
CITIZEN_SCRIPT: tuple[tuple[str, str], ...] = (
    ("text", "/start"),
    ("button", "menu:file"),
    ("button", "type:phan_anh"),
    ("button", "cat:dat_dai"),
    ("text", "Mường Phăng"),
    ("text", "Bỏ qua"),  # the location step's reply-keyboard key
    ("button", "cond:n"),
    ("text", DESCRIPTION),
    ("button", "desc:done"),
    ("button", "att:done"),
    ("button", "id:anon"),
    ("button", "sum:send"),
)
ITEM_STEP = len(CITIZEN_SCRIPT) - 1  # the update that files the item


def echo_script(length: int = len(CITIZEN_SCRIPT)) -> tuple[tuple[str, str], ...]:
    """As many plain text messages as a citizen's flow has updates: what the echo bot answers."""
    return tuple(("text", f"Tin nhắn thử số {index + 1} gửi tới bot") for index in range(length))


# ---------------------------------------------------------------------------------------------------------------
# the process under test
# ---------------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime (fields 14 and 15)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/statm."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_SIZE


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_mb": memory,
        "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


class ServerProcess:
    """A server under test: started with a command line, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.webhook_url = ""
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            list(argv), cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}; see {self.log_path}:\n{self.tail()}"
            )

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self._log.close()


def base_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PAKN_", "PTB_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


async def wait_until(predicate: Any, what: str, server: ServerProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{server.name}: {what} not within {timeout:.0f} s; log:\n{server.tail()}")


async def start_pakn(
    fake: FakeBotAPI, workdir: Path, database_url: str = "", *, name: str = "pakn", migrate: bool = True
) -> ServerProcess:
    """``pakn serve`` in webhook mode against ``fake``; returns once it answers /healthz and set its webhook.

    Several processes started on the same ``workdir`` share its data directory (key file, SQLite database) or
    the PostgreSQL database; each listens on its own port (``webhook_url``)."""
    port = free_port()
    env = base_env()
    env.update(
        PAKN_DATA_DIR=str(workdir / "data"),
        PAKN_DATABASE_URL=database_url,
        PAKN_SECRET_KEY=SECRET_KEY,
        PAKN_HOST="127.0.0.1",
        PAKN_PORT=str(port),
        PAKN_PUBLIC_URL=f"http://127.0.0.1:{port}",
        PAKN_TELEGRAM_TOKEN=TOKEN,
        PAKN_TELEGRAM_API_URL=fake.url,
        PAKN_TELEGRAM_MODE="webhook",
        PAKN_TELEGRAM_WEBHOOK_SECRET=SECRET,
        PAKN_TELEGRAM_MAX_RATE="0",
    )
    if database_url and migrate:  # `serve` migrates SQLite by itself, PostgreSQL needs `pakn db upgrade`
        upgrade = subprocess.run(
            [sys.executable, "-m", "bot", "db", "upgrade"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if upgrade.returncode != 0:
            raise RuntimeError(f"pakn db upgrade failed:\n{upgrade.stdout}{upgrade.stderr}")
    server = ServerProcess(name, [sys.executable, "-m", "bot", "serve"], env, workdir / f"{name}.log")
    server.webhook_url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    await _wait_ready(fake, server, f"http://127.0.0.1:{port}/healthz")
    return server


async def start_echo(
    fake: FakeBotAPI, workdir: Path, *, concurrent_updates: int = 256, transport: str = "httpx"
) -> ServerProcess:
    """The baseline: bench/echo_bot.py (stock python-telegram-bot) behind an aiohttp webhook."""
    port = free_port()
    argv = [
        sys.executable,
        str(ROOT / "bench" / "echo_bot.py"),
        "--token",
        TOKEN,
        "--api-url",
        fake.url,
        "--port",
        str(port),
        "--secret",
        SECRET,
        "--concurrent-updates",
        str(concurrent_updates),
        "--transport",
        transport,
    ]
    server = ServerProcess(f"echo-{transport}", argv, base_env(), workdir / f"echo-{transport}.log")
    await _wait_ready(fake, server, None)
    return server


async def _wait_ready(fake: FakeBotAPI, server: ServerProcess, health_url: str | None) -> None:
    fake._webhook = None  # the new server registers its own

    async def healthy() -> bool:
        if health_url is None:
            return True
        try:
            async with aiohttp.ClientSession() as client, client.get(health_url) as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def webhook_set() -> bool:
        return fake.webhook_url is not None

    try:
        await wait_until(healthy, "/healthz", server)
        await wait_until(webhook_set, "setWebhook", server)
    except BaseException:
        server.stop()
        raise


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL: a fresh database per run
# ---------------------------------------------------------------------------------------------------------------


def _asyncpg_params(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "password": parsed.password,
        "database": parsed.database or "postgres",
    }


async def create_database(admin_url: str, prefix: str = "pakn_bench") -> str:
    """CREATE DATABASE <prefix>_<random> on the server of ``admin_url``; returns its SQLAlchemy URL."""
    import asyncpg
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(**_asyncpg_params(admin_url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    url = make_url(admin_url).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False)


async def drop_database(url: str) -> None:
    import asyncpg

    params = _asyncpg_params(url)
    name = params["database"]
    params["database"] = "postgres"
    connection = await asyncpg.connect(**params)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def display_url(url: str) -> str:
    if not url or url == "sqlite":
        return "sqlite"
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ---------------------------------------------------------------------------------------------------------------
# the fake Bot API, with arrival times
# ---------------------------------------------------------------------------------------------------------------


class ArrivalFake(FakeBotAPI):
    """The test suite's fake Bot API; each ``sendMessage`` is counted per chat with its arrival time.

    The time is taken when the request has been read, before the artificial ``delay``: it is when the reply
    reached the API. Nothing is logged (``record=False``) and each chat keeps only its last few messages.
    """

    def __init__(self, *, delay: float = 0.0) -> None:
        super().__init__(token=TOKEN, delay=delay, record=False, history_limit=6)
        self.sends: defaultdict[int, int] = defaultdict(int)
        self.method_counts: Counter[str] = Counter()
        self._arrivals: defaultdict[int, deque[float]] = defaultdict(lambda: deque(maxlen=8))  # the latest, per chat
        self._waiters: dict[int, tuple[int, asyncio.Future[float]]] = {}

    def _record(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> Any:
        call = super()._record(method, params, headers)
        self.method_counts[method] += 1
        if method == "sendMessage":
            chat = params.get("chat_id")
            if isinstance(chat, int):
                arrived = time.perf_counter()
                count = self.sends[chat] = self.sends[chat] + 1
                self._arrivals[chat].append(arrived)
                waiter = self._waiters.get(chat)
                if waiter is not None and count >= waiter[0] and not waiter[1].done():
                    waiter[1].set_result(arrived)
        return call

    async def wait_sends(self, chat: int, target: int, timeout: float) -> float:
        """Wait until ``chat`` has received ``target`` messages in all; the arrival time of the ``target``-th (which
        may have come before the webhook's answer that the caller waited for first)."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters[chat] = (target, future)
        try:
            beyond = self.sends[chat] - target
            if beyond >= 0:
                arrivals = self._arrivals[chat]
                return arrivals[-1 - beyond] if beyond < len(arrivals) else time.perf_counter()
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiters.pop(chat, None)


# ---------------------------------------------------------------------------------------------------------------
# the simulated users
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """One measured run against one server."""

    target: str
    database: str
    citizens: int
    concurrency: int
    updates: int
    items: int
    seconds: float
    updates_per_s: float
    items_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_s: float
    cpu_ms_per_update: float
    harness_cpu_s: float
    server_rss_mb: float
    errors: int
    replies_per_update: list[int]
    api_calls: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class Driver:
    """Simulated Telegram users POSTing updates to a webhook and waiting for the bot's answers."""

    def __init__(self, fake: ArrivalFake, webhook_url: str | Sequence[str], *, timeout: float = 30.0) -> None:
        self.fake = fake
        # Several URLs: one per server process, as a load balancer in front of them would spread the chats.
        self.webhook_urls = [webhook_url] if isinstance(webhook_url, str) else list(webhook_url)
        self.timeout = timeout
        self._update_ids = iter(range(1_000_001, 10**12))
        self._client: aiohttp.ClientSession | None = None
        self.errors = 0
        self.timeouts: list[str] = []
        self.by_step: defaultdict[int, list[float]] = defaultdict(list)

    async def __aenter__(self) -> Driver:
        self._client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(30))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._client is not None:
            await self._client.close()

    def _update(self, chat: int, kind: str, value: str) -> bytes:
        if kind == "button":
            update = self.fake.make_callback(chat, value, user=chat)
        else:
            update = self.fake.make_message(chat, value, user=chat)
        update["update_id"] = next(self._update_ids)
        return json.dumps(update, ensure_ascii=False).encode()

    async def post(self, chat: int, kind: str, value: str) -> None:
        assert self._client is not None
        body = self._update(chat, kind, value)
        headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
        url = self.webhook_urls[chat % len(self.webhook_urls)]
        async with self._client.post(url, data=body, headers=headers) as response:
            reply = await response.read()
            if response.status != 200:
                raise RuntimeError(f"webhook answered {response.status} to a {kind} update")
            content_type = response.content_type
        await self.fake.perform_webhook_reply(content_type, reply)  # as Telegram does with a reply to the webhook

    async def calibrate(self, chat: int, script: Sequence[tuple[str, str]], quiet: float = 0.25) -> list[int]:
        """Run the script once, slowly, and count the messages each update is answered with."""
        counts = []
        for kind, value in script:
            before = self.fake.sends[chat]
            await self.post(chat, kind, value)
            try:
                await self.fake.wait_sends(chat, before + 1, self.timeout)
            except TimeoutError:
                raise RuntimeError(f"no reply to {kind} {value!r} in {self.timeout:.0f} s") from None
            while True:  # until the bot has stopped talking to this chat
                seen = self.fake.sends[chat]
                await asyncio.sleep(quiet)
                if self.fake.sends[chat] == seen:
                    break
            counts.append(self.fake.sends[chat] - before)
        return counts

    async def user(
        self, chat: int, script: Sequence[tuple[str, str]], replies: Sequence[int]
    ) -> tuple[list[float], bool]:
        """One user's whole script, each update sent once the previous one is fully answered: the latencies (s),
        and whether the user got to the end (False after an update went unanswered for ``timeout``)."""
        latencies: list[float] = []
        for (kind, value), expected in zip(script, replies, strict=True):
            target = self.fake.sends[chat] + expected
            started = time.perf_counter()
            await self.post(chat, kind, value)
            try:
                arrived = await self.fake.wait_sends(chat, target, self.timeout)
            except TimeoutError:  # counted; this user gives up (its late replies go to a chat no one uses)
                self.errors += 1
                self.timeouts.append(f"chat {chat}: no reply to {kind} {value!r} within {self.timeout:.0f} s")
                return latencies, False
            latencies.append(arrived - started)
        return latencies, True

    async def users(
        self,
        chats: Sequence[int],
        script: Sequence[tuple[str, str]],
        replies: Sequence[int],
        concurrency: int,
        deadline: float,
        ramp_up: float = 0.0,
    ) -> tuple[list[float], int]:
        """Run ``script`` for every chat, ``concurrency`` at a time; (all latencies, users completed).

        ``ramp_up``: the ``concurrency`` users start evenly spread over that many seconds instead of all at once.
        Started together, users who run the same script keep step: every first message and every filing of a
        wave arrives at the same moment, the worst case; spread over one script's duration they arrive as
        independent users would."""
        pending = iter(chats)
        latencies: list[float] = []
        done = 0
        workers = max(1, min(concurrency, len(chats)))

        async def worker(index: int) -> None:
            nonlocal done
            await asyncio.sleep(ramp_up * index / workers)
            for chat in pending:
                if time.monotonic() > deadline:
                    return
                measured, finished = await self.user(chat, script, replies)
                latencies.extend(measured)
                for step, latency in enumerate(measured):
                    self.by_step[step].append(latency)
                done += finished

        await asyncio.gather(*(worker(index) for index in range(workers)))
        return latencies, done


@contextlib.contextmanager
def collector_held() -> Iterator[None]:
    """No garbage collection in the harness while it measures, a full one after. The harness is the citizens and
    Telegram's servers at once, and it timestamps each reply as it arrives: a collection of its own (a full one
    took up to 143 ms with a round's records in memory) stopped that clock, and the pause was counted as the
    server's latency. A round's garbage is a few megabytes."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


async def measure(
    *,
    target: str,
    database: str,
    server: ServerProcess | Sequence[ServerProcess],
    driver: Driver,
    script: Sequence[tuple[str, str]],
    citizens: int,
    concurrency: int,
    max_seconds: float,
    first_chat: int,
    counts_items: bool,
    profile: Path | None = None,
    quiet: float = 0.25,
    ramp_up: float = 0.0,
) -> RunResult:
    """Calibrate on one chat, then run ``citizens`` users and measure the server (CPU and memory summed over its
    processes when there are several)."""
    servers = [server] if isinstance(server, ServerProcess) else list(server)
    fake = driver.fake
    replies = await driver.calibrate(first_chat, script, quiet)
    chats = range(first_chat + 1, first_chat + 1 + citizens)
    extra = os.environ.get("PAKN_BENCH_PYSPY", "").split()
    profiler = Profiler(servers[0].pid, profile, extra=extra) if profile is not None else None
    calls_before = Counter(fake.method_counts)
    cpu_before, harness_before = sum(cpu_seconds(s.pid) for s in servers), time.process_time()
    started = time.perf_counter()
    try:
        with collector_held():
            latencies, completed = await driver.users(
                chats, script, replies, concurrency, deadline=time.monotonic() + max_seconds, ramp_up=ramp_up
            )
            seconds = time.perf_counter() - started
        server_cpu = sum(cpu_seconds(s.pid) for s in servers) - cpu_before
        harness_cpu = time.process_time() - harness_before
        rss = sum(rss_bytes(s.pid) for s in servers)
    finally:
        if profiler is not None:
            profiler.stop()
    for each in servers:
        each.check_alive()
    updates = len(latencies)
    items = completed if counts_items else 0
    calls = Counter(fake.method_counts)
    calls.subtract(calls_before)
    return RunResult(
        target=target,
        database=database,
        citizens=completed,
        concurrency=concurrency,
        updates=updates,
        items=items,
        seconds=round(seconds, 3),
        updates_per_s=round(updates / seconds, 1),
        items_per_s=round(items / seconds, 1),
        p50_ms=round(percentile(latencies, 0.50) * 1000, 1),
        p90_ms=round(percentile(latencies, 0.90) * 1000, 1),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 1),
        max_ms=round(max(latencies, default=float("nan")) * 1000, 1),
        server_cpu_s=round(server_cpu, 2),
        cpu_ms_per_update=round(server_cpu * 1000 / max(1, updates), 3),
        harness_cpu_s=round(harness_cpu, 2),
        server_rss_mb=round(rss / 2**20, 1),
        errors=driver.errors,
        extra={
            "by_step": [
                {
                    "update": f"{kind} {value[:24]}",
                    "p50_ms": round(percentile(driver.by_step[step], 0.5) * 1000, 1),
                    "p99_ms": round(percentile(driver.by_step[step], 0.99) * 1000, 1),
                }
                for step, (kind, value) in enumerate(script)
            ],
            **({"timeouts": driver.timeouts[:10]} if driver.timeouts else {}),
        },
        replies_per_update=replies,
        api_calls={k: v for k, v in calls.items() if v},
    )


# ---------------------------------------------------------------------------------------------------------------
# profiles: py-spy on the server process
# ---------------------------------------------------------------------------------------------------------------


class Profiler:
    """``py-spy record`` of a running process into a collapsed-stack file (needs py-spy: the ``bench`` extra)."""

    def __init__(self, pid: int, out: Path, rate: int = 250, extra: Sequence[str] = ()) -> None:
        self.out = out
        executable = Path(sys.executable).with_name("py-spy")
        command = str(executable) if executable.exists() else "py-spy"
        self.process = subprocess.Popen(
            [
                command,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--output",
                str(out),
                "--nonblocking",  # sample without pausing the server
                "--gil",  # only the thread holding the GIL: where the CPU goes, not who waits
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.3)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        if not self.out.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}")


def _frame_key(frame: str) -> str:
    """``function (path/to/module.py:123)`` → ``function (module.py)``: lines of one function are merged."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        with contextlib.suppress(ValueError):
            path = str(Path(path).relative_to(ROOT))
    return f"{name} ({path})"


def top_costs(collapsed: Path, limit: int = 15) -> dict[str, list[tuple[str, float]]]:
    """The functions with the most samples, by own time ("self") and with their callees ("total", leaving out
    the event loop's frames), in % of the samples. SQLAlchemy runs its sync code in greenlets, whose stacks
    py-spy shows apart from the coroutine that awaits them: a caller's total leaves out its queries."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_key(frame) for frame in stack.split(";") if not frame.startswith(("thread (", "process "))]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    scale = 100.0 / max(1, samples)
    # Frames under half the samples: the event loop's own frames (in every sample) say nothing.
    inner = [(name, count) for name, count in total.most_common() if count * scale < 50]
    return {
        "self": [(name, round(count * scale, 1)) for name, count in own.most_common(limit)],
        "total": [(name, round(count * scale, 1)) for name, count in inner[:limit]],
        "samples": [("samples", float(samples))],
    }


def print_costs(title: str, costs: dict[str, list[tuple[str, float]]]) -> None:
    print(f"\n{title} ({int(costs['samples'][0][1])} samples)")
    for kind in ("self", "total"):
        print(f"  by {kind} time:")
        for name, share in costs[kind]:
            print(f"    {share:5.1f}%  {name}")


# ---------------------------------------------------------------------------------------------------------------
# helpers for the command lines
# ---------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def workdir(keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pakn-bench-"))
    try:
        yield path
    finally:
        if not keep:
            import shutil

            shutil.rmtree(path, ignore_errors=True)


def secret_suffix() -> str:
    return secrets.token_hex(3)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    cells = [[title for _, title in columns]] + [[str(row.get(key, "")) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for index, line in enumerate(cells):
        print(
            "  ".join(
                cell.rjust(width) if i else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(line, widths, strict=True))
            )
        )
        if index == 0:
            print("  ".join("-" * width for width in widths))

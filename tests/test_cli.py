"""The ``pakn`` command as an operator uses it: real processes, real files, real HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import unused_port

from bot.receipts import example_code

ROOT = Path(__file__).resolve().parent.parent


def pakn(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


@pytest.fixture
def data_env(tmp_path: Path) -> dict[str, str]:
    return {"PAKN_DATA_DIR": str(tmp_path / "data"), "PAKN_DATABASE_URL": ""}


def test_units_list_shows_the_communes_and_provincial_units() -> None:
    result = pakn("units", "list")
    assert result.returncode == 0, result.stderr
    assert re.search(r"ubnd_xa_muong_phang +UBND Xã Mường Phăng +commune +thanh_tra", result.stdout)
    assert "thanh_tra" in result.stdout and "coordinator" in result.stdout
    assert "59 units, 45 communes and wards" in result.stdout


def test_deadlines_preview_for_a_denunciation_prints_the_rule() -> None:
    result = pakn("deadlines", "preview", "--type", "to_cao", "--received", "2026-02-12", "--accepted", "2026-02-12")
    assert result.returncode == 0, result.stderr
    assert "resolve-by:  2026-03-16" in result.stdout
    assert "Luật Tố cáo 2018, Điều 30" in result.stdout and "rule to_cao.resolve" in result.stdout
    result = pakn("deadlines", "preview", "--type", "gop_y", "--received", "2026-02-12")
    assert "accept-by:   2026-03-05  10 ngày làm việc — đến hết ngày 05/03/2026" in result.stdout


def test_deadlines_preview_rejects_bad_input_in_one_line() -> None:
    result = pakn("deadlines", "preview", "--type", "to_cao", "--received", "12/02/2026")
    assert result.returncode == 2 and "not a date (YYYY-MM-DD)" in result.stderr
    assert "Traceback" not in result.stderr
    result = pakn("deadlines", "preview", "--type", "kien_nghi", "--received", "2026-02-12", "--commune", "99")
    assert result.returncode == 2 and "unknown commune code" in result.stderr


def test_deadlines_preview_refuses_an_acceptance_before_the_receipt_and_far_dates() -> None:
    result = pakn("deadlines", "preview", "--type", "to_cao", "--received", "2026-01-01", "--accepted", "2025-01-01")
    assert result.returncode == 2 and "resolve-by" not in result.stdout
    assert result.stderr.splitlines() == [
        "pakn: --accepted 2025-01-01 is before --received 2026-01-01: "
        "an item is accepted on or after the day it is received"
    ]
    for args in (
        ("--received", "9999-12-30"),
        ("--received", "1999-12-31"),
        ("--received", "2026-01-01", "--accepted", "2101-01-03"),
    ):
        result = pakn("deadlines", "preview", "--type", "to_cao", *args)
        assert result.returncode == 2, args
        assert result.stderr.splitlines() == [f"pakn: {args[-2]} {args[-1]} is outside the years 2000-2100"]
    result = pakn("deadlines", "preview", "--type", "to_cao", "--received", "2100-12-31")
    assert result.returncode == 0, result.stderr
    same_day = pakn("deadlines", "preview", "--type", "to_cao", "--received", "2026-02-12", "--accepted", "2026-02-12")
    assert same_day.returncode == 0, same_day.stderr


def test_every_subcommand_has_help() -> None:
    for args in (
        ("serve",),
        ("db", "upgrade"),
        ("units", "list"),
        ("items", "list"),
        ("deadlines", "preview"),
        ("audit", "verify"),
    ):
        result = pakn(*args, "--help")
        assert result.returncode == 0 and "usage: pakn" in result.stdout, args


async def _submit_one(data_env: dict[str, str]) -> None:
    """File one identified item through the services, as a channel would, in the CLI's database."""
    from bot.app import build_context, prepare_database
    from bot.intake import Draft, submit_item
    from config import load_settings

    ctx = await build_context(load_settings({**os.environ, **data_env}))
    await prepare_database(ctx, migrate=True)
    draft = Draft(
        type="khieu_nai",
        category="dat_dai",
        commune_code="3325",
        anonymous=False,
        consent=True,
        name="Lò Văn Bình",
        phone="0912 345 678",
        description="Xã thu hồi đất không bồi thường, gọi 0912345678 để biết thêm chi tiết.",
    )
    async with ctx.sessions.begin() as session:
        await submit_item(ctx, session, draft, channel="telegram", channel_id="99887766")
    await ctx.engine.dispose()


def test_an_audit_row_edited_with_sqlite3_is_named(data_env: dict[str, str], tmp_path: Path) -> None:
    assert pakn("db", "upgrade", env=data_env).returncode == 0
    asyncio.run(_submit_one(data_env))
    result = pakn("audit", "verify", env=data_env)
    assert result.returncode == 0 and "1 events verified" in result.stdout
    listing = pakn("items", "list", "--unit", "ubnd_xa_muong_phang", env=data_env)
    assert "khieu_nai" in listing.stdout and "1 items" in listing.stdout
    with sqlite3.connect(tmp_path / "data" / "pakn.db") as connection:
        connection.execute("UPDATE audit_events SET actor = 'official:7' WHERE id = 1")
    result = pakn("audit", "verify", env=data_env)
    assert result.returncode == 1
    assert "audit chain BROKEN at event 1" in result.stderr


def test_a_citizens_phone_is_not_in_the_database_files(data_env: dict[str, str], tmp_path: Path) -> None:
    assert pakn("db", "upgrade", env=data_env).returncode == 0
    asyncio.run(_submit_one(data_env))
    blob = b"".join(path.read_bytes() for path in (tmp_path / "data").glob("pakn.db*"))
    assert blob
    for needle in ("912345678", "Lò Văn Bình".encode().decode(), "99887766"):
        assert needle.encode() not in blob, needle


def test_bad_settings_stop_serve_with_one_line(data_env: dict[str, str], tmp_path: Path) -> None:
    result = pakn("serve", env={**data_env, "PAKN_DATABASE_URL": "nosuchdb://x"})
    assert result.returncode == 3 and "PAKN_DATABASE_URL is not usable" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = pakn("serve", env={**data_env, "PAKN_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.returncode == 3 and "database postgresql+asyncpg://nobody@127.0.0.1:1/none" in result.stderr
    assert "Traceback" not in result.stderr
    key_file = tmp_path / "data" / "secret.key"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text("not a key\n")
    key_file.chmod(0o600)
    result = pakn("serve", env=data_env)
    assert result.returncode == 3 and "secret.key" in result.stderr and "Traceback" not in result.stderr
    bad_province = tmp_path / "province"
    bad_province.mkdir()
    result = pakn("serve", env={**data_env, "PAKN_PROVINCE_DIR": str(bad_province)})
    assert result.returncode == 3 and "province.toml: -: file not found" in result.stderr


def test_every_database_command_says_an_unusable_database_in_one_line(data_env: dict[str, str], tmp_path: Path) -> None:
    unreachable = {**data_env, "PAKN_DATABASE_URL": "postgresql://nobody:secret@127.0.0.1:1/none"}
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    commands = (
        ("db", "upgrade"),
        ("items", "list"),
        ("audit", "verify"),
        ("officials", "list"),
        ("officials", "revoke", "1"),
        ("invite", "--unit", "thanh_tra", "--role", "officer", "--out", str(tmp_path / "qr")),
    )
    for args in commands:
        result = pakn(*args, env=unreachable)
        assert result.returncode == 3, (args, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, args
        assert result.stderr.startswith("pakn: database postgresql+asyncpg://nobody:***@127.0.0.1:1/none: "), args
        assert "secret" not in result.stderr
        result = pakn(*args, env={**data_env, "PAKN_DATA_DIR": str(a_file)})
        assert result.returncode == 3, (args, result.stderr)
        assert result.stderr.splitlines() == [f"pakn: PAKN_DATA_DIR {a_file}: cannot create it: File exists"], args
    assert not any((tmp_path / "qr").iterdir())


async def test_serve_refuses_a_key_that_does_not_open_the_database(data_env: dict[str, str], tmp_path: Path) -> None:
    """A lost key file regenerated, or another PAKN_SECRET_KEY: the service would start, recognise no official
    and reach no citizen; it stops at once with one line. The reports still run (they open nothing sealed)."""
    await _submit_one(data_env)
    (tmp_path / "data" / "secret.key").unlink()  # a new one is made at the next start
    env = {**data_env, "PAKN_PORT": str(unused_port()), "PAKN_TELEGRAM_TOKEN": ""}
    result = pakn("serve", env=env)
    assert result.returncode == 3 and "PAKN_SECRET_KEY does not open the data already in the database" in result.stderr
    assert "Traceback" not in result.stderr
    assert pakn("audit", "verify", env=data_env).returncode == 0


def _serve(env: dict[str, str]) -> subprocess.Popen[str]:
    """``pakn serve`` as a process of its own (stop it with ``terminate()``: SIGTERM, as systemd does)."""
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _polling_env(data_env: dict[str, str], token: str, api_url: str) -> dict[str, str]:
    """``pakn serve`` polling a (fake) Bot API server."""
    return {
        **os.environ,
        **data_env,
        "PAKN_PORT": str(unused_port()),
        "PAKN_TELEGRAM_TOKEN": token,
        "PAKN_TELEGRAM_API_URL": api_url,
        "PAKN_TELEGRAM_MODE": "polling",
    }


async def test_serve_answers_healthz_and_metrics(data_env: dict[str, str], tmp_path: Path) -> None:
    port = unused_port()
    env = {**os.environ, **data_env, "PAKN_PORT": str(port), "PAKN_TELEGRAM_TOKEN": ""}
    process = _serve(env)
    try:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                        assert response.status == 200
                        body = await response.json()
                        break
                except aiohttp.ClientConnectionError:
                    assert process.poll() is None, process.stderr.read() if process.stderr else ""
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.2)
            assert body == {"status": "ok", "database": "ok", "backend": "sqlite"}
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                metrics = await response.text()
            assert "pakn_database_up 1.0" in metrics and 'pakn_http_requests_total{route="/healthz"' in metrics
            async with http.get(f"http://127.0.0.1:{port}/chat") as response:
                assert response.status == 200 and "Phản ánh, kiến nghị" in await response.text()
        assert (tmp_path / "data" / "secret.key").stat().st_mode & 0o777 == 0o600
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert "Telegram is off: set PAKN_TELEGRAM_TOKEN" in stderr
    # SIGTERM (systemd's stop) is a clean stop: requests finished, tasks stopped, database closed
    assert process.returncode == 0 and "PAKN stopping" in stderr and "Traceback" not in stderr


async def test_serve_talks_to_a_bot_api_server_by_polling(data_env: dict[str, str]) -> None:
    from tests.fakes.telegram_api import FakeBotAPI

    token = "123456:TEST-token"
    async with FakeBotAPI(token=token) as fake:
        process = _serve(_polling_env(data_env, token, fake.url))
        try:
            await fake.wait_for("getUpdates", timeout=30, answered=False)
            assert {c["command"] for c in fake.commands_for("")} >= {"start", "track"}
            fake.enqueue_update(fake.make_message(4242, "/start", user=4242))
            reply = await fake.wait_for("sendMessage", lambda c: str(c.params.get("chat_id")) == "4242", timeout=15)
            assert "Xin chào!" in reply.params["text"]
        finally:
            process.terminate()  # the fake Bot API keeps answering (this loop) while the bot stops polling
            _, stderr = await asyncio.to_thread(process.communicate, timeout=20)
        assert process.returncode == 0 and "PAKN stopping" in stderr and "Traceback" not in stderr, stderr


async def test_serve_stopped_while_a_filing_is_handled_sends_its_receipt_and_records_it(
    data_env: dict[str, str], tmp_path: Path
) -> None:
    """Polling: an update fetched just before SIGTERM is handled to the end, and its receipt's sending too, before
    the service closes the bot and the database. Otherwise the receipt goes out (or not) with the database still
    saying "sending", and a restart sends it again a minute later. Here the filing waits for SQLite's write lock
    (held by this test) while the service is told to stop, and Telegram takes 3 s to accept the receipt (longer
    than the filing waits for it)."""
    from tests.fakes.telegram_api import FakeBotAPI
    from tests.reports import fill_in_report
    from tests.telegram_user import TelegramUser

    token = "123456:TEST-token"
    async with FakeBotAPI(token=token) as fake:
        send_message = fake._send_message

        async def slow_receipt(params: dict[str, Any]) -> Any:
            if "Đơn vị tiếp nhận" in str(params.get("text", "")):
                await asyncio.sleep(3)
            return await send_message(params)

        process = _serve(_polling_env(data_env, token, fake.url))
        lock: sqlite3.Connection | None = None
        try:
            await fake.wait_for("getUpdates", timeout=30, answered=False)  # the database is there by now
            lock = sqlite3.connect(tmp_path / "data" / "pakn.db", isolation_level=None)
            user = TelegramUser(fake, 4343)
            await user.say("/start")
            await fill_in_report(
                user, commune="Mường Phăng", description="Đèn đường trước trường tiểu học hỏng đã lâu."
            )
            await user.press("ẩn danh")
            fake.set_handler("sendMessage", slow_receipt)
            lock.execute("BEGIN IMMEDIATE")
            button = next(
                button["callback_data"]
                for message in user.received
                for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
                for button in row
                if "Gửi" in button["text"]
            )
            fake.enqueue_update(fake.make_callback(user.chat_id, button, user=user.chat_id))
            while fake.pending_updates:  # fetched by the service, which now waits for the lock
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            process.terminate()
            await asyncio.sleep(1)
            lock.execute("ROLLBACK")
            _, stderr = await asyncio.to_thread(process.communicate, timeout=40)
        finally:
            if lock is not None:
                lock.close()
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0 and "Traceback" not in stderr, stderr
        receipts = [message for message in fake.sent_to(user.chat_id) if "Đơn vị tiếp nhận" in message.text]
        assert len(receipts) == 1
    with sqlite3.connect(tmp_path / "data" / "pakn.db") as database:
        statuses = [status for (status,) in database.execute("SELECT status FROM outbox")]
    assert statuses == ["sent"]


async def test_serve_seals_audit_events_that_any_process_committed(data_env: dict[str, str], tmp_path: Path) -> None:
    """An audited write (here: a filing by another process) leaves its event unsealed; the running service
    chains it within seconds, so `pakn audit verify` finds nothing left to seal. The service's commits leave
    their pages in SQLite's log, and its checkpointer copies them into the database file within seconds too. At stop
    it leaves SQLite's query statistics behind."""
    assert pakn("db", "upgrade", env=data_env).returncode == 0
    await _submit_one(data_env)
    database = tmp_path / "data" / "pakn.db"

    def unsealed(path: Path = database) -> int:
        with sqlite3.connect(path) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM audit_events WHERE seq IS NULL").fetchone()[0])

    def unsealed_in_database_file() -> int:
        """What the database file says without its log."""
        copy = tmp_path / "copy.db"
        copy.write_bytes(database.read_bytes())
        try:
            return unsealed(copy)
        except sqlite3.DatabaseError:  # not there yet, or a copy torn by the checkpointer writing meanwhile
            return -1
        finally:
            copy.unlink()

    assert unsealed() == 1
    port = unused_port()
    process = _serve({**os.environ, **data_env, "PAKN_PORT": str(port), "PAKN_TELEGRAM_TOKEN": ""})
    try:
        deadline = time.monotonic() + 30
        while unsealed():
            assert process.poll() is None and time.monotonic() < deadline, "the service never sealed the event"
            await asyncio.sleep(0.2)
        while unsealed_in_database_file():
            assert process.poll() is None and time.monotonic() < deadline, "the log was never checkpointed"
            await asyncio.sleep(0.2)
        track = f"http://127.0.0.1:{port}/track"  # a look-up by receipt code: the service queries its items
        async with aiohttp.ClientSession() as http, http.post(track, data={"code": example_code("DB")}) as response:
            assert response.status == 404
    finally:
        process.terminate()
        process.communicate(timeout=20)
    result = pakn("audit", "verify", env=data_env)
    assert result.returncode == 0 and "1 events verified (0 sealed just now)" in result.stdout
    # Before its connection closed, SQLite's query statistics were gathered for what the service queried (the
    # look-up above): the planner's figures for the next start.
    with sqlite3.connect(database) as connection:
        assert "items" in {table for (table,) in connection.execute("SELECT tbl FROM sqlite_stat1")}

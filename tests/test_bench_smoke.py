"""The benchmarks still run: the webhook harness with 3 citizens against a real `pakn serve` (SQLite) and the
stock PTB echo bot, and the scale benchmark's seeding and measurements on a few hundred items.

The figures themselves are not checked (they belong in docs/PERFORMANCE.md, measured on a quiet machine),
only that every part of each harness works and reports what it should.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from bench import scale, webhook_flow
from bench.harness import CITIZEN_SCRIPT, TOKEN, ArrivalFake


def test_webhook_flow_runs_citizens_and_the_echo_baseline(tmp_path: Path) -> None:
    out = tmp_path / "flow.json"
    argv = ["-n", "3", "-c", "3", "--quiet", "0.1", "--max-seconds", "60", "--rounds", "2", "--ramp-up", "1.5"]
    argv += ["--json", str(out)]
    assert webhook_flow.main(argv) == 0
    document = json.loads(out.read_text())
    assert [(r["round"], r["target"]) for r in document["results"]] == [
        (1, "pakn"),
        (1, "ptb-echo"),
        (2, "ptb-echo"),  # every other round the echo bot goes first
        (2, "pakn"),
    ]
    echo, pakn = document["results"][2:]
    assert (pakn["target"], pakn["database"], echo["target"]) == ("pakn", "sqlite", "ptb-echo")
    for result in (pakn, echo):
        assert result["citizens"] == 3 and result["errors"] == 0
        assert result["updates"] == 3 * len(CITIZEN_SCRIPT)
        assert result["updates_per_s"] > 0 and result["cpu_ms_per_update"] > 0 and result["p99_ms"] > 0
        assert result["seconds"] >= 1.0  # the third citizen started 1 s after the first (no ramp-up: ~0.1 s)
    assert pakn["items"] == 3
    assert pakn["api_calls"]["sendMessage"] >= pakn["updates"]
    assert pakn["api_calls"]["answerCallbackQuery"] == 3 * sum(kind == "button" for kind, _ in CITIZEN_SCRIPT)
    assert echo["replies_per_update"] == [1] * len(CITIZEN_SCRIPT)
    assert document["ramp_up_s"] == 1.5
    assert set(document["ratios"]) == {"sqlite"}
    ratio = document["ratios"]["sqlite"]
    each = [r["updates_per_s"] for r in document["results"]]
    assert ratio["rounds"] == [round(each[0] / each[1], 2), round(each[3] / each[2], 2)]  # each round's own echo
    assert ratio["throughput"] == round((each[0] / each[1] + each[3] / each[2]) / 2, 2)  # the median of two


def test_scale_seeds_and_measures_with_indexes(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    argv = ["--items", "300", "--no-http", "--repeat", "1", "--busy-ticks", "1", "--json", str(out)]
    assert scale.main(argv) == 0
    (result,) = json.loads(out.read_text())["results"]
    assert result["rows"]["items"] == 300 and result["rows"]["clocks"] >= 300
    for name in ("track look-up (bot.tracking.public_status)", "scheduler tick, nothing due"):
        assert result["timings"][name]["n"] >= 1
    tick_plan = " ".join(line for _, lines in result["plans"]["tick"] for line in lines)
    assert "ix_clocks_next_due_at" in tick_plan
    track_plan = " ".join(line for _, lines in result["plans"]["track"] for line in lines)
    assert "USING INDEX" in track_plan and "SCAN" not in track_plan
    # Each alarm rung writes its audit event with a prepared statement, which SQLAlchemy's events never see; the
    # count comes from SQLite's own trace.
    notes = result["notes"]
    assert notes["alarms_rung"] >= 1
    assert notes["statements_per_busy_tick"] >= notes["of_them_through_sqlalchemy"] + notes["alarms_rung"]


async def test_latency_ends_when_the_last_reply_reached_the_api_even_before_the_webhooks_answer() -> None:
    """The harness waits for the webhook's answer before it counts replies; a reply sent through the Bot API (a
    receipt) may have arrived before that answer, and the update's latency then ends at its arrival, not when
    the harness got round to counting."""
    fake = ArrivalFake()
    await fake.start()
    try:
        chat = fake.make_user(4242)["id"]
        between: list[float] = []
        async with aiohttp.ClientSession() as http:
            for text in ("Biên nhận", "Bạn muốn làm gì?"):
                payload = {"chat_id": chat, "text": text}
                async with http.post(f"{fake.url}/bot{TOKEN}/sendMessage", json=payload) as response:
                    assert response.status == 200
                between.append(time.perf_counter())
        await asyncio.sleep(0.2)  # the webhook's answer, say, still on its way
        first = await fake.wait_sends(chat, 1, timeout=1)
        second = await fake.wait_sends(chat, 2, timeout=1)
        assert first <= between[0] <= second <= between[1], "each is timed from its own arrival"
    finally:
        await fake.stop()

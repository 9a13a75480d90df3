"""The digest benchmark (bench/digest_scale.py) still runs end to end, with a tiny province, on both backends."""

from __future__ import annotations

from bench.digest_scale import WEEK, describe, run


async def test_the_digest_benchmark_runs_on_a_small_province(database_url: tuple[str, str | None]) -> None:
    url, schema = database_url
    result = await run(3000, url, schema=schema or "pakn_bench", repeat=1, keep=True)
    assert result.items == 3000
    assert result.clocks > 3000 and result.events > 3000 and result.desk_ratings == 750
    # About 3000 / 156 weeks arrive in the timed week, and the backlog of abandoned items is overdue.
    assert 5 < result.received < 60 and result.overdue > 0
    assert result.units == 59 and len(result.digest_seconds) == 1 and result.digest_seconds[0] > 0
    report = describe(result)
    assert f"week:           {WEEK.label}" in report and "digest, all units (aggregate queries)" in report

"""The dedupe table stays small in a bot that never restarts: expired rows are swept as it runs."""

from __future__ import annotations

from pathlib import Path

from bot.state import State

DAY = 86_400.0


def test_a_month_without_restart_keeps_only_the_claims_within_the_ttl(tmp_path: Path) -> None:
    state = State(tmp_path / "s.sqlite3", dedupe_ttl_hours=1)
    start = 1_800_000_000.0
    # a fake clock: one delivery every 2 minutes for 30 days (21,600 claims)
    now = start
    while now < start + 30 * DAY:
        assert state.claims.claim(f"event:{now}", now=now)
        now += 120
    # before: all 21,600 rows were still there (they were only swept at startup)
    # after: the last hour's 30, plus at most one sweep interval's worth not yet swept
    assert state.claims.count() <= 30 + 600 / 120 + 1
    assert not state.claims.claim(f"event:{now - 120}", now=now)  # the latest is still a duplicate
    state.close()


def test_the_table_is_bounded_however_busy_the_bot_is(tmp_path: Path) -> None:
    state = State(tmp_path / "s.sqlite3", dedupe_ttl_hours=24, max_claims=50)
    now = 1_800_000_000.0
    for i in range(400):  # far more deliveries within the TTL than the bound
        state.claims.claim(f"event:{i}", now=now + i * 2)
    state.claims.purge_expired(now=now + 800)
    assert state.claims.count() == 50
    assert not state.claims.claim("event:399", now=now + 801)  # the newest are the ones kept
    assert state.claims.claim("event:0", now=now + 802)  # the oldest went first
    state.close()

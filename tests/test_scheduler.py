"""Recurring jobs: cron and interval schedules, upserts, misfires, exactly once per tick."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from jobqueue import JobInfo, JobQueue, JobStatus, QueueEvent, WorkerConfig
from jobqueue.errors import InvalidCronError, InvalidOptionError
from jobqueue.scheduler import ScheduleDefinition, check_cron, cron_next, time_zone
from jobqueue.testing import redis_command, redis_keys

from .helpers import eventually, port_of, redis_time_ms

NEW_YORK = time_zone("America/New_York")


def at(*fields: int, tz: Any = timezone.utc) -> int:
    return round(datetime(*fields, tzinfo=tz).timestamp() * 1000)  # type: ignore[misc]


# -- next run times, on fixed dates (no waiting, no wall clock) ----------------------------


def test_five_and_six_field_cron() -> None:
    assert check_cron(" 0  2 * * * ") == "0 2 * * *"
    assert cron_next("0 2 * * *", timezone.utc, at(2026, 1, 10, 3)) == at(2026, 1, 11, 2)
    # 6 fields: seconds first, as BullMQ.
    start = at(2026, 1, 10, 12, 0, 7)
    assert cron_next("*/15 * * * * *", timezone.utc, start) == at(2026, 1, 10, 12, 0, 15)
    assert cron_next("30 * * * * *", timezone.utc, start) == at(2026, 1, 10, 12, 0, 30)


@pytest.mark.parametrize("bad", ["", "* * * *", "* * * * * * *", "61 * * * *", "x y z a b", 5])
def test_invalid_cron_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidCronError) as info:
        check_cron(bad)
    assert info.value.field == "cron"


def test_time_zones_follow_daylight_saving() -> None:
    # 02:00 in New York is 07:00 UTC in winter (EST) and 06:00 UTC in summer (EDT).
    assert cron_next("0 2 * * *", NEW_YORK, at(2026, 1, 10)) == at(2026, 1, 10, 7)
    assert cron_next("0 2 * * *", NEW_YORK, at(2026, 7, 10)) == at(2026, 7, 10, 6)


def test_spring_forward_runs_a_skipped_tick_at_the_first_valid_time() -> None:
    first = cron_next("30 2 * * *", NEW_YORK, at(2026, 3, 7, 12, tz=NEW_YORK))
    assert first == at(2026, 3, 8, 7)  # 03:00 EDT: 02:30 does not exist that day
    assert cron_next("30 2 * * *", NEW_YORK, first) == at(2026, 3, 9, 6, 30)


def test_fall_back_runs_a_repeated_tick_in_both_occurrences() -> None:
    first = cron_next("30 1 * * *", NEW_YORK, at(2026, 10, 31, 12, tz=NEW_YORK))
    second = cron_next("30 1 * * *", NEW_YORK, first)
    assert (first, second) == (at(2026, 11, 1, 5, 30), at(2026, 11, 1, 6, 30))


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(InvalidOptionError) as info:
        time_zone("Mars/Olympus_Mons")
    assert info.value.field == "tz"


def definition(**overrides: Any) -> ScheduleDefinition:
    fields: dict[str, Any] = {
        "name": "t", "data": "null", "opts": "{}", "priority": 0, "delay": 0,
        "max_attempts": 1, "cron": None, "tz": None, "every": 1000, "jitter": 0,
        "misfire": "skip", "max_catch_up": 100,
    }  # fmt: skip
    fields.update(overrides)
    return ScheduleDefinition(**fields)


def test_plan_on_time_and_after_downtime() -> None:
    every = definition(every=1000)
    assert every.plan(10_000, 10_050) == ([10_000], 11_000)
    # Down from 10 s to 14.5 s: skip runs the latest missed tick once.
    assert every.plan(10_000, 14_500) == ([14_000], 15_000)
    run_all = definition(every=1000, misfire="run_all", max_catch_up=3)
    assert run_all.plan(10_000, 14_500) == ([12_000, 13_000, 14_000], 15_000)
    cron = definition(every=None, cron="* * * * * *")
    assert cron.plan(at(2026, 1, 1), at(2026, 1, 1) + 20) == (
        [at(2026, 1, 1)],
        at(2026, 1, 1, 0, 0, 1),
    )
    missed = cron.plan(at(2026, 1, 1), at(2026, 1, 1, 0, 0, 5, 500))  # type: ignore[arg-type]
    assert missed == ([at(2026, 1, 1, 0, 0, 5)], at(2026, 1, 1, 0, 0, 6))
    cron_all = definition(every=None, cron="* * * * * *", misfire="run_all", max_catch_up=10)
    ticks, following = cron_all.plan(at(2026, 1, 1), at(2026, 1, 1, 0, 0, 3))
    assert ticks == [at(2026, 1, 1, 0, 0, s) for s in range(4)]
    assert following == at(2026, 1, 1, 0, 0, 4)


def test_interval_jitter_stays_inside_the_window() -> None:
    jittered = definition(every=1000, jitter=200)
    for _ in range(200):
        _, following = jittered.plan(10_000, 10_001)
        assert 11_000 <= following <= 11_200


# -- against Redis -------------------------------------------------------------------------


async def test_bad_schedules_write_nothing(
    make_queue: Callable[..., JobQueue], redis_url: str
) -> None:
    queue = make_queue()
    await queue.add_job("t", None)
    keys = redis_keys(port_of(redis_url))
    with pytest.raises(InvalidCronError):
        await queue.schedule_job("t", None, "not a cron")
    with pytest.raises(InvalidOptionError, match="tz"):
        await queue.schedule_job("t", None, "0 2 * * *", tz="Nowhere/Town")
    with pytest.raises(InvalidOptionError, match="jitter must be less than interval_ms"):
        await queue.schedule_every("t", None, 1000, jitter=1000)
    with pytest.raises(InvalidOptionError, match="interval_ms"):
        await queue.schedule_every("t", None, 0)
    with pytest.raises(InvalidOptionError, match="misfire"):
        await queue.schedule_every("t", None, 1000, misfire="sometimes")
    with pytest.raises(InvalidOptionError, match="idempotency_key"):
        await queue.schedule_every("t", None, 1000, idempotency_key="k")
    with pytest.raises(InvalidOptionError, match="attempts"):
        await queue.schedule_every("t", None, 1000, attempts=0)
    with pytest.raises(Exception, match="set is not JSON"):
        await queue.schedule_every("t", {1}, 1000)
    assert redis_keys(port_of(redis_url)) == keys


async def test_upsert_named_schedules_and_unschedule(
    make_queue: Callable[..., JobQueue], redis_url: str
) -> None:
    queue = make_queue()
    first = await queue.schedule_job("report", {"type": "full"}, "0 2 * * *")
    again = await queue.schedule_job("report", {"type": "full"}, "0 2 * * *")
    other_data = await queue.schedule_job("report", {"type": "lite"}, "0 2 * * *")
    assert first == again and other_data != first
    assert len(await queue.list_schedules()) == 2

    named = await queue.schedule_every("beat", {"s": 1}, 60_000, schedule_id="heartbeat")
    assert named == "heartbeat"
    before = {s.id: s for s in await queue.list_schedules()}["heartbeat"]
    assert (before.every, before.cron, before.last_run_at) == (60_000, None, None)
    now = redis_time_ms(port_of(redis_url))
    assert before.next_run_at is not None and now < before.next_run_at <= now + 60_000
    # The same pattern again keeps the next run; a new pattern replaces the schedule.
    await queue.schedule_every("beat", {"s": 2}, 60_000, schedule_id="heartbeat")
    kept = {s.id: s for s in await queue.list_schedules()}["heartbeat"]
    assert (kept.next_run_at, kept.data) == (before.next_run_at, {"s": 2})
    await queue.schedule_job("beat", {"s": 2}, "*/5 * * * * *", schedule_id="heartbeat")
    replaced = {s.id: s for s in await queue.list_schedules()}["heartbeat"]
    assert (replaced.cron, replaced.every) == ("*/5 * * * * *", None)
    assert replaced.next_run_at is not None and replaced.next_run_at % 5000 == 0
    assert len(await queue.list_schedules()) == 3

    assert await queue.unschedule("heartbeat") is True
    assert await queue.unschedule("heartbeat") is False
    assert {s.id for s in await queue.list_schedules()} == {first, other_data}
    await queue.clear()
    assert await queue.list_schedules() == []


async def test_cron_with_seconds_runs_on_time(make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue()
    added: list[JobInfo] = []
    queue.on(QueueEvent.JOB_ADDED, added.append)
    queue.process("tick", lambda job: None)
    sid = await queue.schedule_job("tick", {"k": 1}, "* * * * * *", remove_on_complete=False)
    await queue.start_worker()

    async def three_done() -> list[JobInfo]:
        done = await queue.get_jobs_by_status(JobStatus.COMPLETED)
        return done if len(done) >= 3 else []

    done = await eventually(three_done, timeout=15)
    for job in done:
        assert job.schedule_id == sid and job.data == {"k": 1}
        assert job.scheduled_for is not None and job.scheduled_for % 1000 == 0
        assert job.processed_at is not None
        assert 0 <= job.processed_at - job.scheduled_for < 1000  # generous: on time
    assert len({j.scheduled_for for j in done}) == len(done)
    assert {j.id for j in done} <= {j.id for j in added}  # JOB_ADDED fired for each
    info = (await queue.list_schedules())[0]
    assert info.last_run_at is not None and info.last_run_at >= max(
        j.scheduled_for or 0 for j in done
    )


async def test_every_with_jitter_stays_inside_interval_and_jitter(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue()
    await queue.pause()  # jobs pile up as waiting; only the ticks matter here
    await queue.schedule_every("beat", None, 150, jitter=100)
    await queue.start_worker()

    async def six() -> list[JobInfo]:
        jobs = await queue.get_jobs_by_status(JobStatus.PAUSED)
        return jobs if len(jobs) >= 6 else []

    jobs = await eventually(six, timeout=15)
    ticks = sorted(j.scheduled_for or 0 for j in jobs)
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert all(150 <= gap <= 250 for gap in gaps), gaps


async def test_scheduler_can_be_turned_off(make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue(worker=WorkerConfig(scheduler=False))
    await queue.schedule_every("beat", None, 50)
    await queue.start_worker()
    await asyncio.sleep(0.5)  # asserting that nothing happens needs a wait
    assert (await queue.get_stats()).waiting == 0


@pytest.mark.parametrize(("misfire", "expected"), [("skip", 1), ("run_all", 5)])
async def test_misfire_policies_after_downtime(
    make_queue: Callable[..., JobQueue], redis_url: str, misfire: str, expected: int
) -> None:
    queue = make_queue()
    await queue.pause()
    sid = await queue.schedule_every("beat", None, 1000, misfire=misfire, max_catch_up=5)
    # Pretend no scheduler ran for the last 20 s: the next run is long past.
    now = redis_time_ms(port_of(redis_url))
    redis_command(port_of(redis_url), "ZADD", f"jq:{{{queue.name}}}:schedules:next",
                  str(now - 20_000), sid)  # fmt: skip
    await queue.start_worker()

    async def caught_up() -> list[JobInfo]:
        return await queue.get_jobs_by_status(JobStatus.PAUSED)

    jobs = await eventually(caught_up, timeout=10)
    await asyncio.sleep(0.3)  # any extra catch-up jobs would show up by now
    jobs = await queue.get_jobs_by_status(JobStatus.PAUSED)
    ticks = sorted(j.scheduled_for or 0 for j in jobs)
    assert len(ticks) == expected
    assert ticks[-1] > now - 1000  # the latest missed tick
    assert all(b - a == 1000 for a, b in itertools.pairwise(ticks))
    info = (await queue.list_schedules())[0]
    assert info.next_run_at is not None and info.next_run_at > now  # back on the pattern

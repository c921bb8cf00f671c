"""Configuration objects are validated when constructed, naming the bad field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jobqueue import (
    Backoff,
    DLQConfig,
    Durability,
    JobOptions,
    JobQueue,
    QueueSettings,
    RateLimit,
    RedisConfig,
    RetryConfig,
    WorkerConfig,
)
from jobqueue.errors import InvalidOptionError


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: RedisConfig(port=0), "redis.port"),
        (lambda: RedisConfig(port=70000), "redis.port"),
        (lambda: RedisConfig(db=-1), "redis.db"),
        (lambda: RedisConfig(url="http://localhost"), "redis.url"),
        (lambda: RedisConfig(url="redis://localhost:notaport"), "redis.url"),
        (lambda: RedisConfig(url=""), "redis.url"),
        (lambda: RedisConfig(connect_timeout=0), "redis.connect_timeout"),
        (lambda: RedisConfig(command_timeout=-1), "redis.command_timeout"),
        (lambda: RedisConfig(tls={"ca": "x"}), "tls"),
        (lambda: RedisConfig(tls={"ca_certs": "/no/such/file"}), "tls.ca_certs"),
        (lambda: RedisConfig(tls="yes"), "tls"),
        (lambda: RedisConfig(retry_strategy=5), "redis.retry_strategy"),  # type: ignore[arg-type]
        (lambda: RedisConfig(enable_ready_check=1), "redis.enable_ready_check"),  # type: ignore[arg-type]
        (lambda: RedisConfig(sentinels=["a:1"]), "redis.service_name"),
        (lambda: RedisConfig(service_name="s"), "redis.sentinels"),
        (lambda: RedisConfig(sentinels=[], service_name="s"), "redis.sentinels"),
        (lambda: RedisConfig(sentinels=["a:x"], service_name="s"), "redis.sentinels"),
        (lambda: RedisConfig(sentinels=[("a", 0)], service_name="s"), "redis.sentinels"),
        (lambda: RedisConfig(sentinels=["a"], service_name="s", host="h"), "redis.host"),
        (lambda: RedisConfig(url="redis+sentinel://a:1"), "redis.url"),
        (lambda: RedisConfig(url="redis+sentinel:///svc"), "redis.url"),
        (lambda: RedisConfig(url="redis+sentinel://a:1/svc/x"), "redis.url"),
        (lambda: QueueSettings(durability=1), "settings.durability"),  # type: ignore[arg-type]
        (lambda: Durability(replicas=0), "settings.durability.replicas"),
        (lambda: Durability(timeout=0), "settings.durability.timeout"),
        (
            lambda: QueueSettings(lock_duration=1000, lock_renew_time=1000),
            "settings.lock_renew_time",
        ),
        (lambda: QueueSettings(max_stalled_count=-1), "settings.max_stalled_count"),
        (lambda: QueueSettings(max_payload_bytes=0), "settings.max_payload_bytes"),
        (lambda: RateLimit(max=0, duration=1000), "limiter.max"),
        (lambda: RateLimit(max=5, duration=0), "limiter.duration"),
        (lambda: WorkerConfig(concurrency=0), "worker.concurrency"),
        (lambda: WorkerConfig(limiter=5), "worker.limiter"),  # type: ignore[arg-type]
        (lambda: DLQConfig(notification_handler=3), "dlq.notification_handler"),  # type: ignore[arg-type]
        (lambda: DLQConfig(enabled="yes"), "dlq.enabled"),  # type: ignore[arg-type]
        (lambda: RetryConfig(max_attempts=0), "retry.max_attempts"),
        (lambda: RetryConfig(backoff_type="linear"), "retry.backoff_type"),  # type: ignore[arg-type]
        (lambda: Backoff.exponential(1000, max_delay=10), "backoff.max_delay"),
        (lambda: Backoff.fixed(100, jitter=2), "backoff.jitter"),
        (lambda: JobOptions(attempts=0), "attempts"),
        (lambda: JobQueue(""), "name"),
        (lambda: JobQueue("a{b}"), "name"),
        (lambda: JobQueue("a b"), "name"),
        (lambda: JobQueue(5), "name"),  # type: ignore[arg-type]
        (lambda: JobQueue("q", prefix="p{x"), "prefix"),
        (lambda: JobQueue("q", redis=5), "redis"),  # type: ignore[arg-type]
        (lambda: JobQueue("q", settings=5), "settings"),  # type: ignore[arg-type]
        (lambda: JobQueue("q", worker={"concurrency": -1}), "worker.concurrency"),
        (lambda: JobQueue("q", default_job_options={"job_id": "x"}), "default_job_options.job_id"),
        (lambda: JobQueue("q", default_job_options={"colour": 1}), "default_job_options"),
        (lambda: JobQueue("q", metrics=object()), "metrics"),  # type: ignore[arg-type]
        (lambda: JobQueue("q", telemetry=object()), "telemetry"),  # type: ignore[arg-type]
    ],
)
def test_bad_configuration_names_the_field(make: Any, field: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        make()
    assert info.value.field == field


def test_durations_accept_timedelta() -> None:
    settings = QueueSettings(
        lock_duration=timedelta(seconds=20), max_stalled_interval=timedelta(milliseconds=1500)
    )
    assert settings.lock_duration == 20_000
    assert settings.lock_renew_time == 10_000  # half the lock by default
    assert settings.max_stalled_interval == 1500
    assert RateLimit(max=10, duration=timedelta(seconds=1)).duration == 1000
    assert JobOptions(delay=timedelta(minutes=1)).delay == 60_000


def test_dict_forms_of_config_objects() -> None:
    q = JobQueue(
        "q",
        redis={"host": "h", "port": 7000},
        worker={"concurrency": 5, "limiter": {"max": 10, "duration": 1000}},
        settings={"lock_duration": 10_000},
        dlq={"enabled": False},
    )
    assert q.config.worker.concurrency == 5
    assert q.config.worker.limiter == RateLimit(max=10, duration=1000)
    assert q.config.settings.lock_duration == 10_000
    assert q.config.dlq.enabled is False
    assert q.redis_config.native_kwargs()["url"] == "redis://h:7000/0"


def test_default_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBQUEUE_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert JobQueue("q").redis_config.url == "redis://localhost:6379/0"
    monkeypatch.setenv("REDIS_URL", "redis://from-redis-url:1/0")
    assert JobQueue("q").redis_config.url == "redis://from-redis-url:1/0"
    monkeypatch.setenv("JOBQUEUE_REDIS_URL", "redis://from-jobqueue:2/0")
    assert JobQueue("q").redis_config.url == "redis://from-jobqueue:2/0"


@pytest.mark.parametrize(
    ("config", "url"),
    [
        (RedisConfig(url="redis://:pw@h:1/2"), "redis://:pw@h:1/2"),
        (RedisConfig(url="redis://u:pw@h:1/2", db=5, port=9), "redis://u:pw@h:9/5"),
        (RedisConfig(host="h", password="p@ss:word"), "redis://:p%40ss%3Aword@h:6379/0"),
        (RedisConfig(host="::1"), "redis://[::1]:6379/0"),
        (RedisConfig(url="rediss://h:6380"), "rediss://h:6380/0"),
        (RedisConfig(host="h", tls=True), "rediss://h:6379/0"),
        (RedisConfig(host="h", tls={"insecure": True}), "rediss://h:6379/0#insecure"),
        (RedisConfig(url="unix:///tmp/redis.sock"), "unix:///tmp/redis.sock"),
        # Sentinel and cluster URLs carry the login and TLS on; the servers come apart.
        (RedisConfig(url="rediss+sentinel://:pw@s:1/svc/3"), "rediss://:pw@s:1/3"),
        (RedisConfig(url="redis+sentinel://s:1/svc", tls=True), "rediss://s:1/0"),
        (RedisConfig(url="rediss+cluster://a:1,b:2"), "rediss://a:1/0"),
        (RedisConfig(cluster_nodes=["a:1"], tls={"insecure": True}), "rediss://a:1/0#insecure"),
    ],
)
def test_connection_url_combines_url_and_fields(config: RedisConfig, url: str) -> None:
    assert config.native_kwargs()["url"] == url


def test_secrets_never_show_in_repr_or_errors() -> None:
    config = RedisConfig(url="redis://app:s3cret-url@h:1/0", password="s3cret-field")
    shown = repr(config) + str(config) + repr(JobQueue("q", redis=config))
    assert "s3cret" not in shown
    assert "app:***@h" in shown
    with pytest.raises(InvalidOptionError) as info:
        RedisConfig(url="http://u:s3cret@h")
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("bad", ["a:b", "1:logs", "x}", "{other}", "a b", "nul\x00", "tab\t"])
def test_job_ids_cannot_name_other_keys(bad: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        JobOptions(job_id=bad)
    assert info.value.field == "job_id"


def test_queue_names_cannot_hold_control_characters() -> None:
    with pytest.raises(InvalidOptionError):
        JobQueue("bad\x00name")


def test_a_durability_wait_must_end_within_the_command_timeout() -> None:
    # WAIT runs within the write's request: past the command timeout, a write that
    # happened would be reported as a broken connection. Found in review.
    settings = QueueSettings(durability=Durability(replicas=1, timeout=300))
    with pytest.raises(InvalidOptionError, match=r"settings\.durability\.timeout.*command_timeout"):
        JobQueue("q", redis=RedisConfig(command_timeout=300), settings=settings)
    JobQueue("q", redis=RedisConfig(command_timeout=301), settings=settings)  # accepted
    JobQueue("q", settings=settings)  # no command timeout: accepted

"""Type stubs of the Rust extension module ``jobqueue._native``."""

from collections.abc import Awaitable, Callable
from typing import Any

LAYOUT_VERSION: str

def shutdown_runtime() -> None: ...

NewJob = tuple[str | None, str, Any, str, int, int, int, str | None]

class NativeQueue:
    def __init__(
        self,
        name: str,
        prefix: str,
        url: str,
        *,
        tls: bool = False,
        tls_root_cert: bytes | None = None,
        tls_client_cert: bytes | None = None,
        tls_client_key: bytes | None = None,
        connect_timeout_ms: int = 10_000,
        command_timeout_ms: int | None = None,
        ready_check: bool = True,
        retry_strategy: Callable[[int], int | float | None] | None = None,
        max_payload_bytes: int = ...,
        idempotency_ttl_ms: int = 86_400_000,
    ) -> None: ...
    @property
    def key_base(self) -> str: ...
    def add_jobs(self, jobs: list[NewJob]) -> Awaitable[list[tuple[str, bool, int]]]: ...
    def get_job(
        self, job_id: str
    ) -> Awaitable[tuple[dict[str, str], list[str], bool] | None]: ...
    def get_jobs(
        self, status: str, limit: int
    ) -> Awaitable[tuple[bool, list[tuple[str, dict[str, str], list[str]]]]]: ...
    def get_stats(self) -> Awaitable[tuple[int, int, int, int, int, int, bool, int]]: ...
    def remove_job(self, job_id: str) -> Awaitable[None]: ...
    def drain(self, include_delayed: bool) -> Awaitable[int]: ...
    def clear(self) -> Awaitable[int]: ...
    def set_paused(self, paused: bool) -> Awaitable[None]: ...
    def health(self) -> Awaitable[tuple[float, str, int]]: ...
    def close(self) -> None: ...

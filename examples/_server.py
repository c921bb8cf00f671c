"""Run an example against $REDIS_URL, or a throwaway redis-server started for it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

from jobqueue.testing import RedisServer


def run_example(main: Callable[[str], Coroutine[Any, Any, None]]) -> None:
    url = os.environ.get("REDIS_URL")
    if url:
        asyncio.run(main(url))
        return
    with RedisServer() as server:
        print(f"(started a throwaway redis-server at {server.url})\n")
        asyncio.run(main(server.url))

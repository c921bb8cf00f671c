"""The ceiling the benchmarks compare with: ``redis-benchmark`` running EVALSHA of a
trivial script from one client, unpipelined and pipelined, against the same server."""

from __future__ import annotations

import re
import shutil
import subprocess

from jobqueue.testing import redis_command


def redis_benchmark_ceiling(port: int, n: int) -> dict[str, float] | None:
    """Requests/s of EVALSHA ``return 1`` from one redis-benchmark client."""
    tool = shutil.which("redis-benchmark")
    if tool is None:
        return None
    sha = redis_command(port, "SCRIPT", "LOAD", "return 1")
    assert isinstance(sha, bytes)
    rates = {}
    for label, pipeline, requests in (("unpipelined", 1, n), ("pipelined_50", 50, n * 10)):
        out = subprocess.run(
            [
                tool,
                "-p",
                str(port),
                "-c",
                "1",
                "-n",
                str(requests),
                "-P",
                str(pipeline),
                "-q",
                "EVALSHA",
                sha.decode(),
                "0",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        match = re.findall(r"([\d.]+) requests per second", out)
        if match:
            rates[label] = float(match[-1])
    return rates

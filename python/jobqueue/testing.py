"""Throwaway redis-server processes for tests, demos and benchmarks.

>>> with RedisServer() as server:
...     queue = JobQueue("q", redis=server.url)

Run ``python -m jobqueue.testing`` to start one and print its URL.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["RedisServer", "free_port", "redis_command", "redis_keys"]

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _encode(args: Sequence[str | bytes]) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        raw = arg.encode() if isinstance(arg, str) else arg
        parts.append(f"${len(raw)}\r\n".encode() + raw + b"\r\n")
    return b"".join(parts)


class _Reader:
    """Just enough of RESP2 to read one reply."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis-server closed the connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self._buf) < n + 2:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis-server closed the connection")
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n + 2 :]
        return data

    def reply(self) -> object:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError(f"unexpected RESP reply {line!r}")


def redis_command(port: int, *args: str | bytes, host: str = HOST) -> object:
    """Send one command on a fresh connection and return the decoded reply: str for
    status replies, int, bytes, None, lists, or a ``RuntimeError`` instance for an error
    reply (returned, not raised, so callers can assert on it)."""
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(_encode(args))
        return _Reader(sock).reply()


def redis_keys(port: int, pattern: str = "*", host: str = HOST) -> set[str]:
    """The names of the keys matching ``pattern`` (``KEYS``; for tests only)."""
    reply = redis_command(port, "KEYS", pattern, host=host)
    if not isinstance(reply, list):
        raise RuntimeError(f"KEYS answered {reply!r}")
    return {k.decode() for k in reply if isinstance(k, bytes)}


class RedisServer:
    """A redis-server child process on a loopback port, with its data in a temp dir."""

    def __init__(
        self,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        executable: str | None = None,
        password: str | None = None,
    ) -> None:
        self._requested_port = port
        self.port = port or 0
        self.extra_args = list(extra_args)
        self.password = password
        self._executable = executable
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def host(self) -> str:
        return HOST

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _find_executable(self) -> str:
        found = self._executable or shutil.which("redis-server")
        if found is None:
            raise RuntimeError(
                "redis-server is not installed; install it with: apt-get install -y redis-server"
            )
        return found

    def start(self) -> RedisServer:
        if self.running:
            return self
        if not self.port:
            self.port = self._requested_port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="jobqueue-redis-"))
        args = [
            self._find_executable(),
            "--port", str(self.port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._dir),
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self._dir / "redis.log"),
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self._process = subprocess.Popen(
            [*args, *self.extra_args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start: {self._log()}")
            if self._answers_ping():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT_S} s")

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5) as sock:
                if self.password:
                    sock.sendall(_encode(["AUTH", self.password]))
                    _Reader(sock).reply()
                sock.sendall(_encode(["PING"]))
                return _Reader(sock).reply() == "PONG"
        except OSError:
            return False

    def _log(self) -> str:
        parts = []
        if self._process is not None and self._process.stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                parts.append(self._process.stderr.read().decode(errors="replace"))
        if self._dir is not None and (self._dir / "redis.log").exists():
            parts.append((self._dir / "redis.log").read_text(errors="replace"))
        return "\n".join(p for p in parts if p).strip() or "(no output)"

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its files. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stderr is not None:
                process.stderr.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def kill(self) -> None:
        """SIGKILL the server at once, as a crash would (the port stays assigned)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def restart(self) -> RedisServer:
        """Stop and start again on the same port (the data is not kept)."""
        port = self.port
        self.stop()
        self.port = port
        return self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> None:
    with RedisServer() as server:
        print(f"redis-server running at {server.url} (Ctrl-C to stop)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()

"""Throwaway redis-server processes for tests, demos and benchmarks.

>>> with RedisServer() as server:
...     queue = JobQueue("q", redis=server.url)

Run ``python -m jobqueue.testing`` to start one and print its URL.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .testing_tls import TlsFiles

__all__ = ["RedisServer", "free_port", "redis_command", "redis_keys"]

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
# A port picked by free_port() can be taken by another process before redis-server binds it.
_PORT_ATTEMPTS = 5


def wait_until(what: str, ready: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``ready()`` every 50 ms (connection errors count as not ready) until it is
    true; ``TimeoutError`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


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

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("redis-server closed the connection")
        self._buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            self._fill()
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self._buf) < n + 2:  # the payload and its CRLF
            self._fill()
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


def redis_command(
    port: int,
    *args: str | bytes,
    host: str = HOST,
    password: str | None = None,
    timeout: float = 5.0,
) -> object:
    """Send one command on a fresh connection and return the decoded reply: str for
    status replies, int, bytes for bulk strings, None for nil, lists for arrays, or a
    ``RuntimeError`` instance for an error reply (returned, not raised, so callers can
    assert on it). With ``password``, AUTH goes first. ``timeout`` (s) bounds each wait."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        reader = _Reader(sock)
        if password is not None:
            sock.sendall(_encode(["AUTH", password]))
            reader.reply()
        sock.sendall(_encode(args))
        return reader.reply()


def redis_keys(port: int, pattern: str = "*", host: str = HOST) -> set[str]:
    """The names of the keys matching ``pattern`` (``KEYS``; for tests only)."""
    reply = redis_command(port, "KEYS", pattern, host=host)
    if not isinstance(reply, list):
        raise RuntimeError(f"KEYS answered {reply!r}")
    return {k.decode() for k in reply if isinstance(k, bytes)}


_Started = TypeVar("_Started", bound="StartStop")


class StartStop:
    """A context manager over ``start()`` (returning self) and an idempotent ``stop()``;
    a start that fails stops what it began."""

    def start(self: _Started) -> _Started:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Started) -> _Started:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _PortInUseError(RuntimeError):
    pass


class RedisServer(StartStop):
    """A redis-server child process on a loopback port, with its data in a temp dir.

    ``start()`` picks a free port unless one was given; the server keeps that port for
    its lifetime, so ``restart()`` (and ``start()`` after ``stop()``) comes back on it.
    With ``data_dir`` the server keeps its files there instead, and they survive
    ``stop()``: a server started again on that directory reloads its RDB/AOF data.
    ``wrapper`` is a command the server runs under (e.g. valgrind and its options).
    ``config`` is written to a config file the server starts from (a sentinel needs one
    it can rewrite).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        executable: str | None = None,
        password: str | None = None,
        data_dir: Path | None = None,
        wrapper: Sequence[str] = (),
        config: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.port = port or 0
        #: With ``tls``: the TLS port (picked at the first start), beside the plain one.
        self.tls = tls
        self.tls_port = 0
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.wrapper = list(wrapper)
        self.config = config
        self.password = password
        self._executable = executable
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._dir: Path | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {HOST}:{self.port or '?'} {state}>"

    @property
    def host(self) -> str:
        return HOST

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{HOST}:{self.port}/0"

    @property
    def tls_url(self) -> str:
        """``rediss://`` to the TLS port (a server started with ``tls``)."""
        auth = f":{self.password}@" if self.password else ""
        return f"rediss://{auth}{HOST}:{self.tls_port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id (the wrapper's, with a wrapper), while started."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log(self) -> str:
        """What the server logged since it last started (warnings and up: a sentinel's
        ``+sdown``, ``+switch-master``, ``+convert-to-slave``); empty when stopped."""
        path = None if self._dir is None else self._dir / "redis.log"
        return path.read_text(errors="replace") if path is not None and path.exists() else ""

    def _find_executable(self) -> str:
        found = self._executable or shutil.which("redis-server")
        if found is None:
            raise RuntimeError(
                "redis-server is not installed (or not on PATH); install it with: "
                "apt-get install -y redis-server"
            )
        return found

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING. No-op when running."""
        if self.running:
            return self
        self.stop()  # the files of a killed server
        executable = self._find_executable()
        pick_port, pick_tls_port = not self.port, self.tls is not None and not self.tls_port
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            if pick_port:
                self.port = free_port()
            if pick_tls_port:
                self.tls_port = free_port()
            try:
                self._launch(executable)
                return self
            except _PortInUseError:
                if not (pick_port or pick_tls_port) or attempt == _PORT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _launch(self, executable: str) -> None:
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._dir = self.data_dir.resolve()
        else:
            self._dir = Path(tempfile.mkdtemp(prefix="jobqueue-redis-"))
        config = []
        if self.config is not None:
            (self._dir / "redis.conf").write_text(self.config)
            config = [str(self._dir / "redis.conf")]
        args = [
            *self.wrapper,
            executable,
            *config,
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
        if self.tls is not None:
            args += self.tls.server_args(self.tls_port)
        # stderr goes to a file, not a pipe: nobody reads it while the server runs.
        self._stderr = open(self._dir / "stderr.log", "wb")
        # Its own session: a Ctrl-C in the terminal reaches only this process, which then
        # stops the server in order (after the code using it has closed its connections).
        self._process = subprocess.Popen(
            [*args, *self.extra_args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            cwd=self._dir,
            start_new_session=True,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._process is not None and self._process.poll() is not None:
                log = self._log()
                error = _PortInUseError if "Address already in use" in log else RuntimeError
                raise error(
                    f"redis-server on port {self.port} exited at start "
                    f"(exit code {self._process.returncode}):\n{log}"
                )
            if self._answers_ping():
                return
            if time.monotonic() > deadline:
                self._terminate()
                raise RuntimeError(
                    f"redis-server on port {self.port} did not answer PING within "
                    f"{START_TIMEOUT_S:g} s:\n{self._log()}"
                )
            time.sleep(0.02)

    def _answers_ping(self) -> bool:
        """True when *this* server answers PING (not another one that holds the port)."""
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5) as sock:
                reader = _Reader(sock)
                if self.password:
                    sock.sendall(_encode(["AUTH", self.password]))
                    reader.reply()
                sock.sendall(_encode(["PING"]))
                if reader.reply() != "PONG":
                    return False
                sock.sendall(_encode(["CONFIG", "GET", "dir"]))
                reply = reader.reply()
        except (OSError, ValueError):
            return False
        if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], bytes):
            return self._dir is not None and Path(reply[1].decode()) == self._dir.resolve()
        return True  # CONFIG renamed or disabled by extra_args: trust the PONG

    def _log(self) -> str:
        parts = []
        if self._dir is not None:
            for name in ("stderr.log", "redis.log"):
                with contextlib.suppress(OSError):
                    parts.append((self._dir / name).read_text(errors="replace").strip())
        text = "\n".join(p for p in parts if p) or "(no output)"
        return text[-4000:]

    def _terminate(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its files. Idempotent."""
        self._terminate()
        self._process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._dir is not None and self.data_dir is None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def kill(self) -> None:
        """SIGKILL the server at once, as a crash would. Its port and files are kept, so
        ``restart()`` brings it back on the same port."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def restart(self) -> RedisServer:
        """Stop and start again on the same port (the data is kept only with
        ``data_dir``)."""
        self.stop()
        return self.start()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m jobqueue.testing",
        description="Start a throwaway redis-server and serve until Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop the server on `kill` too
    with RedisServer(port=args.port) as server:
        # The interrupt is caught from before the URL is printed: a caller may stop us as
        # soon as it has read it.
        with contextlib.suppress(KeyboardInterrupt):
            print(f"redis-server running at {server.url} (Ctrl-C to stop)")
            print(f"export REDIS_URL={server.url}", flush=True)
            while server.running:
                time.sleep(0.5)
            print("redis-server exited", flush=True)


if __name__ == "__main__":
    main()

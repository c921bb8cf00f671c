"""jobqueue.testing: the throwaway redis-server the whole suite stands on."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import jobqueue.testing
from jobqueue.testing import RedisServer, free_port, redis_command, redis_keys


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_free_port_is_a_usable_port() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_server_starts_answers_and_stops() -> None:
    server = RedisServer().start()
    data_dir = server._dir
    try:
        assert server.running
        assert server.host == "127.0.0.1"
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert redis_command(server.port, "PING") == "PONG"
        assert redis_command(server.port, "SET", "k", "v") == "OK"
        assert redis_keys(server.port) == {"k"}
        assert redis_command(server.port, "GET", "k") == b"v"
        assert isinstance(redis_command(server.port, "NOSUCHCOMMAND"), RuntimeError)
    finally:
        server.stop()
    assert not server.running
    assert data_dir is not None and not data_dir.exists()
    assert _refused(server.port)
    server.stop()  # idempotent


def test_a_wrapper_runs_the_server(tmp_path: Path) -> None:
    # A wrapper that leaves a mark, then becomes the server (`exec`).
    mark = tmp_path / "wrapped"
    wrapper = ["sh", "-c", 'touch "$0" && exec "$@"', str(mark)]
    with RedisServer(wrapper=wrapper) as server:
        assert redis_command(server.port, "PING") == "PONG"
        assert server.pid is not None
    assert mark.exists()
    assert server.pid is None


def test_context_manager_and_a_given_port() -> None:
    port = free_port()
    with RedisServer(port=port) as server:
        assert server.port == port
        assert redis_command(port, "DBSIZE") == 0
    assert not server.running


def test_resp_replies_are_decoded() -> None:
    with RedisServer() as server:
        port = server.port
        assert redis_command(port, "GET", "missing") is None
        assert redis_command(port, "SET", "empty", "") == "OK"
        assert redis_command(port, "GET", "empty") == b""
        tricky = b"a\r\n$3\r\n*1\r\nb"  # framing bytes inside a value
        redis_command(port, "SET", "tricky", tricky)
        assert redis_command(port, "GET", "tricky") == tricky
        big = "x" * 300_000  # more than one recv()
        redis_command(port, "SET", "big", big)
        assert redis_command(port, "GET", "big") == big.encode()
        assert redis_command(port, "INCRBY", "n", "-7") == -7
        nested = redis_command(port, "EVAL", "return {1, {2, 'a'}, false, 'b'}", "0")
        assert nested == [1, [2, b"a"], None, b"b"]
        assert redis_command(port, "DBSIZE") == 4


def test_redis_keys_matches_a_pattern() -> None:
    with RedisServer() as server:
        for key in ("jq:{a}:job:1", "jq:{a}:wait", "other"):
            assert redis_command(server.port, "SET", key, "1") == "OK"
        assert redis_keys(server.port) == {"jq:{a}:job:1", "jq:{a}:wait", "other"}
        assert redis_keys(server.port, "jq:*") == {"jq:{a}:job:1", "jq:{a}:wait"}
        assert redis_keys(server.port, "none*") == set()


def test_restart_keeps_the_port_and_drops_the_data() -> None:
    with RedisServer(extra_args=["--maxmemory", "64mb"]) as server:
        port = server.port
        redis_command(port, "SET", "k", "v")
        server.restart()
        assert server.port == port
        assert server.running
        assert redis_keys(port) == set()
        assert redis_command(port, "CONFIG", "GET", "maxmemory") == [b"maxmemory", b"67108864"]


def test_kill_stops_the_process_at_once_and_restart_brings_it_back() -> None:
    with RedisServer() as server:
        port = server.port
        server.kill()
        assert not server.running
        assert _refused(port)
        server.restart()
        assert server.port == port
        assert redis_command(port, "PING") == "PONG"


def test_a_server_that_cannot_start_reports_its_log() -> None:
    server = RedisServer(extra_args=["--no-such-option", "1"])
    with pytest.raises(RuntimeError, match="no-such-option"):
        server.start()
    assert not server.running
    assert server._dir is None  # its temp dir is removed


def test_a_taken_port_is_an_error_when_asked_for() -> None:
    with RedisServer() as other:
        # Another redis-server answers PING on that port, but it is not ours.
        with pytest.raises(RuntimeError, match="Address already in use"):
            RedisServer(port=other.port).start()


def test_a_picked_port_taken_meanwhile_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    with RedisServer() as other:
        ports = [other.port, free_port()]
        monkeypatch.setattr(jobqueue.testing, "free_port", lambda: ports.pop(0))
        with RedisServer() as server:
            assert server.port != other.port
            assert redis_command(server.port, "PING") == "PONG"


def test_missing_redis_server_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RuntimeError, match="apt-get install -y redis-server"):
        RedisServer().start()


def test_password_protected_server() -> None:
    with RedisServer(password="s3cret") as server:
        assert ":s3cret@" in server.url
        reply = redis_command(server.port, "PING")
        assert isinstance(reply, RuntimeError) and "NOAUTH" in str(reply)


def test_module_main_serves_until_terminated(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "jobqueue.testing"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert "redis://127.0.0.1:" in first_line
        port = int(first_line.split("redis://127.0.0.1:", 1)[1].split("/", 1)[0])
        assert redis_command(port, "PING") == "PONG"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert _refused(port)  # the server went with it
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

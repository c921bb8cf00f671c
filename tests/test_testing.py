"""jobqueue.testing: the throwaway redis-server the whole suite stands on."""

from __future__ import annotations

from jobqueue.testing import RedisServer, free_port, redis_command, redis_keys


def test_free_port_is_a_usable_port() -> None:
    port = free_port()
    assert 1024 <= port <= 65535


def test_server_starts_answers_and_stops() -> None:
    server = RedisServer().start()
    try:
        assert server.running
        assert redis_command(server.port, "PING") == "PONG"
        assert redis_command(server.port, "SET", "k", "v") == "OK"
        assert redis_keys(server.port) == {"k"}
        assert redis_command(server.port, "GET", "k") == b"v"
        assert isinstance(redis_command(server.port, "NOSUCHCOMMAND"), RuntimeError)
    finally:
        server.stop()
    assert not server.running
    server.stop()  # idempotent


def test_restart_keeps_the_port_and_drops_the_data() -> None:
    with RedisServer() as server:
        port = server.port
        redis_command(port, "SET", "k", "v")
        server.restart()
        assert server.port == port
        assert server.running
        assert redis_keys(port) == set()


def test_kill_stops_the_process_at_once() -> None:
    with RedisServer() as server:
        server.kill()
        assert not server.running


def test_password_protected_server() -> None:
    with RedisServer(password="s3cret") as server:
        assert ":s3cret@" in server.url
        reply = redis_command(server.port, "PING")
        assert isinstance(reply, RuntimeError) and "NOAUTH" in str(reply)

"""TLS: rediss:// and the tls option, against a redis-server with TLS enabled."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobqueue import JobQueue, RedisConfig
from jobqueue.errors import ConnectionError
from jobqueue.testing import RedisServer, free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(directory: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tls")
    _make_ca(d, "ca")
    _make_ca(d, "other-ca")
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost", cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "server.crt", "-extfile", "san.cnf", cwd=d,
    )  # fmt: skip
    return d


@pytest.fixture(scope="module")
def tls_port(certs: Path) -> Iterator[int]:
    port = free_port()
    server = RedisServer(
        extra_args=[
            "--tls-port", str(port),
            "--tls-cert-file", str(certs / "server.crt"),
            "--tls-key-file", str(certs / "server.key"),
            "--tls-ca-cert-file", str(certs / "ca.crt"),
            "--tls-auth-clients", "no",
        ]
    )  # fmt: skip
    try:
        server.start()
    except RuntimeError as exc:
        pytest.skip(f"this redis-server has no TLS support: {exc}")
    yield port
    server.stop()


async def test_tls_with_a_ca_file(certs: Path, tls_port: int) -> None:
    config = RedisConfig(host="127.0.0.1", port=tls_port, tls={"ca_certs": certs / "ca.crt"})
    async with JobQueue("tls", redis=config) as q:
        job_id = await q.add_job("t", {"secure": True})
        info = await q.get_job_status(job_id)
        assert info is not None and info.data == {"secure": True}
        await q.clear()


async def test_tls_with_an_ssl_context(certs: Path, tls_port: int) -> None:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    async with JobQueue("tls", redis=RedisConfig(host="localhost", port=tls_port, tls=ctx)) as q:
        assert (await q.health_check()).redis_version


async def test_tls_with_an_untrusted_ca_fails(certs: Path, tls_port: int) -> None:
    config = RedisConfig(
        host="127.0.0.1",
        port=tls_port,
        tls={"ca_certs": certs / "other-ca.crt"},
        connect_timeout=1000,
    )
    async with JobQueue("tls", redis=config) as q:
        with pytest.raises(ConnectionError):
            await q.add_job("t", None)


async def test_plain_connection_to_a_tls_port_fails(tls_port: int) -> None:
    config = RedisConfig(host="127.0.0.1", port=tls_port, connect_timeout=1000)
    async with JobQueue("tls", redis=config) as q:
        with pytest.raises(ConnectionError):
            await q.add_job("t", None)

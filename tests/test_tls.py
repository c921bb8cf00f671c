"""TLS: rediss:// and the tls option, against a redis-server with TLS enabled."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobqueue import JobQueue, JobStatus, RedisConfig
from jobqueue.errors import ConnectionError
from jobqueue.job import Job
from jobqueue.testing import RedisServer
from jobqueue.testing_cluster import RedisCluster
from jobqueue.testing_sentinel import SentinelSet
from jobqueue.testing_tls import TlsFiles, make_ca

pytestmark = pytest.mark.skipif(not TlsFiles.available(), reason="needs the openssl CLI")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tls")
    TlsFiles.make(d)
    make_ca(d, "other-ca")
    return d


@pytest.fixture(scope="module")
def tls_port(certs: Path) -> Iterator[int]:
    server = RedisServer(tls=TlsFiles(certs / "ca.crt", certs / "server.crt", certs / "server.key"))
    try:
        server.start()
    except RuntimeError as exc:
        pytest.skip(f"this redis-server has no TLS support: {exc}")
    yield server.tls_port
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


async def run_a_job(config: RedisConfig) -> None:
    """A job added, processed by a worker and read back, over ``config``."""
    async with JobQueue("tls-topology", redis=config) as q:

        @q.processor("double")
        async def double(job: Job[int]) -> int:
            return job.data * 2

        await q.start_worker()
        job_id = await q.add_job("double", 21)
        info = await q.wait_for(job_id, timeout=10_000)
        assert (info.status, info.return_value) == (JobStatus.COMPLETED, 42)


@pytest.fixture(scope="module")
def tls_files(certs: Path) -> TlsFiles:
    return TlsFiles(certs / "ca.crt", certs / "server.crt", certs / "server.key")


async def test_a_cluster_over_tls(tls_files: TlsFiles) -> None:
    # The seeds are TLS ports, and a TLS client is told the other nodes' TLS ports: every
    # connection of the queue is encrypted (a plain one to a TLS port fails, see above).
    with RedisCluster(tls=tls_files) as cluster:
        await run_a_job(RedisConfig(url=cluster.tls_url, tls={"ca_certs": tls_files.ca}))
        with pytest.raises(ConnectionError):  # the certificate is checked
            config = RedisConfig(url=cluster.tls_url, connect_timeout=1000)
            await run_a_job(config)


async def test_sentinel_over_tls_follows_a_failover(tls_files: TlsFiles) -> None:
    # Sentinels, the primary they name and, after the failover, the new primary: all
    # reached on their TLS ports with the configured CA.
    with SentinelSet(tls=tls_files) as deployment:
        config = RedisConfig(url=deployment.tls_url, tls={"ca_certs": tls_files.ca})
        await run_a_job(config)
        old = deployment.kill_primary()
        deployment.wait_for_failover(old.port)
        await run_a_job(config)

"""Certificates for throwaway TLS-enabled redis-servers (tests and demos): a CA and a
server certificate for 127.0.0.1 and localhost, made with the ``openssl`` CLI.

>>> files = TlsFiles.make(Path(tmp))
>>> with RedisServer(tls=files) as server:
...     queue = JobQueue("q", redis=RedisConfig(url=server.tls_url, tls={"ca_certs": files.ca}))
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TlsFiles"]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> Path:
    """A self-signed CA ``<name>.crt`` / ``<name>.key`` in ``directory``; the certificate."""
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.crt"


@dataclass(frozen=True)
class TlsFiles:
    """A CA and a server certificate and key it signed (PEM files)."""

    ca: Path
    cert: Path
    key: Path

    @staticmethod
    def available() -> bool:
        """Whether the ``openssl`` CLI is there to make certificates."""
        return shutil.which("openssl") is not None

    @classmethod
    def make(cls, directory: Path) -> TlsFiles:
        """A CA ``ca.crt`` and a server certificate ``server.crt`` for 127.0.0.1 and
        localhost, valid two days, in ``directory``."""
        ca = make_ca(directory, "ca")
        (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=localhost", cwd=directory,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", "server.crt", "-extfile", "san.cnf",
            cwd=directory,
        )  # fmt: skip
        return cls(ca=ca, cert=directory / "server.crt", key=directory / "server.key")

    def server_args(self, tls_port: int) -> list[str]:
        """redis-server arguments for TLS on ``tls_port`` (the plain port stays open, for
        tools). Replication, the cluster bus and sentinels' links go over TLS too; clients
        need no certificate of their own."""
        return [
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(self.cert),
            "--tls-key-file", str(self.key),
            "--tls-ca-cert-file", str(self.ca),
            "--tls-auth-clients", "no",
            "--tls-replication", "yes",
            "--tls-cluster", "yes",
        ]  # fmt: skip

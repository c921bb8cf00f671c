"""How a queue reaches Redis: `RedisConfig`, resolved into the native connection's
settings (a URL plus TLS material)."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from . import _validate as v
from .errors import InvalidOptionError

if TYPE_CHECKING:  # pathlib is imported where TLS files are read (about 1.5 ms saved)
    from pathlib import Path

DEFAULT_URL = "redis://localhost:6379/0"
URL_ENV_VARS = ("JOBQUEUE_REDIS_URL", "REDIS_URL")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SCHEMES = ("redis", "rediss", "unix", "redis+unix", *SENTINEL_SCHEMES, *CLUSTER_SCHEMES)
#: Schemes that turn TLS on (with the system's trusted certificates unless ``tls`` says more).
TLS_SCHEMES = ("rediss", "rediss+sentinel", "rediss+cluster")
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_REDIS_PORT = 6379

RetryStrategy = Callable[[int], "int | float | None"]


@dataclass(frozen=True)
class TlsOptions:
    """TLS settings. Paths are PEM files; ``insecure`` skips certificate and host checks
    (test setups only)."""

    ca_certs: str | Path | None = None
    certfile: str | Path | None = None
    keyfile: str | Path | None = None
    insecure: bool = False

    def __post_init__(self) -> None:
        from pathlib import Path

        for name in ("ca_certs", "certfile", "keyfile"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise InvalidOptionError(f"tls.{name}", f"is not a readable file: {value}")
        if (self.certfile is None) != (self.keyfile is None):
            raise InvalidOptionError("tls", "certfile and keyfile must be given together")
        v.boolean(self.insecure, "tls.insecure")

    @classmethod
    def coerce(cls, value: object) -> TlsOptions | None:
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, TlsOptions):
            return value
        if isinstance(value, ssl.SSLContext):
            return _from_ssl_context(value)
        if isinstance(value, Mapping):
            known = {"ca_certs", "certfile", "keyfile", "insecure"}
            unknown = set(value) - known
            if unknown:
                raise InvalidOptionError("tls", f"has unknown keys {sorted(map(str, unknown))}")
            return cls(**value)
        raise InvalidOptionError(
            "tls", f"must be True, an ssl.SSLContext or a dict, got {v.type_name(value)}"
        )


@dataclass(frozen=True)
class _ContextTls(TlsOptions):
    """TLS options read off an ``ssl.SSLContext``: its CA certificates, as PEM."""

    ca_pem: bytes | None = None


def _from_ssl_context(ctx: ssl.SSLContext) -> TlsOptions:
    # An SSLContext cannot be handed to the native TLS stack, but its trust settings can:
    # the CA certificates it loaded and whether it verifies at all. Client certificates
    # loaded into it cannot be read back; pass certfile/keyfile for mutual TLS.
    insecure = ctx.verify_mode == ssl.CERT_NONE or not ctx.check_hostname
    ders = ctx.get_ca_certs(binary_form=True)
    pem = "".join(ssl.DER_cert_to_PEM_cert(der) for der in ders).encode() if ders else None
    return _ContextTls(insecure=insecure, ca_pem=pem)


@dataclass(frozen=True)
class RedisConfig:
    """Connection settings. ``url`` (``redis://``, ``rediss://``, ``unix://``) and the
    separate fields combine: a field that is set overrides that part of the URL."""

    url: str | None = None
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = None
    db: int | None = None
    tls: bool | ssl.SSLContext | Mapping[str, Any] | TlsOptions | None = None
    retry_strategy: RetryStrategy | None = None
    enable_ready_check: bool = True
    connect_timeout: v.Duration = 10_000
    command_timeout: v.Duration | None = None
    #: Redis Cluster: seed nodes ``[("host", 6379), ...]`` (or ``"host:port"`` strings); the
    #: client learns the others from them. ``username``/``password`` log in to every node.
    cluster_nodes: Sequence[tuple[str, int] | str] | None = None
    #: Sentinel: ``[("host", 26379), ...]`` (or ``"host:port"`` strings) and the service.
    #: ``username``/``password`` log in to the Redis servers, ``sentinel_*`` to sentinels.
    sentinels: Sequence[tuple[str, int] | str] | None = None
    service_name: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    def __repr__(self) -> str:
        # Secrets never show in reprs, logs or tracebacks: the password field and the
        # password part of the URL are masked.
        shown = []
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name in ("password", "sentinel_password") and value is not None:
                value = "***"
            elif name == "url" and value is not None:
                value = redact_url(value)
            shown.append(f"{name}={value!r}")
        return f"RedisConfig({', '.join(shown)})"

    def __post_init__(self) -> None:
        if self.url is not None:
            _check_url(self.url)
        if self.host is not None:
            v.text(self.host, "redis.host", max_length=255)
        if self.port is not None:
            v.integer(self.port, "redis.port", minimum=1, maximum=65535)
        for name in ("username", "password", "sentinel_username", "sentinel_password"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, str):
                    raise InvalidOptionError(f"redis.{name}", "must be a str")
                v.unicode(value, f"redis.{name}")
        if self.db is not None:
            v.integer(self.db, "redis.db", minimum=0)
        object.__setattr__(self, "tls", TlsOptions.coerce(self.tls))
        v.callable_or_none(self.retry_strategy, "redis.retry_strategy")
        v.boolean(self.enable_ready_check, "redis.enable_ready_check")
        object.__setattr__(
            self,
            "connect_timeout",
            v.duration_ms(self.connect_timeout, "redis.connect_timeout", minimum=1),
        )
        if self.command_timeout is not None:
            object.__setattr__(
                self,
                "command_timeout",
                v.duration_ms(self.command_timeout, "redis.command_timeout", minimum=1),
            )
        self._check_sentinel()
        self._check_cluster()

    def _check_cluster(self) -> None:
        from_url = urlsplit(self.url or "").scheme in CLUSTER_SCHEMES
        if self.cluster_nodes is not None:
            object.__setattr__(
                self,
                "cluster_nodes",
                _nodes(self.cluster_nodes, "redis.cluster_nodes", DEFAULT_REDIS_PORT),
            )
        elif from_url:
            object.__setattr__(self, "cluster_nodes", _cluster_url(self.url or ""))
        if self.cluster_nodes is None:
            return
        # Combinations a cluster cannot serve are refused here, before anything connects.
        if self.sentinels is not None:
            raise InvalidOptionError(
                "redis.cluster_nodes", "a cluster and sentinels cannot be combined"
            )
        if self.host is not None or self.port is not None:
            raise InvalidOptionError(
                "redis.host", "a cluster is reached through cluster_nodes, not host or port"
            )
        if self.db not in (None, 0) or (from_url and _db_of(urlsplit(self.url or "").path)):
            raise InvalidOptionError("redis.db", "a cluster has database 0 only")
        if self.url is not None and urlsplit(self.url).scheme in ("unix", "redis+unix"):
            raise InvalidOptionError("redis.url", "a cluster is reached over TCP, not a socket")

    def _check_sentinel(self) -> None:
        from_url = urlsplit(self.url or "").scheme in SENTINEL_SCHEMES
        if self.sentinels is not None:
            object.__setattr__(
                self, "sentinels", _nodes(self.sentinels, "redis.sentinels", DEFAULT_SENTINEL_PORT)
            )
        elif from_url:
            object.__setattr__(self, "sentinels", _sentinel_url(self.url or "")[0])
        if self.service_name is None and from_url:
            object.__setattr__(self, "service_name", _sentinel_url(self.url or "")[1])
        if self.sentinels is None:
            if self.service_name is not None:
                raise InvalidOptionError("redis.sentinels", "service_name needs sentinels")
            return
        if self.service_name is None:
            raise InvalidOptionError("redis.service_name", "is needed with sentinels")
        v.text(self.service_name, "redis.service_name", max_length=255)
        if self.host is not None or self.port is not None:
            raise InvalidOptionError(
                "redis.host", "is chosen by the sentinels: give sentinels, not host or port"
            )

    @classmethod
    def coerce(cls, value: object) -> RedisConfig:
        """A config from itself, a URL string, a dict of fields, or None (environment)."""
        if isinstance(value, RedisConfig):
            return value
        if value is None:
            url = next((os.environ[n] for n in URL_ENV_VARS if os.environ.get(n)), DEFAULT_URL)
            return cls(url=url)
        if isinstance(value, str):
            return cls(url=value)
        if isinstance(value, Mapping):
            try:
                return cls(**value)
            except TypeError as exc:
                raise InvalidOptionError("redis", str(exc)) from None
        raise InvalidOptionError(
            "redis", f"must be a RedisConfig, a URL or a dict, got {v.type_name(value)}"
        )

    def native_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``NativeQueue``: the URL and the TLS material."""
        tls = self.tls if isinstance(self.tls, TlsOptions) else None
        url = self._url(tls)
        kwargs: dict[str, Any] = {
            "url": url,
            "connect_timeout_ms": self.connect_timeout,
            "command_timeout_ms": self.command_timeout,
            "ready_check": self.enable_ready_check,
            "retry_strategy": self.retry_strategy,
        }
        if self.cluster_nodes is not None:
            kwargs["cluster"] = [node for node in self.cluster_nodes if isinstance(node, tuple)]
        if self.sentinels is not None:
            nodes = [node for node in self.sentinels if isinstance(node, tuple)]
            kwargs["sentinel"] = (
                nodes,
                self.service_name,
                self.sentinel_username,
                self.sentinel_password,
            )
        if tls is not None:
            from pathlib import Path

            kwargs["tls"] = True
            if isinstance(tls, _ContextTls):
                kwargs["tls_root_cert"] = tls.ca_pem
            elif tls.ca_certs is not None:
                kwargs["tls_root_cert"] = Path(tls.ca_certs).read_bytes()
            if tls.certfile is not None and tls.keyfile is not None:
                kwargs["tls_client_cert"] = Path(tls.certfile).read_bytes()
                kwargs["tls_client_key"] = Path(tls.keyfile).read_bytes()
        return kwargs

    def _url(self, tls: TlsOptions | None) -> str:
        url = self.url or DEFAULT_URL
        parts = urlsplit(url)
        if parts.scheme in ("unix", "redis+unix"):
            return url
        scheme = "rediss" if tls is not None or parts.scheme in TLS_SCHEMES else "redis"
        userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
        url_user, _, url_password = userinfo.partition(":")
        username = self.username if self.username is not None else unquote(url_user)
        password = self.password if self.password is not None else unquote(url_password)
        if self.sentinels is not None:
            # The native core takes the server from the sentinels; this URL carries the
            # login and database (its host is a placeholder: the first sentinel).
            host, port = next(n for n in self.sentinels if isinstance(n, tuple))
            path = parts.path if parts.scheme in SENTINEL_SCHEMES else ""
            db = self.db if self.db is not None else _sentinel_db(path)
        elif self.cluster_nodes is not None:
            # The native core takes the servers from cluster_nodes; this URL carries the
            # login (its host is a placeholder: the first node).
            host, port = next(n for n in self.cluster_nodes if isinstance(n, tuple))
            db = 0
        else:
            host = self.host or parts.hostname or "localhost"
            port = self.port or parts.port or 6379
            db = self.db if self.db is not None else _db_of(parts.path)
        auth = ""
        if username or password:
            auth = quote(username, safe="")
            if password:
                auth += ":" + quote(password, safe="")
            auth += "@"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 address
        fragment = (
            "#insecure"
            if (tls is not None and tls.insecure) or parts.fragment == "insecure"
            else ""
        )
        return f"{scheme}://{auth}{host}:{port}/{db}{fragment}"


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


def _check_url(url: object) -> None:
    if not isinstance(url, str) or not url:
        raise InvalidOptionError("redis.url", f"must be a non-empty str, got {url!r}")
    scheme = urlsplit(url).scheme
    if scheme in SENTINEL_SCHEMES:
        _sentinel_url(url)
        return
    if scheme in CLUSTER_SCHEMES:
        _cluster_url(url)
        return
    if scheme not in SCHEMES:
        raise InvalidOptionError(
            "redis.url",
            f"must start with one of {', '.join(s + '://' for s in SCHEMES)}, "
            f"got {redact_url(url)!r}",
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidOptionError("redis.url", f"has a bad port: {exc}") from None
    if port is not None and not 1 <= port <= 65535:
        raise InvalidOptionError("redis.url", f"port must be 1-65535, got {port}")
    if scheme in ("redis", "rediss"):
        _db_of(parts.path)  # raises for a database that is not a number


def _db_of(path: str) -> int:
    db = path.strip("/")
    if not db:
        return 0
    if not db.isdigit():
        raise InvalidOptionError("redis.url", f"database must be a number, got {db!r}")
    return int(db)


def _sentinel_url(url: str) -> tuple[list[tuple[str, int]], str]:
    """The sentinels and service of ``redis+sentinel://[user:pass@]h:p[,h2:p2]/service[/db]``."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts:
        raise InvalidOptionError("redis.url", "names no sentinel (redis+sentinel://host:port/…)")
    nodes = _nodes(hosts.split(","), "redis.url", DEFAULT_SENTINEL_PORT)
    service, _, _ = parts.path.strip("/").partition("/")
    if not service:
        raise InvalidOptionError(
            "redis.url", "names no service (redis+sentinel://host:port/service_name)"
        )
    _sentinel_db(parts.path)
    return nodes, unquote(service)


def _sentinel_db(path: str) -> int:
    return _db_of(path.strip("/").partition("/")[2])


def _cluster_url(url: str) -> list[tuple[str, int]]:
    """The seed nodes of ``redis+cluster://[user:pass@]h:p[,h2:p2][/0]``."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts:
        raise InvalidOptionError("redis.url", "names no node (redis+cluster://host:port,…)")
    if _db_of(parts.path):
        raise InvalidOptionError("redis.url", "a cluster has database 0 only")
    return _nodes(hosts.split(","), "redis.url", DEFAULT_REDIS_PORT)


def _nodes(nodes: object, field: str, default_port: int) -> list[tuple[str, int]]:
    """``[(host, port), ...]`` from pairs or ``"host[:port]"`` strings."""
    if isinstance(nodes, str) or not isinstance(nodes, Sequence) or not nodes:
        raise InvalidOptionError(field, "must be a non-empty list of (host, port) or 'host:port'")
    found = []
    for node in nodes:
        if isinstance(node, str):
            host, colon, port_text = node.strip().rpartition(":")
            if not colon:
                host, port_text = port_text, str(default_port)
            if not port_text.isdigit():
                raise InvalidOptionError(field, f"has a bad port in {node!r}")
            node = (host.strip("[]"), int(port_text))
        if not (isinstance(node, tuple) and len(node) == 2):
            raise InvalidOptionError(field, f"must hold (host, port) pairs, got {node!r}")
        host, port = node
        v.text(host, field, max_length=255)
        v.integer(port, field, minimum=1, maximum=65535)
        found.append((host, port))
    return found

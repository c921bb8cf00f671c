"""The dashboard's pages: Jinja2 templates (``templates/``) with autoescape on, so every
value a page shows (job data, names, errors, queue names) is written as text, and its one
script and stylesheet (``static/``), served from the dashboard itself (no CDN)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str

    @property
    def version(self) -> str:
        """Part of the asset's URL, so a new release is never served from a stale cache."""
        return hashlib.sha256(self.body).hexdigest()[:12]


def load_assets() -> dict[str, Asset]:
    static = files("jobqueue.dashboard").joinpath("static")
    return {
        "dashboard.js": Asset(
            static.joinpath("dashboard.js").read_bytes(), "text/javascript; charset=utf-8"
        ),
        "dashboard.css": Asset(
            static.joinpath("dashboard.css").read_bytes(), "text/css; charset=utf-8"
        ),
    }


def when(ms: int | None) -> str:
    """A Redis timestamp (ms) as UTC text; the page's script shows it in local time."""
    if not ms:
        return ""
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def duration(ms: int | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    if ms < 3_600_000:
        return f"{ms // 60_000} min"
    if ms < 86_400_000:
        return f"{ms / 3_600_000:.1f} h"
    return f"{ms / 86_400_000:.1f} d"


def pretty(value: Any) -> str:
    """A JSON value as indented text (a string as it is)."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()


def segment(value: str) -> str:
    """A value as one path segment of a URL."""
    return quote(str(value), safe="")


def query(**params: Any) -> str:
    """``?a=1&b=2`` of the params that are set (empty: none)."""
    kept = {k: v for k, v in params.items() if v not in (None, "", 0)}
    return f"?{urlencode(kept)}" if kept else ""


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("jobqueue.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, iso=iso, duration=duration, pretty=pretty, segment=segment)
    env.globals.update(query=query)
    return env

"""How the ``jobqueue`` command prints its results: readable tables by default, JSON with
``--json`` (for scripts)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

#: The columns of the list commands' tables: (header, key of each row).
_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "jobs": [
        ("ID", "id"),
        ("NAME", "name"),
        ("STATUS", "status"),
        ("ATTEMPTS", "attempts"),
        ("CREATED", "created_at"),
        ("GROUP", "group"),
        ("FAILED REASON", "failed_reason"),
    ],
    "workers": [
        ("ID", "id"),
        ("HOST", "host"),
        ("PID", "pid"),
        ("CONCURRENCY", "concurrency"),
        ("RUNNING", "running"),
        ("PROCESSED", "processed"),
        ("FAILED", "failed"),
        ("STARTED", "started_at"),
        ("VERSION", "version"),
    ],
    "schedules": [
        ("ID", "id"),
        ("NAME", "name"),
        ("PATTERN", "pattern"),
        ("TZ", "tz"),
        ("NEXT RUN", "next_run_at"),
        ("LAST RUN", "last_run_at"),
    ],
}
_COLUMNS["dlq"] = _COLUMNS["jobs"]
#: Fields holding times in ms since the epoch, shown as UTC times.
_TIMES = {"created_at", "started_at", "next_run_at", "last_run_at", "processed_at", "finished_at"}
_WIDEST = 60


def render(command: str, result: Any, *, as_json: bool) -> str:
    if as_json:
        return json.dumps(result, indent=2, default=str)
    if isinstance(result, list):
        return table(result, _COLUMNS.get(command) or _columns_of(result))
    if isinstance(result, dict):
        return _key_values(result)
    return str(result)


def _columns_of(rows: list[Any]) -> list[tuple[str, str]]:
    keys = list(rows[0]) if rows and isinstance(rows[0], dict) else []
    return [(key.upper(), key) for key in keys]


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in _TIMES and isinstance(value, int) and value > 0:
        when = datetime.fromtimestamp(value / 1000, tz=timezone.utc)
        return when.strftime("%Y-%m-%d %H:%M:%S")
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())  # one line
    return text if len(text) <= _WIDEST else text[: _WIDEST - 1] + "…"


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """``rows`` as aligned columns under a header; ``(none)`` when there are none."""
    if not rows:
        return "(none)"
    cells = [[_cell(key, row.get(key)) for _, key in columns] for row in rows]
    widths = [
        max(len(header), *(len(line[i]) for line in cells)) for i, (header, _) in enumerate(columns)
    ]
    lines = [[header for header, _ in columns], *cells]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _key_values(result: dict[str, Any]) -> str:
    """A result's fields one per line; a list of findings follows as its own section."""
    plain = {k: v for k, v in result.items() if not isinstance(v, list)}
    width = max((len(k) for k in plain), default=0)
    lines = [f"{k.ljust(width)}  {_cell(k, v)}" for k, v in plain.items()]
    for key, value in result.items():
        if isinstance(value, list):
            lines.append("")
            lines.append(f"{key}:")
            if not value:
                lines.append("  (none)")
            for item in value:
                if isinstance(item, dict):
                    what = f"{item.get('setting')} is {item.get('value')}: {item.get('problem')}"
                    lines.append(f"  [{item.get('severity', '')}] {what}")
                    if item.get("fix"):
                        lines.append(f"      fix: {item['fix']}")
                else:
                    lines.append(f"  {item}")
    return "\n".join(lines)

"""Small checks shared by the config objects and the queue's methods.

Each raises `InvalidOptionError` naming the field, with messages
in the form ``"delay must be >= 0, got -5"``.
"""

from __future__ import annotations

from datetime import timedelta
from enum import Enum
from typing import Any, TypeVar

from .errors import InvalidOptionError

E = TypeVar("E", bound=Enum)

Duration = int | timedelta
"""A duration: integer milliseconds, or a ``timedelta``."""


def type_name(value: object) -> str:
    return type(value).__name__


#: The longest duration accepted anywhere (10 years): due times stay exact in Redis's
#: double-precision scores, and a typo like an extra zero group is caught.
MAX_DURATION_MS = 10 * 365 * 24 * 3600 * 1000

#: The most attempts a job may have.
MAX_ATTEMPTS = 1_000_000


def duration_ms(value: object, field: str, *, minimum: int = 0) -> int:
    """Milliseconds from an int or a timedelta, at least ``minimum`` and at most
    ``MAX_DURATION_MS``."""
    if isinstance(value, timedelta):
        ms = round(value.total_seconds() * 1000)
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = value
    else:
        raise InvalidOptionError(
            field, f"must be an int (milliseconds) or a timedelta, got {type_name(value)}"
        )
    if ms < minimum:
        raise InvalidOptionError(field, f"must be >= {minimum}, got {ms}")
    if ms > MAX_DURATION_MS:
        raise InvalidOptionError(
            field, f"must be at most {MAX_DURATION_MS} ms (10 years), got {ms}"
        )
    return ms


def integer(value: object, field: str, *, minimum: int, maximum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidOptionError(field, f"must be an int, got {type_name(value)}")
    if value < minimum:
        raise InvalidOptionError(field, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InvalidOptionError(field, f"must be <= {maximum}, got {value}")
    return value


def fraction(value: object, field: str) -> float:
    """A float in [0, 1]."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InvalidOptionError(field, f"must be a number between 0 and 1, got {type_name(value)}")
    if not 0.0 <= float(value) <= 1.0:
        raise InvalidOptionError(field, f"must be between 0 and 1, got {value}")
    return float(value)


def text(value: object, field: str, *, max_length: int = 1024) -> str:
    """A non-empty string."""
    if not isinstance(value, str):
        raise InvalidOptionError(field, f"must be a str, got {type_name(value)}")
    if not value:
        raise InvalidOptionError(field, "must not be empty")
    unicode(value, field)
    if len(value) > max_length:
        raise InvalidOptionError(
            field, f"must be at most {max_length} characters, got {len(value)}"
        )
    return value


def callable_or_none(value: Any, field: str) -> Any:
    if value is not None and not callable(value):
        raise InvalidOptionError(field, f"must be callable, got {type_name(value)}")
    return value


def boolean(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidOptionError(field, f"must be a bool, got {type_name(value)}")
    return value


def stored_ms(value: Duration, field: str = "duration") -> int:
    """A duration that a config object has already normalised to ms (typed as Duration)."""
    return value if isinstance(value, int) else duration_ms(value, field)


def one_of(value: object, choices: tuple[str, ...], field: str) -> str:
    """``value`` when it is one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise InvalidOptionError(field, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def member(kind: type[E], value: object, field: str) -> E:
    """The member of enum ``kind`` with this value (or the member itself)."""
    try:
        return kind(value)
    except ValueError:
        names = ", ".join(str(m.value) for m in kind)
        raise InvalidOptionError(field, f"must be one of {names}, got {value!r}") from None


#: Characters a job id may not contain: ids become parts of Redis keys, and with these an
#: id could name another key (a job's log list, another queue's hash tag).
_KEY_UNSAFE = frozenset(":{}")


def job_id(value: object, field: str = "job_id", *, max_length: int = 256) -> str:
    """A job (or schedule) id: a non-empty printable string without ':', braces or
    whitespace."""
    text_value = text(value, field, max_length=max_length)
    if any(c in _KEY_UNSAFE or c.isspace() or not c.isprintable() for c in text_value):
        raise InvalidOptionError(
            field,
            f"must not contain ':', braces, whitespace or control characters, got {text_value!r}",
        )
    return text_value


def group(value: object, field: str = "group") -> str:
    """A group name: it becomes part of Redis keys, so the rules of a job id apply."""
    return job_id(value, field, max_length=200)


def job_name(value: object, field: str = "name") -> str:
    """A job name: a non-empty printable string of at most 1,000 characters."""
    name = text(value, field, max_length=1000)
    if not name.isprintable():
        raise InvalidOptionError(field, f"must not contain control characters, got {name!r}")
    return name


def unicode(value: str, field: str) -> str:
    """A str that is valid Unicode (no lone surrogates such as ``"\\ud800"``)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidOptionError(field, f"must be valid Unicode, got {value!r}") from None
    return value

"""Structured logging: one JSON object (or readable line) per record on stderr, secrets scrubbed.

Every record carries the worker id (`worker`: 0 for a single process, the slot number under
`--workers`). `Throttle` bounds how often a repeated event (a rejected frame) is logged and
counts what it suppressed.

Log lines carry client data (paths, ids, header names, exception text), so the formatters treat
every string as hostile: it is cut to a bounded length before anything scans it, credentials in
URLs are found in linear time (`redact_url`), and the text format quotes any value holding a
space, quote, `=` or control character, so that a CR or LF in a path or id cannot start a forged
line.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, TextIO

import orjson

__all__ = [
    "MAX_EXCEPTION_CHARS",
    "MAX_FIELD_CHARS",
    "FrameLog",
    "JsonFormatter",
    "TextFormatter",
    "Throttle",
    "bounded",
    "redact_url",
    "setup_logging",
]

_frames = logging.getLogger("ocpp_gateway.frames")


_SECRET_KEYS = ("password", "passwd", "secret", "token", "authorization")
# What follows "scheme://" when it is "user:password@" (matched at one position only).
_USERINFO = re.compile(r"[^/@\s:]+:[^/@\s]*@")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SCHEME_CHARS = _LETTERS | frozenset("0123456789+.-")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# A text-format value is quoted when it holds one of these (C0, space, DEL, C1, quote, `=`,
# and the Unicode line and paragraph separators some viewers break lines at).
_NEEDS_QUOTES = re.compile('[\x00-\x20\x7f-\x9f"=\u2028\u2029]')
#: Characters of one logged string kept at most (message, each extra); the rest is cut.
MAX_FIELD_CHARS = 2048
#: Characters of a logged exception (traceback) kept at most.
MAX_EXCEPTION_CHARS = 16384
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"}
)


def redact_url(url: str) -> str:
    """Hide the user information of every URL in a text, in time linear in its length.

    Each `://` is found with a plain search; the scheme is read backwards from it and the user
    information matched forwards at one position, so no character is scanned more than a
    bounded number of times (a regular expression searching for the scheme takes quadratic
    time on a long run of letters).

    Args:
        url: any text, possibly holding URLs with `user:password@`.

    Returns:
        The text with each `scheme://user:password@` written `scheme://***@`.
    """
    found = url.find("://")
    if found < 0:
        return url
    parts: list[str] = []
    done = 0  # url[:done] is in parts
    while found >= 0:
        start = found
        while start > done and url[start - 1] in _SCHEME_CHARS:
            start -= 1
        while start < found and url[start] not in _LETTERS:
            start += 1  # a scheme begins with a letter
        after = found + 3
        match = _USERINFO.match(url, after) if start < found else None
        if match is not None:
            parts.append(url[done:after])
            parts.append("***@")
            done = match.end()
            found = url.find("://", done)
        else:
            found = url.find("://", after)
    parts.append(url[done:])
    return "".join(parts)


def bounded(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """Cut a client-supplied string before it is scanned or written.

    Args:
        text: any string.
        limit: characters kept.

    Returns:
        `text` itself when short enough, else its first `limit` characters and a note of how
        many were left out.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...({len(text) - limit} more characters)"


def _scrub(key: str, value: Any) -> Any:
    lowered = key.lower()
    if any(secret in lowered for secret in _SECRET_KEYS):
        return "***"
    if isinstance(value, str):
        value = bounded(value)
        if "://" in value:
            return redact_url(value)
    return value


def _as_text(value: object) -> str:
    """An extra that JSON cannot hold (an exception, a path object), as bounded text."""
    return bounded(str(value))


def _quoted(text: str) -> str:
    """A text-format value: as it is, or JSON-quoted when it could split or forge a line."""
    if text and _NEEDS_QUOTES.search(text) is None:
        return text
    return orjson.dumps(text).decode()


def _one_line(text: str) -> str:
    """A text-format message: control characters escaped, so it stays on one line."""
    if _CONTROL.search(text) is None:
        return text
    return orjson.dumps(text).decode()[1:-1]


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    assert record.exc_info is not None
    return redact_url(bounded(formatter.formatException(record.exc_info), MAX_EXCEPTION_CHARS))


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: _scrub(key, value)
        for key, value in vars(record).items()
        if key not in _STANDARD_ATTRS and not key.startswith("_")
    }


def _timestamp(record: logging.LogRecord) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z"
    )


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: ts, level, logger, msg and the record's extras.

    Extras whose key looks like a secret (password, token, ...) are replaced by "***" and
    credentials inside URLs are removed.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Args:
            record: the log record.

        Returns:
            One line of JSON.
        """
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact_url(bounded(record.getMessage())),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = _exception_text(self, record)
        return orjson.dumps(entry, default=_as_text).decode()


class TextFormatter(logging.Formatter):
    """Formats a record as one readable line: `ts level logger: msg key=value ...`, with the
    same scrubbing as `JsonFormatter`. A value holding a space, quote, `=` or control character
    is written JSON-quoted, control characters in the message are escaped, and the lines of a
    traceback are indented, so that nothing a client sends can start a line of its own."""

    def format(self, record: logging.LogRecord) -> str:
        """Args:
            record: the log record.

        Returns:
            One line of text.
        """
        parts = [
            _timestamp(record),
            record.levelname.lower(),
            f"{record.name}:",
            _one_line(redact_url(bounded(record.getMessage()))),
        ]
        for key, value in _extras(record).items():
            if isinstance(value, str):
                text = _quoted(value)
            else:
                text = orjson.dumps(value, default=_as_text).decode()
            parts.append(f"{_quoted(str(key))}={text}")
        line = " ".join(parts)
        if record.exc_info:
            lines = _exception_text(self, record).splitlines()
            line += "".join("\n    " + _one_line(text) for text in lines)
        return line


class _Worker(logging.Filter):
    """Adds the worker id to every record."""

    def __init__(self, worker: int | str) -> None:
        super().__init__()
        self._worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self._worker
        return True


class Throttle:
    """At most `burst` events per `interval` seconds pass; the rest are counted.

    Args:
        interval: seconds of one window.
        burst: events allowed per window.
    """

    def __init__(self, interval: float = 10.0, burst: int = 10) -> None:
        self._interval = interval
        self._burst = burst
        self._window = -interval
        self._passed = 0
        self.suppressed = 0

    def allow(self, now: float) -> int | None:
        """Whether an event at `now` may be logged.

        Args:
            now: `time.monotonic()`.

        Returns:
            None when the event is suppressed, else how many events were suppressed since the
            last one that passed (to put on its line).
        """
        if now - self._window >= self._interval:
            self._window = now
            self._passed = 0
        if self._passed >= self._burst:
            self.suppressed += 1
            return None
        self._passed += 1
        suppressed, self.suppressed = self.suppressed, 0
        return suppressed


class FrameLog:
    """Logs per-frame rejections (a frame answered, replaced or dropped by the core) at a
    bounded rate: at most `burst` lines per `interval` seconds per process, each line saying
    how many were suppressed before it. Never logs payload values (the core's error detail
    names a JSON path and a rule only).

    Args:
        interval: seconds of one window.
        burst: lines allowed per window.
    """

    def __init__(self, interval: float = 10.0, burst: int = 10) -> None:
        self._throttle = Throttle(interval, burst)

    def rejected(
        self,
        charge_point_id: str,
        direction: str,
        action: str | None,
        error_code: str,
        detail: str | None,
    ) -> None:
        """A frame rejected with an OCPP error code.

        Args:
            charge_point_id: the connection's identity.
            direction: "cp_to_csms" or "csms_to_cp".
            action: the frame's action, if known.
            error_code: the OCPP error code.
            detail: the core's description of the violation.
        """
        suppressed = self._throttle.allow(time.monotonic())
        if suppressed is not None:
            _frames.warning(
                "frame rejected",
                extra={
                    "charge_point_id": charge_point_id,
                    "direction": direction,
                    "action": action,
                    "error_code": error_code,
                    "detail": detail,
                    "suppressed": suppressed,
                },
            )

    def dropped(
        self, charge_point_id: str, direction: str, action: str | None, reason: str
    ) -> None:
        """A frame dropped without an answer.

        Args:
            charge_point_id: the connection's identity.
            direction: "cp_to_csms" or "csms_to_cp".
            action: the frame's action, if known.
            reason: the core's drop reason.
        """
        suppressed = self._throttle.allow(time.monotonic())
        if suppressed is not None:
            _frames.warning(
                "frame dropped",
                extra={
                    "charge_point_id": charge_point_id,
                    "direction": direction,
                    "action": action,
                    "reason": reason,
                    "suppressed": suppressed,
                },
            )


def setup_logging(
    level: str = "info",
    stream: TextIO | None = None,
    fmt: str = "json",
    worker: int | str = 0,
) -> None:
    """Send every `ocpp_gateway` (and aiohttp) log record to `stream`, one line each.

    Args:
        level: "debug", "info", "warning" or "error".
        stream: where to write; stderr when None.
        fmt: "json" or "text".
        worker: the worker id put on every line ("supervisor" for the `--workers` parent).

    Raises:
        ValueError: unknown level or format.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    if fmt not in ("json", "text"):
        raise ValueError(f"unknown log format {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_Worker(worker))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # aiohttp's access log is per request; keep it quiet unless debugging.
    logging.getLogger("aiohttp.access").setLevel(max(numeric, logging.WARNING))

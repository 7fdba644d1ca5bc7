"""Structured logging: one JSON object per line on stderr, with secrets scrubbed."""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, TextIO

import orjson

__all__ = ["JsonFormatter", "redact_url", "setup_logging"]


_SECRET_KEYS = ("password", "passwd", "secret", "token", "authorization")
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s:]+:[^/@\s]*@")
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"}
)


def redact_url(url: str) -> str:
    """Hide the user information of a URL.

    Args:
        url: any URL, possibly with `user:password@`.

    Returns:
        The URL with `user:password@` replaced by `***@`.
    """
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", url)


def _scrub(key: str, value: Any) -> Any:
    lowered = key.lower()
    if any(secret in lowered for secret in _SECRET_KEYS):
        return "***"
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


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
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact_url(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = _scrub(key, value)
        if record.exc_info:
            entry["exc"] = redact_url(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def setup_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send every `ocpp_gateway` (and aiohttp) log record to `stream` as JSON lines.

    Args:
        level: "debug", "info", "warning" or "error".
        stream: where to write; stderr when None.

    Raises:
        ValueError: unknown level.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # aiohttp's access log is per request; keep it quiet unless debugging.
    logging.getLogger("aiohttp.access").setLevel(max(numeric, logging.WARNING))

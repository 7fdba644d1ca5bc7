"""Storing violation logs: written atomically, rewritten when changed, read back.

`dump` writes a temporary file in the same directory and renames it over the old one, so a
reader never sees half a file; with several workers, each writes `<violation_log>.<pid>`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import orjson

from ocpp_gateway.violations.log import ViolationLog

__all__ = ["dump", "dump_if_changed", "load"]


def dump(log: ViolationLog, path: str) -> None:
    """Write a log to `path` atomically: a temporary file in the same directory, then a
    rename over the old one.

    Args:
        log: the log.
        path: the file to (re)write.

    Raises:
        OSError: the directory is not writable.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".violations-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps(log.to_json(), option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    log.written = log.changes


def dump_if_changed(log: ViolationLog, path: str) -> bool:
    """`dump` when something was recorded since the last write (for a once-a-second timer).

    Args:
        log: the log.
        path: the file to (re)write.

    Returns:
        True when written.

    Raises:
        OSError: the directory is not writable.
    """
    if log.changes == log.written:
        return False
    dump(log, path)
    return True


def load(path: str) -> ViolationLog:
    """Read a log that `dump` wrote.

    Args:
        path: the file.

    Returns:
        The log.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not a violation log of this format.
    """
    with open(path, "rb") as fh:
        data = orjson.loads(fh.read())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a violation log")
    try:
        return ViolationLog.from_json(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc

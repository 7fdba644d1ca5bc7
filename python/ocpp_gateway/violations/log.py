"""Recording payload violations: a bounded log per process, with identifiers redacted.

The gateway records every payload violation (refused or, in observe mode, forwarded) in one
`ViolationLog` per process; `store` writes it to `validation.violation_log` about once a second,
and `report` (`ocpp-gateway violations`) turns such files into a table or model tables.

Bounds: at most `max_entries` distinct keys (model, firmware, version, action, request or
response, JSON path, keyword), and as many charge point models; a record with a new key
beyond that is dropped and counted in `overflow`. Each entry keeps a count, one sample frame
with identifiers redacted (idTag/idToken values, serial numbers, ICCID/IMSI, meter serials,
authorization keys and passwords) and cut to `max_sample_chars`, and a few observed facts for
the suggested relaxation (string lengths, up to 16 distinct enum values, JSON types).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from ocpp_gateway._core import Session, Verdict

__all__ = [
    "FORMAT",
    "REDACTED_KEYS",
    "UNKNOWN_MODEL",
    "ViolationEntry",
    "ViolationLog",
    "redact",
]

FORMAT = 1
UNKNOWN_MODEL = "(unknown)"
#: Members whose string values are replaced (at any depth): identifiers and tokens.
REDACTED_KEYS = frozenset(
    {
        "idTag",
        "parentIdTag",
        "idToken",
        "groupIdToken",
        "chargePointSerialNumber",
        "chargeBoxSerialNumber",
        "serialNumber",
        "meterSerialNumber",
        "iccid",
        "imsi",
        "certificate",
        "csr",
        "exiRequest",
        "exiResponse",
    }
)
#: Configuration keys and variables whose `value` is a secret.
_SECRET_NAMES = frozenset({"AuthorizationKey", "BasicAuthPassword"})
_VALUE_KEYS = ("value", "attributeValue")
_MAX_VALUES = 16
_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
Key = tuple[str, str, str, str, bool, str, str]


def _mask(text: str) -> str:
    """A placeholder of the same length (so length rules still show), at most 64 characters."""
    return "x" * min(len(text), 64)


def redact(value: Any) -> Any:
    """A copy of a parsed payload with identifiers and secrets masked.

    Args:
        value: a parsed JSON value.

    Returns:
        The same structure; the string values of `REDACTED_KEYS` members (also nested, as in a
        2.x `idToken` object) and the values of secret configuration keys replaced by "x"
        placeholders of the same length (at most 64).
    """
    if isinstance(value, list):
        return [redact(item) for item in value]
    if not isinstance(value, dict):
        return value
    secret = any(isinstance(v, str) and v in _SECRET_NAMES for v in value.values())
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in REDACTED_KEYS or (secret and key in _VALUE_KEYS):
            out[key] = _mask_all(item)
        else:
            out[key] = redact(item)
    return out


def _mask_all(value: Any) -> Any:
    if isinstance(value, str):
        return _mask(value)
    if isinstance(value, list):
        return [_mask_all(item) for item in value]
    if isinstance(value, dict):
        return {key: _mask_all(item) for key, item in value.items()}
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _at(value: Any, path: list[str], arrays: bool) -> Iterator[Any]:
    """Every value at a dotted path, arrays stepped through as violation paths are written;
    with `arrays`, an array at the end of the path is yielded itself (for minItems)."""
    if isinstance(value, list) and (path or not arrays):
        for item in value:
            yield from _at(item, path, arrays)
        return
    if not path:
        yield value
        return
    if isinstance(value, dict) and path[0] in value:
        yield from _at(value[path[0]], path[1:], arrays)


@dataclass(slots=True)
class ViolationEntry:
    """One key of the log and what was seen under it.

    Attributes:
        model, firmware: from the connection's BootNotification ("(unknown)" / "" before it).
        version, action: the session's version and the frame's action (a result: its call's).
        response: the violation is in a CALLRESULT payload.
        path, keyword: `Verdict.error_path` and `Verdict.error_keyword`.
        error_code: the wire error code.
        direction: where the frame travelled.
        count: how many frames had this violation.
        first_seen, last_seen: Unix times.
        sample: the first such frame, redacted, as JSON text.
        lengths: (min, max) string or array length seen at the path, when it has one.
        values: distinct string values seen at the path (for enums), at most 16.
        types: JSON types seen at the path.
    """

    model: str
    firmware: str
    version: str
    action: str
    response: bool
    path: str
    keyword: str
    error_code: str
    direction: str
    count: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    sample: str = ""
    lengths: tuple[int, int] | None = None
    values: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)

    @property
    def key(self) -> Key:
        """The identity of the entry in the log."""
        return (
            self.model,
            self.firmware,
            self.version,
            self.action,
            self.response,
            self.path,
            self.keyword,
        )

    def observe(self, payload: Any) -> None:
        """Note the length, value and type found at the entry's path in a parsed payload."""
        if self.keyword == "additionalProperties" or not self.path:
            return
        arrays = self.keyword in ("minItems", "maxItems")
        for found in _at(payload, self.path.split("."), arrays):
            kind = _json_type(found)
            if kind not in self.types:
                self.types.append(kind)
            if isinstance(found, str | list):
                n = len(found)
                low, high = self.lengths or (n, n)
                self.lengths = (min(low, n), max(high, n))
            if (
                isinstance(found, str)
                and self.keyword == "enum"
                and found not in self.values
                and len(self.values) < _MAX_VALUES
            ):
                self.values.append(found)

    def to_json(self) -> dict[str, Any]:
        """Returns: the entry as a JSON-ready dict (the file format)."""
        return {
            "model": self.model,
            "firmware": self.firmware,
            "version": self.version,
            "action": self.action,
            "response": self.response,
            "path": self.path,
            "keyword": self.keyword,
            "error_code": self.error_code,
            "direction": self.direction,
            "count": self.count,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "sample": self.sample,
            "lengths": list(self.lengths) if self.lengths else None,
            "values": list(self.values),
            "types": list(self.types),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ViolationEntry:
        """Args:
            data: one entry as `to_json` wrote it.

        Returns:
            The entry.

        Raises:
            KeyError, TypeError, ValueError: not an entry of this format.
        """
        lengths = data.get("lengths")
        return cls(
            model=str(data["model"]),
            firmware=str(data["firmware"]),
            version=str(data["version"]),
            action=str(data["action"]),
            response=bool(data["response"]),
            path=str(data["path"]),
            keyword=str(data["keyword"]),
            error_code=str(data["error_code"]),
            direction=str(data["direction"]),
            count=int(data["count"]),
            first_seen=float(data["first_seen"]),
            last_seen=float(data["last_seen"]),
            sample=str(data["sample"]),
            lengths=(int(lengths[0]), int(lengths[1])) if lengths else None,
            values=[str(v) for v in data.get("values", ())],
            types=[str(t) for t in data.get("types", ())],
        )


class ViolationLog:
    """A bounded log of payload violations, one per gateway process.

    Args:
        max_entries: the most distinct keys (and the most models seen) kept.
        max_sample_chars: samples are cut to this many characters.

    Not thread-safe; the relay calls it from the event loop.
    """

    def __init__(self, max_entries: int = 1000, max_sample_chars: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.max_sample_chars = max_sample_chars
        self.entries: dict[Key, ViolationEntry] = {}
        #: (version, model) -> firmware versions seen in BootNotifications.
        self.models: dict[tuple[str, str], list[str]] = {}
        #: Records dropped because the log was full.
        self.overflow = 0
        #: Bumped on every change; `store.dump_if_changed` writes only when it moved.
        self.changes = 0
        #: `changes` when the log was last written (`store.dump`); -1 before.
        self.written = -1

    def __len__(self) -> int:
        return len(self.entries)

    def record_boot(self, version: str, model: str | None, firmware: str | None) -> None:
        """Note a model seen in a BootNotification, violations or not (so that a model with
        none can be told apart from one never seen).

        Args:
            version: the session's OCPP version.
            model, firmware: `Session.boot_info`'s model and firmware.
        """
        key = (version, model or UNKNOWN_MODEL)
        seen = self.models.get(key)
        if seen is None:
            if len(self.models) >= self.max_entries:
                self.overflow += 1
                return
            seen = self.models[key] = []
        if firmware and firmware not in seen and len(seen) < _MAX_VALUES:
            seen.append(firmware)
            self.changes += 1
        elif not seen:
            self.changes += 1

    def record(
        self,
        *,
        version: str,
        direction: str,
        message_type: int,
        action: str | None,
        path: str | None,
        keyword: str | None,
        error_code: str | None,
        frame: bytes,
        model: str | None = None,
        firmware: str | None = None,
        now: float | None = None,
    ) -> bool:
        """Count one payload violation.

        Args:
            version: the session's OCPP version.
            direction: "cp_to_csms" or "csms_to_cp".
            message_type: `Verdict.message_type` (3: the violation is in a CALLRESULT).
            action: `Verdict.action`.
            path, keyword, error_code: `Verdict.error_path`, `.error_keyword`, `.error_code`;
                a verdict without a path (a frame error) is not recorded.
            frame: the frame as received (parsed only to sample and observe it).
            model, firmware: from `Session.boot_info`.
            now: Unix time; `time.time()` when None.

        Returns:
            True when counted, False when not a payload violation or dropped (log full).
        """
        if path is None or keyword is None or action is None:
            return False
        response = message_type == 3
        key: Key = (
            model or UNKNOWN_MODEL,
            firmware or "",
            version,
            action,
            response,
            path,
            keyword,
        )
        entry = self.entries.get(key)
        stamp = time.time() if now is None else now
        try:
            parsed = orjson.loads(frame)
            payload = parsed[-1] if isinstance(parsed, list) and parsed else None
        except orjson.JSONDecodeError:
            parsed = payload = None
        if entry is None:
            if len(self.entries) >= self.max_entries:
                self.overflow += 1
                return False
            entry = ViolationEntry(
                *key,
                error_code=error_code or "",
                direction=direction,
                first_seen=stamp,
                sample=self._sample(parsed, frame),
            )
            self.entries[key] = entry
        entry.count += 1
        entry.last_seen = stamp
        if payload is not None:
            entry.observe(payload)
        self.changes += 1
        return True

    def record_verdict(
        self, session: Session, verdict: Verdict, direction: str, frame: bytes
    ) -> bool:
        """Count a verdict's payload violation, if it has one (refused or observed).

        Args:
            session: the connection's session (its version and `boot_info`).
            verdict: what the session said about `frame`.
            direction: "cp_to_csms" or "csms_to_cp".
            frame: the frame as received.

        Returns:
            True when counted.
        """
        if verdict.error_path is None:
            return False
        boot = session.boot_info
        return self.record(
            version=session.version,
            direction=direction,
            message_type=verdict.message_type,
            action=verdict.action,
            path=verdict.error_path,
            keyword=verdict.error_keyword,
            error_code=verdict.error_code,
            frame=frame,
            model=boot[1] if boot else None,
            firmware=boot[2] if boot else None,
        )

    def _sample(self, parsed: Any, frame: bytes) -> str:
        if parsed is None:
            return "(not JSON)"
        text = json.dumps(redact(parsed), ensure_ascii=False, separators=(",", ":"))
        if len(text) > self.max_sample_chars:
            text = text[: self.max_sample_chars] + "…"
        return text

    def merge(self, other: ViolationLog) -> None:
        """Add another log's counts (another worker's), keeping the earliest sample.

        Args:
            other: the log to add; it is not changed.
        """
        for key, theirs in other.entries.items():
            mine = self.entries.get(key)
            if mine is None:
                if len(self.entries) >= self.max_entries:
                    self.overflow += 1
                    continue
                self.entries[key] = ViolationEntry.from_json(theirs.to_json())
                continue
            if theirs.first_seen < mine.first_seen:
                mine.first_seen, mine.sample = theirs.first_seen, theirs.sample
            mine.count += theirs.count
            mine.last_seen = max(mine.last_seen, theirs.last_seen)
            if theirs.lengths:
                low, high = mine.lengths or theirs.lengths
                mine.lengths = (min(low, theirs.lengths[0]), max(high, theirs.lengths[1]))
            for v in theirs.values:
                if v not in mine.values and len(mine.values) < _MAX_VALUES:
                    mine.values.append(v)
            mine.types.extend(t for t in theirs.types if t not in mine.types)
        for mkey, firmwares in other.models.items():
            seen = self.models.setdefault(mkey, [])
            seen.extend(f for f in firmwares if f not in seen)
        self.overflow += other.overflow
        self.changes += 1

    # -- the file format ---------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Returns: the whole log as a JSON-ready dict (the file format)."""
        return {
            "format": FORMAT,
            "written_at": time.time(),
            "max_entries": self.max_entries,
            "overflow": self.overflow,
            "models": [
                {"version": v, "model": m, "firmware": list(f)}
                for (v, m), f in sorted(self.models.items())
            ],
            "entries": [e.to_json() for e in self.sorted_entries()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ViolationLog:
        """Rebuild a log from `to_json`'s dict (a file `store.dump` wrote).

        Args:
            data: the parsed file.

        Returns:
            The log.

        Raises:
            ValueError: it is not a violation log of this format, or an entry is malformed.
        """
        if data.get("format") != FORMAT:
            raise ValueError(f"not a violation log (format {FORMAT})")
        log = cls(max_entries=int(data.get("max_entries", 1000)))
        try:
            for item in data["entries"]:
                entry = ViolationEntry.from_json(item)
                log.entries[entry.key] = entry
            for item in data.get("models", ()):
                log.models[(str(item["version"]), str(item["model"]))] = [
                    str(f) for f in item["firmware"]
                ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed entry: {exc}") from exc
        log.overflow = int(data.get("overflow", 0))
        return log

    # -- views -------------------------------------------------------------------------------

    def sorted_entries(self) -> list[ViolationEntry]:
        """Returns: the entries, most frequent first, then by model, action and path."""
        return sorted(
            self.entries.values(),
            key=lambda e: (-e.count, e.model, e.version, e.action, e.path, e.keyword),
        )

"""Helpers of the capture tests: the format's schema, real Session verdicts, records of frames."""

from __future__ import annotations

import asyncio
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from kit import WAIT, subprocess_env
from ocpp_gateway import _core
from ocpp_gateway.capture import Redactor, TraceIdentity, records
from ocpp_gateway.config import load_config
from ocpp_gateway.runtime import Runtime

WAIT_PROCESS = 2 * WAIT  # seconds a replay process may take (it starts a Python)
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "open-ocpp-trace"


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / "trace-v1.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def check_record(record: dict[str, Any]) -> None:
    """Fail unless `record` validates against the Open OCPP Trace v1.1 schema and follows the
    producer rules the schema cannot express (extensions only under meta; `raw` decodes to the
    frame the record decomposes)."""
    _validator().validate(record)
    schema: Any = _validator().schema
    allowed = set(schema["properties"])
    assert set(record) <= allowed, set(record) - allowed
    if record["meta"].get("malformed"):
        return
    frame = orjson.loads(record["raw"])
    assert frame[1] == record["messageId"]
    if record["messageType"] == "CALL":
        assert frame[2] == record["action"] and frame[3] == record["payload"]
    elif record["messageType"] == "CALLRESULT":
        assert frame[2] == record["payload"]
    else:
        assert frame[2] == record["error"]["code"]


@cache
def runtime() -> Runtime:
    """A process's built-once products (schemas, policies), for real Sessions."""
    return Runtime(load_config(None, {}, {}))


def session(version: str = "ocpp1.6") -> _core.Session:
    """Returns: a fresh Session of `version` with the default policy."""
    return runtime().new_session(version)  # type: ignore[arg-type]


def entry(
    direction: str,
    frame: bytes,
    verdict: Any,
    version: str = "ocpp1.6",
    seq: int = 1,
    backend: str = "default",
) -> Any:
    """A captured frame as the relay's hook makes it."""
    ident = TraceIdentity("CP-1", version, 1.0, 0)
    return (seq, 1_765_000_000.25, direction, frame, verdict, backend, ident)


def record_of(
    direction: str,
    frame: bytes,
    verdict: Any,
    version: str = "ocpp1.6",
    redactor: Redactor | None = None,
) -> list[dict[str, Any]]:
    """The records of one frame, each checked against the format."""
    found = records(entry(direction, frame, verdict, version), redactor)
    for record in found:
        check_record(record)
    return found


async def run_replay(trace: Path, url: str, *options: str) -> tuple[int | None, str, str]:
    """`ocpp-gateway replay TRACE --to URL OPTIONS` as a process.

    Returns:
        (exit status, standard output, standard error).
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ocpp_gateway.cli",
        "replay",
        str(trace),
        "--to",
        url,
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=subprocess_env(),
    )
    out, err = await asyncio.wait_for(process.communicate(), WAIT_PROCESS)
    return process.returncode, out.decode(), err.decode()

"""Capture of charge points' frames in the Open OCPP Trace format v1.1: streams, records, files.

- `config`: the `[capture]` settings (a leaf);
- `record`: Open OCPP Trace records from captured frames (pure);
- `redact`: secrets and idTags hidden in those records (pure);
- `sink`: the rotating JSONL files, written by a thread;
- `stream`: one charge point's capture (the relay's hook) and the process's set of them.
"""

from __future__ import annotations

from ocpp_gateway.capture.record import SCHEMA_VERSION, TraceIdentity, records
from ocpp_gateway.capture.redact import Redactor
from ocpp_gateway.capture.sink import FileSink
from ocpp_gateway.capture.stream import Capture, CaptureStream
from ocpp_gateway.config.sections import CaptureConfig

__all__ = [
    "SCHEMA_VERSION",
    "Capture",
    "CaptureConfig",
    "CaptureStream",
    "FileSink",
    "Redactor",
    "TraceIdentity",
    "records",
]

"""Several backends per charge point, by role.

The rules (`rules`, `compare`), a candidate's durable store (`store`), the configured backends
(`backend`), the links that carry the rules out (`side`, `tap`), the process's fanout that builds
them (`hub`), and the relay's slow paths for them (`wiring`: attach, copy to observers, cut over).
"""

from __future__ import annotations

from ocpp_gateway.fanout.compare import compare_answers, decisions
from ocpp_gateway.fanout.hub import Fanout
from ocpp_gateway.fanout.rules import REFUSAL_CODE, command_refusal, serves, unknown_commands
from ocpp_gateway.fanout.side import SideLink
from ocpp_gateway.fanout.store import CandidateStore, read_report

__all__ = [
    "REFUSAL_CODE",
    "CandidateStore",
    "Fanout",
    "SideLink",
    "command_refusal",
    "compare_answers",
    "decisions",
    "read_report",
    "serves",
    "unknown_commands",
]

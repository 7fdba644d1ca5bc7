"""Several backends per charge point, by role.

The rules (`rules`, `compare`), a candidate's durable store (`store`) and the links that carry
them out (`hub`).
"""

from __future__ import annotations

from ocpp_gateway.fanout.compare import compare_answers, decisions
from ocpp_gateway.fanout.hub import Fanout, SideLink
from ocpp_gateway.fanout.rules import REFUSAL_CODE, command_refusal, serves, unknown_commands
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

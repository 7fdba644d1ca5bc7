"""ocpp-gateway: an edge gateway for OCPP-J that validates every frame in Rust and relays it."""

from ocpp_gateway._core import (
    CALL,
    CALLERROR,
    CALLRESULT,
    CALLRESULTERROR,
    SEND,
    Policy,
    SchemaError,
    SchemaSet,
    Session,
    Verdict,
    __version__,
    error_code_for,
)
from ocpp_gateway.session import default_schemas

__all__ = [
    "CALL",
    "CALLERROR",
    "CALLRESULT",
    "CALLRESULTERROR",
    "SEND",
    "Policy",
    "SchemaError",
    "SchemaSet",
    "Session",
    "Verdict",
    "__version__",
    "default_schemas",
    "error_code_for",
]

"""ocpp-gateway: an edge gateway for OCPP-J that validates every frame in Rust and relays it."""

from ocpp_gateway._core import Policy, SchemaSet, Session, Verdict

__all__ = ["Policy", "SchemaSet", "Session", "Verdict"]

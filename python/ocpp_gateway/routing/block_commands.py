"""Built-in plugin `block_commands`: refuse chosen backend-to-charge-point commands at the edge."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from ocpp_gateway.routing import (
    CONTINUE,
    ConnectionInfo,
    Decision,
    MessageView,
    Reject,
)

__all__ = ["BlockCommands"]


_VALID_CODES = frozenset(
    {"NotSupported", "SecurityError", "GenericError", "InternalError", "NotImplemented"}
)


class BlockCommands:
    """Answer chosen CSMS-initiated CALLs (Reset, UpdateFirmware, ...) with a CALLERROR.

    The blocked call never reaches the charge point; the backend gets the CALLERROR instead.

    Configuration:

        [plugins]
        enabled = ["block_commands"]
        [plugins.options.block_commands]
        actions = ["Reset", "UpdateFirmware"]
        charge_points = ["LAB-*"]        # optional glob patterns; default: every charge point
        error_code = "SecurityError"     # valid in 1.6, 2.0.1 and 2.1

    Args:
        actions: the actions to block.
        charge_points: glob patterns of charge point ids the rule applies to (all when empty).
        error_code: the CALLERROR code sent back.
        description: the CALLERROR description.

    Raises:
        ValueError: an unsupported error code.
    """

    def __init__(
        self,
        actions: Sequence[str] = (),
        charge_points: Sequence[str] = (),
        error_code: str = "SecurityError",
        description: str = "Blocked by gateway policy",
    ) -> None:
        if error_code not in _VALID_CODES:
            raise ValueError(f"error_code must be one of {sorted(_VALID_CODES)}")
        self.actions = frozenset(actions)
        self.patterns = tuple(charge_points)
        self._reject = Reject(error_code, description)

    def _applies(self, charge_point_id: str) -> bool:
        return not self.patterns or any(fnmatchcase(charge_point_id, p) for p in self.patterns)

    def on_connect(self, info: ConnectionInfo) -> Decision:
        """Returns: CONTINUE."""
        return CONTINUE

    def on_call(self, message: MessageView) -> Decision:
        """Returns: Reject for a blocked command to a matching charge point, else CONTINUE."""
        if (
            message.direction == "csms_to_cp"
            and message.action in self.actions
            and self._applies(message.charge_point_id)
        ):
            return self._reject
        return CONTINUE

    def on_call_result(self, message: MessageView) -> Decision:
        """Returns: CONTINUE."""
        return CONTINUE

    def on_disconnect(self, info: ConnectionInfo) -> None:
        """Nothing to forget."""

"""Example routing plugin: answer one vendor's DataTransfer calls at the edge.

Some charger fleets send chatty vendor DataTransfer messages that the CSMS only acknowledges.
This plugin answers them in the gateway, so they never cost the backend a round trip; every
other message is relayed as usual.

Enable it without packaging (the "module:Class" form; the module must be importable):

    [plugins]
    enabled = ["vendor_data_transfer:VendorDataTransfer"]
    [plugins.options."vendor_data_transfer:VendorDataTransfer"]
    vendor_id = "com.example.telemetry"

or package it and register it under the entry-point group, then enable it by name:

    # pyproject.toml of your package
    [project.entry-points."ocpp_gateway.plugins"]
    vendor_data_transfer = "vendor_data_transfer:VendorDataTransfer"

Hooks return decisions and never do I/O. The payload is parsed only when a hook reads
`message.payload`, so the plugin first checks the cheap fields (direction, action).
"""

from __future__ import annotations

from ocpp_gateway.routing import (
    CONTINUE,
    ConnectionInfo,
    Decision,
    MessageView,
    Reply,
)


class VendorDataTransfer:
    """Reply `{"status": "Accepted"}` to DataTransfer calls of one vendor from charge points.

    Args:
        vendor_id: the vendorId whose DataTransfer calls are answered locally.
    """

    def __init__(self, vendor_id: str) -> None:
        if not vendor_id:
            raise ValueError("vendor_id must not be empty")
        self.vendor_id = vendor_id
        self.answered = 0

    def on_connect(self, info: ConnectionInfo) -> Decision:
        """Returns: CONTINUE (every charge point is welcome)."""
        return CONTINUE

    def on_call(self, message: MessageView) -> Decision:
        """Returns: Reply for our vendor's DataTransfer from a charge point, else CONTINUE."""
        if message.direction != "cp_to_csms" or message.action != "DataTransfer":
            return CONTINUE
        payload = message.payload  # parsed here, only for DataTransfer calls
        if payload.get("vendorId") != self.vendor_id:
            return CONTINUE
        self.answered += 1
        return Reply({"status": "Accepted"})

    def on_call_result(self, message: MessageView) -> Decision:
        """Returns: CONTINUE."""
        return CONTINUE

    def on_disconnect(self, info: ConnectionInfo) -> None:
        """Nothing to forget."""

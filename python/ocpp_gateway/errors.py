"""Exceptions raised by the gateway's Python layer, in one tree.

```
GatewayError
 +-- ConfigError            a configuration file, variable or flag is invalid (lists every error)
 +-- CredentialsError       the credentials file is unreadable or malformed (also a ValueError)
 +-- TransportUnavailable   a backend link cannot be opened or was lost
 +-- PluginError            a routing plugin cannot be found, built or configured
 +-- calls.CallFailed       a call the gateway sends itself got no answer
      +-- CallRefused       invalid for the charge point; not sent
      +-- CallQueueFull     too many calls wait for that charge point; not sent
      +-- CallTimedOut      no answer in time (also a TimeoutError)
      +-- CallAborted       the charge point disconnected (also a ConnectionError)
```

Errors of the Rust core (`ocpp_gateway._core.SchemaError`) are `ValueError`s and stay separate.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ConfigError", "CredentialsError", "GatewayError", "PluginError", "TransportUnavailable"]


class GatewayError(Exception):
    """Base of every error the gateway's Python layer raises on purpose."""


class ConfigError(GatewayError):
    """The configuration is invalid.

    Args:
        errors: every problem found, each starting with the key it concerns.
    """

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(self.errors) or "invalid configuration")


class CredentialsError(GatewayError, ValueError):
    """The credentials file is unreadable, not TOML, or holds a malformed entry."""


class TransportUnavailable(GatewayError):
    """A transport could not open a link for a charge point, or the link was lost."""


class PluginError(GatewayError):
    """A routing plugin could not be found, built or configured."""

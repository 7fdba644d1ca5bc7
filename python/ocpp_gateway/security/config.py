"""Settings of the security layer: the `[security]` section, kept where the layer's code lives.

The section and its check are defined with the other sections in `ocpp_gateway.config`
(`sections.SecurityConfig`, `checks.check_security_config`); they are importable from here too.
"""

from __future__ import annotations

from ocpp_gateway.config.checks import check_security_config
from ocpp_gateway.config.sections import SecurityConfig

__all__ = ["SecurityConfig", "check_security_config"]

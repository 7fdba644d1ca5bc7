"""ocpp-gateway: an edge gateway for OCPP-J that validates every frame in Rust and relays it.

The names below are the public API; everything else is internal and may change:
- the core: `Session`, `Verdict`, `Policy`, `SchemaSet`, `default_schemas`, `error_code_for`,
  the MessageTypeIds and `VERSIONS` (the OCPP versions, as subprotocol names);
- running a gateway in-process: `load_config`, `GatewayConfig`, `start_gateway`,
  `RunningGateway`;
- routing plugins: `Plugin`, `ConnectionInfo`, `MessageView` and the decisions `Continue`
  (`CONTINUE`), `Forward`, `Reply`, `Reject`;
- backends: the `Transport` and `Link` protocols, the optional `WakingLink` (a link the relay
  need not wait on while idle), `FramedLink` (a link given the Session's facts with each frame,
  which says why it ended) and `SharedOwnership` (identities owned across gateway nodes), and
  `TransportUnavailable`.
"""

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
from ocpp_gateway.config import GatewayConfig, load_config
from ocpp_gateway.errors import ConfigError, GatewayError, PluginError, TransportUnavailable
from ocpp_gateway.routing import (
    CONTINUE,
    ConnectionInfo,
    Continue,
    Decision,
    Forward,
    MessageView,
    Plugin,
    Reject,
    Reply,
)
from ocpp_gateway.schemas import VERSIONS, default_schemas
from ocpp_gateway.server import RunningGateway, start_gateway
from ocpp_gateway.transports import (
    FramedLink,
    Link,
    SharedOwnership,
    Transport,
    WakingLink,
)

__all__ = [
    "CALL",
    "CALLERROR",
    "CALLRESULT",
    "CALLRESULTERROR",
    "CONTINUE",
    "SEND",
    "VERSIONS",
    "ConfigError",
    "ConnectionInfo",
    "Continue",
    "Decision",
    "Forward",
    "FramedLink",
    "GatewayConfig",
    "GatewayError",
    "Link",
    "MessageView",
    "Plugin",
    "PluginError",
    "Policy",
    "Reject",
    "Reply",
    "RunningGateway",
    "SchemaError",
    "SchemaSet",
    "Session",
    "SharedOwnership",
    "Transport",
    "TransportUnavailable",
    "Verdict",
    "WakingLink",
    "__version__",
    "default_schemas",
    "error_code_for",
    "load_config",
    "start_gateway",
]

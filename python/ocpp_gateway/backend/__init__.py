"""A small asyncio API for backend services behind the gateway's broker transports.

```python
from ocpp_gateway.backend import BackendApp, CallError, NatsBroker

app = BackendApp(NatsBroker("nats://127.0.0.1:4222", service="csms"))

@app.on("StartTransaction")
async def start(request):
    ...  # commit the effect, keyed by its business key
    return {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}

await app.run()                                   # consume until app.stop()
result = await app.call("CP1", "Reset", {"type": "Soft"})   # result.status: ok, offline, ...
```

Each charge point CALL is answered (a handler's payload, or a CALLERROR when it raises
`CallError`) and only then acknowledged: a handler that fails, or a process that dies before
the acknowledgement, gets the message again (at-least-once), so handlers deduplicate by the
action's business key and return their stored answer. The wire contract the API speaks is
docs/brokers.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ocpp_gateway.backend.app import (
    BackendApp,
    Broker,
    CallError,
    CommandResult,
    Delivery,
    Handler,
    Request,
)
from ocpp_gateway.transports.broker.contract import CommandStatus

if TYPE_CHECKING:
    from ocpp_gateway.backend.nats import NatsBroker
    from ocpp_gateway.backend.redis import RedisBroker

__all__ = [
    "BackendApp",
    "Broker",
    "CallError",
    "CommandResult",
    "CommandStatus",
    "Delivery",
    "Handler",
    "NatsBroker",
    "RedisBroker",
    "Request",
]


def __getattr__(name: str) -> Any:
    # Each broker's client library is an optional extra: import it only when asked for.
    if name == "NatsBroker":
        from ocpp_gateway.backend.nats import NatsBroker

        return NatsBroker
    if name == "RedisBroker":
        from ocpp_gateway.backend.redis import RedisBroker

        return RedisBroker
    raise AttributeError(name)

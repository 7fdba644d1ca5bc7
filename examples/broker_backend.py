"""Example backend service for the broker transports: journals transactions to SQLite and
answers every charge-point action validly. The code is `ocpp_gateway/backend/example.py`
(shipped in the package so that `ocpp-gateway demo --transport nats` can run it); read it there.

    python examples/broker_backend.py --nats nats://127.0.0.1:4222 --db backend.sqlite
"""

import asyncio

from ocpp_gateway.backend.example import main

if __name__ == "__main__":
    asyncio.run(main())

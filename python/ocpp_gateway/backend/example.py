"""The example backend service: a transaction journal in SQLite, valid answers to every action.

It answers every charge-point action of OCPP 1.6, 2.0.1 and 2.1 validly
(`ocpp-gateway demo --transport nats` runs it).

Run it next to a gateway serving with `[upstream] type = "nats"` (or "redis_streams"):

    python examples/broker_backend.py --nats nats://127.0.0.1:4222 --db backend.sqlite
    python -m ocpp_gateway.backend.example --redis redis://127.0.0.1:6379/0 --db backend.sqlite

Transaction-class messages (StartTransaction, StopTransaction, MeterValues with a
transactionId, TransactionEvent, SecurityEventNotification) are committed to the journal under
their business key before the answer is sent; a redelivered message (after a crash, or the
charger's own retry) finds its key and gets the stored answer again, so each transaction is
recorded once and a StartTransaction replay keeps its transactionId. Everything else is
answered by the gateway's local responder logic (`LocalTransport.answer`).

`--stall-after-commit` makes the service commit and then hang without answering: the fault
tests kill such a process to show that another instance answers from the journal.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from ocpp_gateway.aio import stop as stop_tasks
from ocpp_gateway.backend.app import BackendApp, Broker, CallError, Request
from ocpp_gateway.transports.local import LocalTransport

__all__ = ["TransactionJournal", "build_app", "business_key", "main"]

log = logging.getLogger("ocpp_gateway.backend.example")


class _Call(Protocol):
    @property
    def charge_point_id(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...


def business_key(request: _Call) -> tuple[Any, ...] | None:
    """The idempotency key of a transaction-class message, or None for other messages.

    Args:
        request: the charge point's CALL (anything with `charge_point_id`, `action` and
            `payload`).

    Returns:
        A tuple identifying the business event, stable across redeliveries and retries.
    """
    p = request.payload
    cp = request.charge_point_id
    action = request.action
    if action == "StartTransaction":
        return (
            cp,
            action,
            p.get("connectorId"),
            p.get("idTag"),
            p.get("timestamp"),
            p.get("meterStart"),
        )
    if action == "StopTransaction":
        return (cp, action, p.get("transactionId"))
    if action == "MeterValues" and "transactionId" in p:
        values = p.get("meterValue") or [{}]
        first = values[0].get("timestamp") if isinstance(values[0], dict) else None
        return (cp, action, p.get("connectorId"), p.get("transactionId"), first)
    if action == "TransactionEvent":
        info = p.get("transactionInfo") or {}
        return (cp, action, info.get("transactionId"), p.get("seqNo"))
    if action == "SecurityEventNotification":
        return (cp, action, p.get("type"), p.get("timestamp"))
    return None


class TransactionJournal:
    """SQLite journal of transaction messages, one row per business key.

    Table `journal(key TEXT PRIMARY KEY, charge_point_id, action, unique_id, request,
    response, committed REAL)`; 1.6 transaction ids come from its rowid.

    Args:
        path: the SQLite file (shared by every instance of the service).
    """

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS journal (key TEXT PRIMARY KEY, charge_point_id TEXT, "
            "action TEXT, unique_id TEXT, request TEXT, response TEXT, committed REAL)"
        )

    def stored(self, key: str) -> dict[str, Any] | None:
        """Args:
            key: the business key.

        Returns:
            The answer stored for it, or None.
        """
        row = self.db.execute("SELECT response FROM journal WHERE key = ?", (key,)).fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    def commit(self, key: str, request: Request, response: dict[str, Any]) -> dict[str, Any]:
        """Record a new business event and its answer in one transaction.

        Args:
            key: the business key.
            request: the CALL.
            response: the answer (a 1.6 StartTransaction gets its transactionId here).

        Returns:
            The answer as stored (another instance may have committed it first).
        """
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT response FROM journal WHERE key = ?", (key,)).fetchone()
            if row is not None:
                db.execute("COMMIT")
                return dict(orjson.loads(row[0]))
            cursor = db.execute(
                "INSERT INTO journal VALUES (?, ?, ?, ?, ?, '', ?)",
                (
                    key,
                    request.charge_point_id,
                    request.action,
                    request.unique_id,
                    request.frame.decode(),
                    time.time(),
                ),
            )
            if request.action == "StartTransaction":
                response = {**response, "transactionId": cursor.lastrowid}
            db.execute(
                "UPDATE journal SET response = ? WHERE key = ?",
                (orjson.dumps(response).decode(), key),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return response


def build_app(
    broker: Broker,
    journal: TransactionJournal,
    stall: bool = False,
    seen: Callable[[Request], None] | None = None,
) -> BackendApp:
    """The example service.

    Args:
        broker: where to consume.
        journal: the transaction journal.
        stall: after committing a transaction message, hang instead of answering.
        seen: called with every request before it is handled (tests record them).

    Returns:
        The app with its handler.
    """
    app = BackendApp(broker)
    answers = LocalTransport("example")

    @app.fallback
    async def handle(request: Request) -> dict[str, Any]:
        if seen is not None:
            seen(request)
        key_parts = business_key(request)
        key = None if key_parts is None else orjson.dumps(key_parts).decode()
        if key is not None:
            stored = journal.stored(key)
            if stored is not None:
                return stored  # a redelivery or a retry: the same answer again
        response = answers.answer(request.ocpp_version, request.action, request.payload)
        if response is None:
            raise CallError("NotImplemented", f"{request.action} is not answered here")
        if key is not None:
            response = journal.commit(key, request, response)
            if stall:
                await asyncio.Event().wait()  # committed, never answered, never acked
        return response

    return app


async def main(argv: list[str] | None = None) -> None:
    """Run the service until SIGTERM / SIGINT.

    Args:
        argv: command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats", help="NATS server URL (nats://127.0.0.1:4222)")
    parser.add_argument("--redis", help="Redis URL (redis://127.0.0.1:6379/0)")
    parser.add_argument("--db", default="broker_backend.sqlite", help="SQLite journal file")
    parser.add_argument("--service", default="csms", help="durable consumer name")
    parser.add_argument("--ack-wait", type=float, default=30.0, help="redelivery after (s)")
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="NATS: replicas of the streams and buckets if this service creates them "
        "(the gateways' `replicas` option; 3 on a three-node cluster)",
    )
    parser.add_argument("--stall-after-commit", action="store_true", help="fault tests only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    broker: Broker
    if args.redis:
        from ocpp_gateway.backend.redis import RedisBroker

        broker = RedisBroker(args.redis, service=args.service, ack_wait=args.ack_wait)
    else:
        from ocpp_gateway.backend.nats import NatsBroker

        url = args.nats or "nats://127.0.0.1:4222"
        nats_broker = NatsBroker(url, service=args.service, ack_wait=args.ack_wait)
        # The layout's replicas, used if this service creates the streams and buckets first.
        nats_broker.options = dataclasses.replace(nats_broker.options, replicas=args.replicas)
        broker = nats_broker
    app = build_app(broker, TransactionJournal(args.db), stall=args.stall_after_commit)
    await app.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = asyncio.create_task(app.run())
    print("broker backend ready", flush=True)
    await stop.wait()
    await stop_tasks([runner])
    await app.stop()


if __name__ == "__main__":
    asyncio.run(main())

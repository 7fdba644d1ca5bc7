"""The broker transports on their own, on real servers: readiness follows the broker, links end
when it goes, the metrics collector, identity tokens, configuration, a command timing out."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from kit import WAIT, poll
from ocpp_gateway.backend import BackendApp, CommandStatus
from ocpp_gateway.config import load_config
from ocpp_gateway.errors import ConfigError, TransportUnavailable
from ocpp_gateway.transports import build_transports
from ocpp_gateway.transports.broker.contract import identity_token
from ocpp_gateway.transports.broker.metrics import BrokerCollector
from ocpp_gateway.transports.broker.nats import NatsOptions, NatsTransport
from ocpp_gateway.transports.broker.redis import RedisStreamsOptions, RedisStreamsTransport

from ._support import Broker, backend_broker, broker_gateway, broker_server


def _transport(kind: str, url: str) -> Any:
    if kind == "nats":
        return NatsTransport("default", NatsOptions(url=url, node_id="n1", node_ttl=1.5))
    return RedisStreamsTransport(
        "default", RedisStreamsOptions(url=url, node_id="n1", node_ttl=1.5)
    )


async def test_readiness_and_links_follow_the_broker(server: tuple[str, Broker]) -> None:
    kind, running = server
    transport = _transport(kind, running.url)
    try:
        await transport.start()
        assert transport.ready()
        link = await transport.open("CP-R", ("ocpp1.6",))
        assert link.epoch > 0
        await link.send(b'[2,"h1","Heartbeat",{}]')  # acknowledged by the broker
        receiver = asyncio.create_task(link.recv())
        running.stop()
        # The link ends (the relay then closes the charge point socket with 1013) ...
        assert await asyncio.wait_for(receiver, WAIT) is None
        assert link.end_reason == "lost"
        await poll(lambda: not transport.ready(), "not ready while the broker is away")
        # ... sends fail, and new charge points are refused (the handshake answers 503).
        with pytest.raises(TransportUnavailable):
            await link.send(b'[2,"h2","Heartbeat",{}]')
        with pytest.raises(TransportUnavailable):
            await transport.open("CP-R2", ("ocpp1.6",))
        running.start()
        await poll(transport.ready, "ready again once the broker is back")
        again = await transport.open("CP-R", ("ocpp1.6",))
        assert again.epoch > link.epoch
        await again.send(b'[2,"h3","Heartbeat",{}]')
        # A newer claim of the same identity (here: on the same node) ends the older link.
        newer = await transport.open("CP-R", ("ocpp1.6",))
        assert await asyncio.wait_for(again.recv(), WAIT) is None
        assert again.end_reason == "moved"
        await newer.close()
        assert newer.end_reason == "closed"
        await again.close()
        await link.close()
    finally:
        await transport.close()
    assert not transport.ready()


async def test_a_reconnect_storm_claims_every_charge_point(server: tuple[str, Broker]) -> None:
    """Hundreds of handshakes at once (a node's fleet moving over) all get their link: with
    Redis, claims beyond the connection pool wait for a connection instead of failing (a
    plain redis-py pool raised MaxConnectionsError past 100 and the charge points got 503)."""
    kind, running = server
    if kind == "nats":
        transport = _transport(kind, running.url)
    else:
        options = RedisStreamsOptions(url=running.url, node_id="n1", node_ttl=1.5, pool_size=4)
        transport = RedisStreamsTransport("default", options)
    try:
        await transport.start()
        ids = [f"CP-S{i:03d}" for i in range(300)]
        links = await asyncio.gather(*(transport.open(cp, ("ocpp1.6",)) for cp in ids))
        assert len({link.epoch for link in links}) == len(ids)
        assert all(link.epoch > 0 and not link.ended for link in links)
        await asyncio.gather(*(link.send(b'[2,"s1","Heartbeat",{}]') for link in links))
        await asyncio.gather(*(link.close() for link in links))
    finally:
        await transport.close()


async def test_collector_exports_the_transport_counters(server: tuple[str, Broker]) -> None:
    kind, running = server
    transport = _transport(kind, running.url)
    registry = CollectorRegistry()
    registry.register(BrokerCollector([transport]))
    try:
        link = await transport.open("CP-M", ("ocpp2.0.1",))
        await link.send(b'[2,"m1","Heartbeat",{}]')
        await link.send(b'[2,"m2","Heartbeat",{}]')

        def value(name: str, **labels: str) -> float | None:
            return registry.get_sample_value(name, {"transport": "default", **labels})

        assert value("ocpp_gateway_broker_connected") == 1.0
        assert value("ocpp_gateway_broker_links") == 1.0
        assert value("ocpp_gateway_broker_published_total") == 2.0
        assert value("ocpp_gateway_broker_publish_seconds_count") == 2.0
        assert (value("ocpp_gateway_broker_publish_seconds_sum") or 0) > 0
        assert value("ocpp_gateway_broker_publishing") == 0.0
        assert value("ocpp_gateway_broker_commands_total", status="offline") == 0.0
        await link.close()
        assert value("ocpp_gateway_broker_links") == 0.0
    finally:
        await transport.close()


async def test_a_command_the_charge_point_never_answers_times_out_and_frees_the_slot(
    server: tuple[str, Broker],
) -> None:
    from websockets.asyncio.client import connect

    kind, running = server
    app = BackendApp(backend_broker(kind, running.url))
    gateway_cm = broker_gateway(kind, running.url, options={"command_timeout": 0.5})
    async with gateway_cm as gateway:
        url = f"{gateway.url}/ocpp/CP-T"
        async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            first = await app.call("CP-T", "ClearCache", {}, timeout=WAIT, unique_id="t1")
            assert first.status is CommandStatus.TIMEOUT  # outcome unknown
            assert orjson.loads(await ws.recv())[1] == "t1"  # it did reach the charge point
            second = asyncio.create_task(
                app.call("CP-T", "ClearCache", {}, timeout=WAIT, unique_id="t2")
            )
            assert orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))[1] == "t2"
            await ws.send(orjson.dumps([3, "t2", {"status": "Accepted"}]).decode())
            # A late answer to t1 is dropped (its slot was freed), t2's answer is returned.
            result = await asyncio.wait_for(second, WAIT)
            assert result.status is CommandStatus.OK
            assert result.payload == {"status": "Accepted"}
    await app.stop()


def test_identity_tokens_keep_safe_names_and_escape_the_rest() -> None:
    assert identity_token("CP-01_a") == "CP-01_a"
    assert identity_token("cp.1") == "cp=2E1"
    assert identity_token("cp=2E1") == "cp=3D2E1"  # no collision with the escaped "cp.1"
    assert identity_token("ü *>") == "=C3=BC=20=2A=3E"


def test_upstream_type_selects_the_broker_and_its_options_are_checked() -> None:
    config = load_config(
        None,
        {},
        {
            "upstream.type": "nats",
            "upstream.url": "nats://127.0.0.1:4222",
            "upstream.options": {"command_queue": 4, "subject_prefix": "site1"},
            "node_id": "edge-7",
        },
    )
    transport: Any = build_transports(config.transport_options(), 1 << 20)["default"]
    assert isinstance(transport, NatsTransport)
    assert transport.options.command_queue == 4
    assert transport.options.subject_prefix == "site1"
    assert transport.node_id == "edge-7"
    redis_config = load_config(
        None,
        {},
        {"upstream.type": "redis_streams", "upstream.url": "redis://127.0.0.1:6379/0"},
    )
    built = build_transports(redis_config.transport_options(), 1 << 20)
    assert isinstance(built["default"], RedisStreamsTransport)
    with pytest.raises(ConfigError) as bad_key:
        load_config(
            None,
            {},
            {
                "upstream.type": "nats",
                "upstream.url": "nats://127.0.0.1:4222",
                "upstream.options": {"bogus": 1},
            },
        )
    assert bad_key.value.errors == ["upstream.options.bogus: unknown setting"]
    with pytest.raises(ConfigError) as bad_scheme:
        load_config(None, {}, {"upstream.type": "nats", "upstream.url": "ws://csms/ocpp"})
    assert "upstream.url: type 'nats' expects nats:// or tls://" in bad_scheme.value.errors[0]
    with pytest.raises(ConfigError) as named:
        load_config(
            None, {}, {"transports": {"billing": {"type": "redis_streams", "max_len": "x"}}}
        )
    assert named.value.errors == ["transports.billing.max_len: expected an integer, got 'x'"]


def test_the_receive_timestamp_is_rfc3339_utc_with_microseconds_and_now() -> None:
    from datetime import UTC, datetime

    from ocpp_gateway.transports.broker.contract import received_timestamp

    for _ in range(3):  # the second's text is cached: the first and later calls alike
        before = datetime.now(UTC)
        text = received_timestamp()
        after = datetime.now(UTC)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text), text
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        assert before.replace(microsecond=0) <= stamp <= after


async def test_a_full_nats_stream_refuses_the_frame_at_once() -> None:
    """JetStream answers a publish to a full stream (DiscardNew) with an error in the PubAck:
    the frame is not handed over, the link says so at once (the relay then closes the charge
    point socket with 1013); it does not wait out publish_timeout. (A NATS setting: Redis
    trims with max_len instead.)"""
    running = broker_server("nats")
    options = NatsOptions(url=running.url, node_id="n1", max_bytes=4096, publish_timeout=20.0)
    transport = NatsTransport("default", options)
    try:
        await transport.start()
        link = await transport.open("CP-FULL", ("ocpp1.6",))
        started = asyncio.get_running_loop().time()
        with pytest.raises(TransportUnavailable, match="refused"):
            for i in range(100):
                await link.send(b'[2,"f%d","Heartbeat",{}]' % i + b" " * 200)
        assert asyncio.get_running_loop().time() - started < options.publish_timeout
        assert transport.stats.publish_failures == 1
    finally:
        await transport.close()
        running.close()


def _node(kind: str, url: str, node_id: str) -> Any:
    if kind == "nats":
        return NatsTransport("default", NatsOptions(url=url, node_id=node_id, node_ttl=1.5))
    return RedisStreamsTransport(
        "default", RedisStreamsOptions(url=url, node_id=node_id, node_ttl=1.5)
    )


async def test_the_holding_node_is_asked_even_without_a_ping(server: tuple[str, Broker]) -> None:
    """With the "refuse" rule (no ping), an ownership entry that outlived its connection (the
    link was lost while the broker was away, so the entry was never deleted) must not lock the
    charge point out of other nodes: the holder answers from its links."""
    kind, running = server
    a, b = _node(kind, running.url, "node-a"), _node(kind, running.url, "node-b")
    try:
        await a.start()
        await b.start()
        held = await a.open("CP-H", ("ocpp1.6",))
        assert await b.held_elsewhere("CP-H", False, 3.0) == "live"
        assert await b.held_elsewhere("CP-H", True, 3.0) == "live"  # assume_alive: no server
        stale = await a.open("CP-STALE", ("ocpp1.6",))
        a._links.forget(stale)  # as a link lost with the broker: its entry stays behind
        stale.lose("lost")
        assert await b.held_elsewhere("CP-STALE", False, 3.0) == "free"
        assert await b.held_elsewhere("CP-STALE", True, 3.0) == "free"
        await held.close()
        assert await b.held_elsewhere("CP-H", False, 3.0) == "free"  # released: no entry
    finally:
        await a.close()
        await b.close()


async def test_frames_published_in_one_loop_iteration_are_each_acknowledged(
    server: tuple[str, Broker],
) -> None:
    # Many charge points publish in the same loop iteration: on Redis their XADDs go out in
    # one write, on NATS their PubAcks come back on one subscription. Each frame is done only
    # with its own answer: on Redis, the general stream made unwritable (a plain key there)
    # fails exactly its frames, while the transaction frames of the same write are stored.
    kind, running = server
    transport = _transport(kind, running.url)
    try:
        await transport.start()
        links = [await transport.open(f"CP-B{n}", ("ocpp1.6",)) for n in range(20)]
        if kind == "redis_streams":
            import redis.asyncio as aioredis

            raw = aioredis.Redis.from_url(running.url)
            await raw.set("ocpp:in:gen", "not a stream")
        sends = []
        for n, link in enumerate(links):
            if n % 2:
                frame = b'[2,"h%d","Heartbeat",{}]' % n
            else:
                frame = b'[2,"s%d","StartTransaction",{"connectorId":1}]' % n
            sends.append(link.send(frame))
        outcomes = await asyncio.wait_for(asyncio.gather(*sends, return_exceptions=True), WAIT)
        failed = [n for n, outcome in enumerate(outcomes) if outcome is not None]
        if kind == "redis_streams":
            assert failed == list(range(1, 20, 2))
            assert all(isinstance(outcomes[n], TransportUnavailable) for n in failed)
            entries: Any = await raw.xrange("ocpp:in:tx")
            assert [fields[b"Ocpp-Cp"] for _, fields in entries] == [
                b"CP-B%d" % n for n in range(0, 20, 2)
            ]
            await raw.aclose()
        else:
            assert failed == []
            stats = transport.stats
            assert stats.published == 20 and stats.publish_failures == 0
    finally:
        await transport.close()


async def test_redis_frames_wait_for_replicas_the_server_does_not_have() -> None:
    # wait_replicas = 1 on a server without replicas: WAIT (sent after each write of XADDs)
    # never confirms, so no frame is acknowledged; it fails once publish_timeout is over.
    running = broker_server("redis_streams", False)
    options = RedisStreamsOptions(
        url=running.url, node_id="n1", wait_replicas=1, publish_timeout=0.5
    )
    transport = RedisStreamsTransport("default", options)
    try:
        await transport.start()
        link = await transport.open("CP-W", ("ocpp1.6",))
        with pytest.raises(TransportUnavailable):
            await link.send(b'[2,"w1","Heartbeat",{}]')
        assert transport.stats.published == 0 and transport.stats.publish_failures == 1
    finally:
        await transport.close()
        running.close()

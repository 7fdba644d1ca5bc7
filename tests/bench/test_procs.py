"""The broker launcher shared by the demo, the benchmarks and the tests
(`ocpp_gateway.bench.procs.BrokerServer`): a real nats-server or redis-server on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kit import missing_tool
from ocpp_gateway.bench.procs import BROKER_KINDS, BrokerServer


def _server(kind: str, durable: bool, log: Path) -> BrokerServer:
    try:
        return BrokerServer(kind, durable, log)
    except FileNotFoundError as exc:
        missing_tool(str(exc))


async def _accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def _write(kind: str, url: str) -> None:
    if kind == "nats":
        import nats

        client = await nats.connect(url)
        try:
            js = client.jetstream()
            await js.add_stream(name="KIT", subjects=["kit.>"])
            await js.publish("kit.one", b"kept")
        finally:
            await client.close()
    else:
        import redis.asyncio

        redis_client = redis.asyncio.Redis.from_url(url)
        try:
            await redis_client.xadd("kit", {"value": "kept"})
        finally:
            await redis_client.aclose()


async def _read(kind: str, url: str) -> bytes:
    if kind == "nats":
        import nats

        client = await nats.connect(url)
        try:
            message = await client.jetstream().get_msg("KIT", 1)
            return message.data or b""
        finally:
            await client.close()
    import redis.asyncio

    redis_client = redis.asyncio.Redis.from_url(url)
    try:
        entries = await redis_client.xrange("kit")
        assert entries is not None
        [(_, fields)] = entries
        assert fields is not None
        value = fields[b"value"]
        assert isinstance(value, bytes)
        return value
    finally:
        await redis_client.aclose()


@pytest.mark.parametrize("kind", BROKER_KINDS)
async def test_a_killed_broker_starts_again_on_its_port_with_what_it_acknowledged(
    kind: str, tmp_path: Path
) -> None:
    log = tmp_path / "broker.log"
    server = _server(kind, durable=True, log=log)
    async with server:
        assert server.url.startswith(("nats://127.0.0.1:", "redis://127.0.0.1:"))
        assert await _accepts(server.port)
        await _write(kind, server.url)
        port = server.port
        server.stop()
        assert server.proc is None
        assert not await _accepts(port)
        await asyncio.to_thread(server.start)
        assert server.port == port
        assert await _read(kind, server.url) == b"kept"
        with pytest.raises(RuntimeError, match="already runs"):
            server.start()
    assert server.proc is None
    assert not await asyncio.to_thread(Path(server.store).exists)  # the store is removed
    assert (await asyncio.to_thread(log.stat)).st_size > 0  # the server's output went there


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown broker kind 'kafka'"):
        BrokerServer("kafka")


def test_a_missing_binary_is_a_file_not_found_error_naming_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FileNotFoundError, match=r"apt-get install redis-server"):
        BrokerServer("redis_streams")

"""The security layer on a real loopback aiohttp server: profiles 1-3, TLS rules, limits.

A minimal WebSocket endpoint calls the layer exactly as the gateway server does (check before
the upgrade, answer refusals with the decision's status, release at the end), so these tests pin
the seam itself; tests/security/test_gateway.py repeats the essentials against the real gateway.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import ssl
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from ocpp_gateway.security import SecurityConfig, SecurityLayer, build_security

from .conftest import AUTH_KEY_HEX, PASSWORD, Pki, client_ssl_context
from .test_auth import basic

# How a refused TLS handshake reaches a client: TLS 1.3 reports a refused client certificate
# only after the client finished, so it shows up as a connection closed before the HTTP answer.
TLS_REFUSED = (ssl.SSLError, ConnectionError, InvalidMessage)

Serve = Callable[..., Awaitable[tuple[str, SecurityLayer]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []
    layers: list[SecurityLayer] = []

    async def start(**fields: Any) -> tuple[str, SecurityLayer]:
        layer = build_security(SecurityConfig(**fields), None)
        layers.append(layer)

        async def handler(request: web.Request) -> web.StreamResponse:
            cp_id = request.match_info["cp"]
            decision = await layer.check_handshake(request, cp_id)
            if not decision.ok:
                return web.Response(status=decision.status, text="refused")
            try:
                ws = web.WebSocketResponse(protocols=("ocpp1.6",))
                await ws.prepare(request)
                await ws.send_str(json.dumps(dataclasses.asdict(decision)))
                async for _ in ws:
                    pass
                return ws
            finally:
                layer.release(request)

        app = web.Application()
        app.router.add_get("/ocpp/{cp}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        ctx = layer.ssl_context()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        port = runner.addresses[0][1]
        return f"{'wss' if ctx else 'ws'}://127.0.0.1:{port}/ocpp", layer

    yield start
    for runner in runners:
        await runner.cleanup()
    for layer in layers:
        layer.close()


async def handshake(
    url: str,
    cp_id: str,
    *,
    auth: str | None = None,
    ssl_ctx: ssl.SSLContext | None = None,
) -> dict[str, Any] | int:
    """Open one connection: the decision dict the endpoint sent, or the refusal's HTTP status."""
    headers = {"Authorization": auth} if auth else {}
    try:
        async with connect(
            f"{url}/{cp_id}",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=headers,
            ssl=ssl_ctx,
            open_timeout=10,
        ) as ws:
            decision: dict[str, Any] = json.loads(await ws.recv())
            return decision
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_no_security_configured_lets_everyone_in(serve: Serve) -> None:
    url, _ = await serve()
    decision = await handshake(url, "CP-1")
    assert decision == {
        "ok": True,
        "status": 101,
        "reason": "ok",
        "authenticated": False,
        "profile": 0,
    }


async def test_profile1_basic_auth(serve: Serve, credentials_file: Path) -> None:
    url, layer = await serve(credentials_file=str(credentials_file))
    ok = await handshake(url, "CP-1", auth=basic("CP-1", PASSWORD))
    assert isinstance(ok, dict)
    assert (ok["authenticated"], ok["profile"]) == (True, 1)
    assert await handshake(url, "CP-1", auth=basic("CP-1", "wrong-password-123")) == 401
    assert await handshake(url, "CP-404", auth=basic("CP-404", PASSWORD)) == 401
    assert await handshake(url, "CP-1", auth=basic("CP-2", PASSWORD)) == 401
    assert await handshake(url, "CP-1") == 401
    # 1.6 AuthorizationKey: handled as given (40 hex characters here).
    assert isinstance(await handshake(url, "CP-16", auth=basic("CP-16", AUTH_KEY_HEX)), dict)
    assert layer.connections == 0


async def test_refusals_are_identical_for_unknown_ids_and_wrong_passwords(
    serve: Serve, credentials_file: Path
) -> None:
    url, _ = await serve(credentials_file=str(credentials_file))
    bodies = []
    for cp_id, password in (("CP-1", "wrong-password-123"), ("CP-404", PASSWORD)):
        try:
            async with connect(
                f"{url}/{cp_id}", additional_headers={"Authorization": basic(cp_id, password)}
            ):
                pytest.fail("handshake should be refused")
        except InvalidStatus as exc:
            bodies.append((exc.response.status_code, exc.response.body))
    assert bodies[0] == bodies[1]
    assert bodies[0][0] == 401


async def test_profile2_tls_and_password(serve: Serve, pki: Pki, credentials_file: Path) -> None:
    url, layer = await serve(
        credentials_file=str(credentials_file),
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
    )
    assert url.startswith("wss://")
    ctx = client_ssl_context(pki)
    decision = await handshake(url, "CP-1", auth=basic("CP-1", PASSWORD), ssl_ctx=ctx)
    assert isinstance(decision, dict)
    assert (decision["authenticated"], decision["profile"]) == (True, 2)
    assert await handshake(url, "CP-1", auth=basic("CP-1", "nope-nope-nope-1"), ssl_ctx=ctx) == 401
    server_ctx = layer.ssl_context()
    assert server_ctx is not None
    assert server_ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server_ctx.maximum_version == ssl.TLSVersion.TLSv1_3


@pytest.mark.parametrize(
    ("version", "ciphers", "accepted"),
    [
        (ssl.TLSVersion.TLSv1_3, None, True),
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256", True),
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-GCM-SHA384", True),
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-CHACHA20-POLY1305", False),
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA256", False),
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-SHA", False),
    ],
)
async def test_tls_versions_and_suites(
    serve: Serve, pki: Pki, version: ssl.TLSVersion, ciphers: str | None, accepted: bool
) -> None:
    url, _ = await serve(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key))
    ctx = client_ssl_context(pki, version=version, ciphers=ciphers)
    if accepted:
        assert isinstance(await handshake(url, "CP-1", ssl_ctx=ctx), dict)
    else:
        with pytest.raises(TLS_REFUSED):
            await handshake(url, "CP-1", ssl_ctx=ctx)


async def test_tls11_is_refused(serve: Serve, pki: Pki) -> None:
    url, _ = await serve(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key))
    ctx = client_ssl_context(pki)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(TLS_REFUSED):
        await handshake(url, "CP-1", ssl_ctx=ctx)


@pytest.mark.parametrize("allow_rsa", [False, True])
async def test_rsa_server_key_and_static_rsa_suites(
    serve: Serve, pki: Pki, allow_rsa: bool
) -> None:
    url, _ = await serve(
        tls_cert=str(pki.rsa_server_cert),
        tls_key=str(pki.rsa_server_key),
        tls_allow_rsa_key_exchange=allow_rsa,
    )
    ecdhe = client_ssl_context(
        pki, version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES128-GCM-SHA256"
    )
    assert isinstance(await handshake(url, "CP-1", ssl_ctx=ecdhe), dict)
    static = client_ssl_context(pki, version=ssl.TLSVersion.TLSv1_2, ciphers="AES128-GCM-SHA256")
    if allow_rsa:
        assert isinstance(await handshake(url, "CP-1", ssl_ctx=static), dict)
    else:
        with pytest.raises(TLS_REFUSED):
            await handshake(url, "CP-1", ssl_ctx=static)


async def test_profile3_client_certificates(serve: Serve, pki: Pki) -> None:
    url, _ = await serve(
        tls_cert=str(pki.server_cert), tls_key=str(pki.server_key), client_ca=str(pki.ca_cert)
    )
    cert = pki.client("CP-3")
    decision = await handshake(url, "CP-3", ssl_ctx=client_ssl_context(pki, cert))
    assert isinstance(decision, dict)
    assert (decision["authenticated"], decision["profile"]) == (True, 3)
    # The identity checked at TLS is the one in the path: another id with this cert is refused.
    assert await handshake(url, "CP-4", ssl_ctx=client_ssl_context(pki, cert)) == 401
    # A password does not replace the certificate.
    with pytest.raises(TLS_REFUSED):
        await handshake(url, "CP-3", auth=basic("CP-3", PASSWORD), ssl_ctx=client_ssl_context(pki))
    # A certificate from another CA fails the TLS handshake.
    with pytest.raises(TLS_REFUSED):
        await handshake(url, "CP-3", ssl_ctx=client_ssl_context(pki, pki.other_ca_client("CP-3")))


async def test_profile3_identity_field_is_configurable(serve: Serve, pki: Pki) -> None:
    url, _ = await serve(
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        client_ca=str(pki.ca_cert),
        client_identity_field="serialNumber",
    )
    cert = pki.client("some-common-name", serial="CP-SN-7")
    assert isinstance(await handshake(url, "CP-SN-7", ssl_ctx=client_ssl_context(pki, cert)), dict)
    assert await handshake(url, "some-common-name", ssl_ctx=client_ssl_context(pki, cert)) == 401


async def test_mixed_fleet_and_pinned_profile3(
    serve: Serve, pki: Pki, credentials_file: Path
) -> None:
    """With both a CA and passwords, a certificate is optional, except for pinned ids."""
    url, _ = await serve(
        credentials_file=str(credentials_file),
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        client_ca=str(pki.ca_cert),
        pinned_profiles={"CP-2": 3},
    )
    plain = client_ssl_context(pki)
    one = await handshake(url, "CP-1", auth=basic("CP-1", PASSWORD), ssl_ctx=plain)
    assert isinstance(one, dict)
    assert one["profile"] == 2
    # CP-2 has a valid password but is pinned to profile 3: the password is not enough.
    assert await handshake(url, "CP-2", auth=basic("CP-2", PASSWORD), ssl_ctx=plain) == 401
    with_cert = client_ssl_context(pki, pki.client("CP-2"))
    two = await handshake(url, "CP-2", ssl_ctx=with_cert)
    assert isinstance(two, dict)
    assert two["profile"] == 3


async def test_failed_auth_is_throttled_but_cached_successes_pass(
    serve: Serve, credentials_file: Path
) -> None:
    url, _ = await serve(credentials_file=str(credentials_file), auth_failures_per_minute=3)
    assert isinstance(await handshake(url, "CP-1", auth=basic("CP-1", PASSWORD)), dict)
    for _ in range(3):
        assert await handshake(url, "CP-1", auth=basic("CP-1", "guess-guess-guess")) == 401
    assert await handshake(url, "CP-1", auth=basic("CP-1", "guess-guess-guess")) == 429
    # Same source address: other ids are throttled too...
    assert await handshake(url, "CP-2", auth=basic("CP-2", PASSWORD)) == 429
    # ...but the password verified a moment ago still gets in without hashing.
    assert isinstance(await handshake(url, "CP-1", auth=basic("CP-1", PASSWORD)), dict)


async def test_connection_limits_are_released(serve: Serve) -> None:
    url, layer = await serve(max_connections_per_ip=2)
    async with connect(f"{url}/A"), connect(f"{url}/B"):
        assert layer.connections == 2
        assert await handshake(url, "C") == 429
    # Closing runs the endpoint's release; wait for it through a fresh handshake that succeeds.
    assert isinstance(await handshake(url, "C"), dict)


async def test_total_connection_limit(serve: Serve) -> None:
    url, _ = await serve(max_connections=1)
    async with connect(f"{url}/A"):
        assert await handshake(url, "B") == 503


async def test_inconsistent_settings_are_refused(pki: Pki, credentials_file: Path) -> None:
    bad = [
        SecurityConfig(tls_cert=str(pki.server_cert)),
        SecurityConfig(client_ca=str(pki.ca_cert)),
        SecurityConfig(pinned_profiles={"CP-1": 3}),
        SecurityConfig(pinned_profiles={"CP-1": 2}, credentials_file=str(credentials_file)),
        SecurityConfig(pinned_profiles={"CP-1": 7}),
        SecurityConfig(max_message_bytes=0),
    ]
    for cfg in bad:
        with pytest.raises(ValueError):
            build_security(cfg, None)


async def test_secrets_stay_out_of_logs(
    serve: Serve, credentials_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url, _ = await serve(credentials_file=str(credentials_file))
    await handshake(url, "CP-1", auth=basic("CP-1", PASSWORD))
    await handshake(url, "CP-1", auth=basic("CP-1", PASSWORD + "-wrong"))
    await handshake(url, "CP-404", auth=basic("CP-404", PASSWORD))
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets"))
    assert "handshake refused" in text
    assert PASSWORD not in text
    assert basic("CP-1", PASSWORD).split()[1] not in text

"""Basic authentication: header parsing, failure throttling, the verifier and its cache."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import pytest

from ocpp_gateway.security.auth import (
    BasicAuthenticator,
    CredentialsError,
    FailureThrottle,
    load_credentials,
    parse_basic_authorization,
)
from ocpp_gateway.security.passwords import hash_password

from .conftest import AUTH_KEY_HEX, PASSWORD, TEST_COST


def basic(user: str | bytes, password: str | bytes) -> str:
    u = user.encode() if isinstance(user, str) else user
    p = password.encode() if isinstance(password, str) else password
    return "Basic " + base64.b64encode(u + b":" + p).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic("CP-1", "pw:with:colons"), ("CP-1", b"pw:with:colons")),
        ("basic " + base64.b64encode(b"CP-1:").decode(), ("CP-1", b"")),
        (basic("CP-1", b"\x00\xff\x10"), ("CP-1", b"\x00\xff\x10")),
        (None, None),
        ("", None),
        ("Bearer abc", None),
        ("Basic", None),
        ("Basic !!!notbase64", None),
        ("Basic " + base64.b64encode(b"no-colon").decode(), None),
        ("Basic " + base64.b64encode(b"\xff\xfe:pw").decode(), None),
        ("Basic " + "A" * 2000, None),
    ],
)
def test_parse_basic_authorization(header: str | None, expected: object) -> None:
    assert parse_basic_authorization(header) == expected


def test_throttle_blocks_after_budget_and_recovers() -> None:
    throttle = FailureThrottle(per_minute=3)
    for _ in range(3):
        assert not throttle.blocked("k", 100.0)
        throttle.record_failure("k", 100.0)
    assert throttle.blocked("k", 100.0)
    assert not throttle.blocked("other", 100.0)
    assert not throttle.blocked("k", 120.0)  # 20 s later one attempt (3 per minute) is back


def test_throttle_forgets_oldest_keys() -> None:
    throttle = FailureThrottle(per_minute=1, max_keys=100)
    for i in range(1000):
        throttle.record_failure(f"id-{i}", 1.0)
    assert len(throttle) == 100
    assert throttle.blocked("id-999", 1.0)


def test_throttle_disabled() -> None:
    throttle = FailureThrottle(per_minute=0)
    throttle.record_failure("k", 1.0)
    assert not throttle.blocked("k", 1.0)


def test_load_credentials_errors_never_show_hashes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('"CP-1" = "$scrypt$ln=14,r=8,p=1$SECRETSALT"\n')
    with pytest.raises(CredentialsError) as info:
        load_credentials(str(bad))
    assert "SECRETSALT" not in str(info.value)
    assert "CP-1" in str(info.value)
    (tmp_path / "num.toml").write_text('"CP-1" = 5\n')
    with pytest.raises(CredentialsError):
        load_credentials(str(tmp_path / "num.toml"))
    (tmp_path / "syntax.toml").write_text("CP-1 = \n")
    with pytest.raises(CredentialsError):
        load_credentials(str(tmp_path / "syntax.toml"))
    with pytest.raises(CredentialsError):
        load_credentials(str(tmp_path / "missing.toml"))


async def test_authenticator_outcomes(credentials_file: Path) -> None:
    auth = BasicAuthenticator(str(credentials_file), cache_seconds=0)
    try:
        assert (await auth.check("CP-1", basic("CP-1", PASSWORD))).outcome == "ok"
        assert (await auth.check("CP-1", basic("CP-1", PASSWORD + "!"))).outcome == (
            "bad_credentials"
        )
        assert (await auth.check("CP-404", basic("CP-404", PASSWORD))).outcome == (
            "bad_credentials"
        )
        assert (await auth.check("CP-1", basic("CP-2", PASSWORD))).outcome == "username_mismatch"
        assert (await auth.check("CP-1", None)).outcome == "missing"
        assert (await auth.check("CP-1", "Basic ???")).outcome == "malformed"
        assert (await auth.check("CP-16", basic("CP-16", AUTH_KEY_HEX))).ok
        assert not (await auth.check("CP-16", basic("CP-16", bytes.fromhex(AUTH_KEY_HEX)))).ok
        assert (await auth.check("CP-raw", basic("CP-raw", bytes.fromhex(AUTH_KEY_HEX)))).ok
    finally:
        auth.close()


async def test_cache_remembers_successes_only(credentials_file: Path) -> None:
    auth = BasicAuthenticator(str(credentials_file), cache_seconds=60)
    try:
        assert not auth.cached("CP-1", PASSWORD.encode())
        assert (await auth.check("CP-1", basic("CP-1", PASSWORD))).ok
        assert auth.cached("CP-1", PASSWORD.encode())
        assert not auth.cached("CP-1", b"another password")
        assert not auth.cached("CP-2", PASSWORD.encode())
        assert not (await auth.check("CP-1", basic("CP-1", "wrong wrong wrong"))).ok
        assert not auth.cached("CP-1", b"wrong wrong wrong")
    finally:
        auth.close()


async def test_unknown_ids_are_hashed_like_known_ones(credentials_file: Path) -> None:
    """The dummy hash of unknown ids uses the cost of the stored hashes (same timing class)."""
    auth = BasicAuthenticator(str(credentials_file))
    try:
        assert auth._dummy.startswith(f"$scrypt$ln={TEST_COST},")
    finally:
        auth.close()


async def test_reload_on_change_and_cache_follows_the_stored_hash(tmp_path: Path) -> None:
    path = tmp_path / "creds.toml"
    path.write_text(f'"CP-1" = "{hash_password(PASSWORD, log2_n=TEST_COST)}"\n')
    auth = BasicAuthenticator(str(path), cache_seconds=60)
    try:
        assert (await auth.check("CP-1", basic("CP-1", PASSWORD))).ok
        path.write_text(f'"CP-1" = "{hash_password("a brand new password", log2_n=TEST_COST)}"\n')
        stat = path.stat()
        os.utime(path, (stat.st_atime, stat.st_mtime + 10))
        auth._checked_at -= 5  # let the next check look at the file again
        assert not (await auth.check("CP-1", basic("CP-1", PASSWORD))).ok
        assert (await auth.check("CP-1", basic("CP-1", "a brand new password"))).ok
        # A broken edit keeps the previous credentials.
        path.write_text("not toml = = =\n")
        os.utime(path, (stat.st_atime, stat.st_mtime + 20))
        auth._checked_at -= 5
        assert (await auth.check("CP-1", basic("CP-1", "a brand new password"))).ok
    finally:
        auth.close()


async def test_busy_when_too_many_verifications_wait(credentials_file: Path) -> None:
    auth = BasicAuthenticator(str(credentials_file), max_pending=1, cache_seconds=0)
    try:
        results = await asyncio.gather(
            *(auth.check("CP-1", basic("CP-1", PASSWORD)) for _ in range(3))
        )
        outcomes = sorted(r.outcome for r in results)
        assert outcomes == ["busy", "busy", "ok"]
    finally:
        auth.close()

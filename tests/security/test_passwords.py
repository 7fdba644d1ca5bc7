"""Password hashes: the encoded forms, verification and the `hash-password` command."""

from __future__ import annotations

import base64
import hashlib
import io
import sys

import pytest

from ocpp_gateway.security.passwords import (
    PasswordFormatError,
    check_encoded,
    hash_password,
    main,
    verify_password,
)

from .conftest import AUTH_KEY_HEX, PASSWORD, TEST_COST


def test_scrypt_round_trip_and_self_describing_form() -> None:
    encoded = hash_password(PASSWORD, log2_n=TEST_COST)
    assert encoded.startswith(f"$scrypt$ln={TEST_COST},r=8,p=1$")
    assert PASSWORD not in encoded
    assert verify_password(PASSWORD, encoded)
    assert not verify_password(PASSWORD + "x", encoded)
    assert not verify_password(PASSWORD[:-1], encoded)


def test_salts_differ() -> None:
    assert hash_password(PASSWORD, log2_n=TEST_COST) != hash_password(PASSWORD, log2_n=TEST_COST)


def test_bytes_are_taken_as_given() -> None:
    """A 1.6 AuthorizationKey sent as 40 hex characters is not the same as its 20 raw bytes."""
    as_text = hash_password(AUTH_KEY_HEX, log2_n=TEST_COST)
    raw = bytes.fromhex(AUTH_KEY_HEX)
    assert verify_password(AUTH_KEY_HEX.encode(), as_text)
    assert not verify_password(raw, as_text)
    assert not verify_password(AUTH_KEY_HEX.upper(), as_text)
    assert verify_password(raw, hash_password(raw, log2_n=TEST_COST))


def test_pbkdf2_form_is_accepted() -> None:
    salt = b"0123456789abcdef"
    key = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt, 1000)

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode().rstrip("=")

    encoded = f"$pbkdf2-sha256$i=1000${b64(salt)}${b64(key)}"
    check_encoded(encoded)
    assert verify_password(PASSWORD, encoded)
    assert not verify_password("wrong password here", encoded)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "plain-text-password",
        "$scrypt$ln=14,r=8,p=1$c2FsdHNhbHQ",
        "$md5$x=1$c2FsdHNhbHQ$c2FsdHNhbHRzYWx0c2FsdA",
        "$scrypt$ln=40,r=8,p=1$c2FsdHNhbHQ$c2FsdHNhbHRzYWx0c2FsdA",
        "$scrypt$ln=14,r=8$c2FsdHNhbHQ$c2FsdHNhbHRzYWx0c2FsdA",
        "$scrypt$ln=14,r=8,p=1$!!!$c2FsdHNhbHRzYWx0c2FsdA",
        "$scrypt$ln=14,r=8,p=1$c2FsdA$c2FsdHNhbHRzYWx0c2FsdA",
        "$pbkdf2-sha256$i=0$c2FsdHNhbHQ$c2FsdHNhbHRzYWx0c2FsdA",
        "$pbkdf2-sha256$i=99999999999$c2FsdHNhbHQ$c2FsdHNhbHRzYWx0c2FsdA",
    ],
)
def test_malformed_hashes_are_refused(encoded: str) -> None:
    with pytest.raises(PasswordFormatError):
        check_encoded(encoded)
    with pytest.raises(PasswordFormatError):
        verify_password(PASSWORD, encoded)


def _run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], data: bytes, *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_hash_password_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run_main(monkeypatch, capsys, PASSWORD.encode() + b"\n", "--cost", "8")
    assert code == 0
    assert PASSWORD not in out + err
    assert verify_password(PASSWORD, out.strip())


def test_hash_password_command_hex(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run_main(
        monkeypatch, capsys, AUTH_KEY_HEX.encode() + b"\r\n", "--hex", "--cost", "8"
    )
    assert code == 0
    assert verify_password(bytes.fromhex(AUTH_KEY_HEX), out.strip())


@pytest.mark.parametrize(
    ("data", "argv"),
    [
        (b"short\n", ()),
        (b"x" * 41 + b"\n", ()),
        (b"\n", ("--any-length",)),
        (b"zz" * 20 + b"\n", ("--hex",)),
        (b"\xff\xfe" * 10 + b"\n", ()),
        (PASSWORD.encode(), ("--cost", "99")),
    ],
)
def test_hash_password_command_refusals(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    data: bytes,
    argv: tuple[str, ...],
) -> None:
    code, out, err = _run_main(monkeypatch, capsys, data, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("error:")


def test_hash_password_any_length(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run_main(monkeypatch, capsys, b"short\n", "--any-length", "--cost", "8")
    assert code == 0
    assert verify_password("short", out.strip())

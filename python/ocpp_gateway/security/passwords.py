"""Salted slow password hashes for charge point Basic auth, and the `hash-password` command.

Encoded forms (self-describing, so costs can change without breaking stored hashes):

    $scrypt$ln=14,r=8,p=1$<salt, base64>$<key, base64>
    $pbkdf2-sha256$i=600000$<salt, base64>$<key, base64>

Base64 is standard alphabet without padding. Passwords are handled as the bytes the charge point
sends: the gateway never trims, case-folds or hex-decodes them. An OCPP 1.6 AuthorizationKey is
configured as 40 hex characters (20 bytes); most chargers send those 40 characters as the
password, some send the 20 raw bytes: `hash-password --hex` hashes the decoded bytes for the
latter.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import os
import sys
from collections.abc import Sequence

__all__ = [
    "DEFAULT_SCRYPT_LOG2_N",
    "MAX_PASSWORD_CHARS",
    "MIN_PASSWORD_CHARS",
    "PasswordFormatError",
    "check_encoded",
    "hash_password",
    "main",
    "verify_password",
]

DEFAULT_SCRYPT_LOG2_N = 14
"""scrypt cost: N = 2**14, r = 8 (16 MiB, about 40 ms on one core of the reference machine)."""
MIN_PASSWORD_CHARS = 16
"""Shortest OCPP 2.x BasicAuthPassword; an OCPP 1.6 AuthorizationKey is 40 hex characters."""
MAX_PASSWORD_CHARS = 40
"""Longest OCPP 2.x BasicAuthPassword, and the length of a 1.6 AuthorizationKey in hex."""

_SALT_BYTES = 16
_KEY_BYTES = 32
_MAX_LOG2_N = 20  # bounds the work a (possibly tampered) credentials file can ask for
_MAX_PBKDF2_ITERATIONS = 10_000_000


class PasswordFormatError(ValueError):
    """An encoded hash is not in one of the supported forms or asks for absurd costs."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PasswordFormatError("bad base64 in password hash") from exc


def hash_password(
    password: bytes | str,
    *,
    log2_n: int = DEFAULT_SCRYPT_LOG2_N,
    salt: bytes | None = None,
) -> str:
    """Hash a password with scrypt and a fresh random salt.

    Args:
        password: the password as the charge point sends it (str is encoded as UTF-8).
        log2_n: scrypt cost parameter, log2 of N (r = 8, p = 1).
        salt: a salt to use instead of a random one (tests only).

    Returns:
        The encoded hash, `$scrypt$ln=..,r=8,p=1$salt$key`.

    Raises:
        ValueError: `log2_n` outside 1..20.
    """
    if not 1 <= log2_n <= _MAX_LOG2_N:
        raise ValueError(f"log2_n must be within 1..{_MAX_LOG2_N}")
    secret = password.encode("utf-8") if isinstance(password, str) else password
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    key = _scrypt(secret, salt, log2_n, 8, 1)
    return f"$scrypt$ln={log2_n},r=8,p=1${_b64(salt)}${_b64(key)}"


def _scrypt(secret: bytes, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(
        secret, salt=salt, n=n, r=r, p=p, maxmem=256 * n * r * p + (1 << 20), dklen=_KEY_BYTES
    )


def _params(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not value.isdigit() or len(value) > 9:
            raise PasswordFormatError("bad parameters in password hash")
        out[name] = int(value)
    return out


def check_encoded(encoded: str) -> None:
    """Check that an encoded hash is well formed, without verifying any password.

    Args:
        encoded: a stored hash.

    Raises:
        PasswordFormatError: unknown scheme, bad parameters or bad base64.
    """
    _derive_from(encoded, None)


def _derive_from(encoded: str, secret: bytes | None) -> tuple[bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "":
        raise PasswordFormatError("password hash must look like $scheme$params$salt$key")
    _, scheme, params_text, salt_text, key_text = parts
    params = _params(params_text)
    salt, expected = _unb64(salt_text), _unb64(key_text)
    if len(salt) < 8 or len(expected) < 16:
        raise PasswordFormatError("salt or key too short in password hash")
    if scheme == "scrypt":
        if set(params) != {"ln", "r", "p"}:
            raise PasswordFormatError("scrypt hash needs ln, r and p")
        ln, r, p = params["ln"], params["r"], params["p"]
        if not (1 <= ln <= _MAX_LOG2_N and 1 <= r <= 32 and 1 <= p <= 16):
            raise PasswordFormatError("scrypt parameters out of range")
        if secret is None:
            return expected, expected
        n = 1 << ln
        derived = hashlib.scrypt(
            secret,
            salt=salt,
            n=n,
            r=r,
            p=p,
            maxmem=256 * n * r * p + (1 << 20),
            dklen=len(expected),
        )
        return derived, expected
    if scheme == "pbkdf2-sha256":
        if set(params) != {"i"} or not 1 <= params["i"] <= _MAX_PBKDF2_ITERATIONS:
            raise PasswordFormatError("pbkdf2-sha256 hash needs i within range")
        if secret is None:
            return expected, expected
        derived = hashlib.pbkdf2_hmac("sha256", secret, salt, params["i"], dklen=len(expected))
        return derived, expected
    raise PasswordFormatError("unknown password hash scheme")


def verify_password(password: bytes | str, encoded: str) -> bool:
    """Check a password against a stored hash in constant time (for a given hash).

    Slow on purpose: call it from a worker thread, never on the event loop.

    Args:
        password: the password as received (str is encoded as UTF-8).
        encoded: the stored hash.

    Returns:
        True when the password matches.

    Raises:
        PasswordFormatError: the stored hash is malformed.
    """
    secret = password.encode("utf-8") if isinstance(password, str) else password
    derived, expected = _derive_from(encoded, secret)
    return hmac.compare_digest(derived, expected)


def main(argv: Sequence[str] | None = None) -> int:
    """`ocpp-gateway hash-password`: read one password on stdin, print its hash on stdout.

    The trailing newline of the input line is removed; nothing else is. The password is never
    echoed. Lengths outside 16..40 characters (OCPP 2.x BasicAuthPassword; a 1.6 AuthorizationKey
    is 40 hex characters) are refused unless `--any-length` is given.

    Args:
        argv: arguments after `hash-password` (`--cost LOG2_N`, `--hex`, `--any-length`).

    Returns:
        0 on success, 2 on a refused password.
    """
    parser = argparse.ArgumentParser(
        prog="ocpp-gateway hash-password",
        description="Read a charge point password on stdin and print its salted scrypt hash, "
        'for a credentials file line such as "CP-1" = "<hash>".',
    )
    parser.add_argument(
        "--cost",
        type=int,
        default=DEFAULT_SCRYPT_LOG2_N,
        metavar="LOG2_N",
        help=f"scrypt cost as log2(N), default {DEFAULT_SCRYPT_LOG2_N}",
    )
    parser.add_argument(
        "--hex",
        action="store_true",
        help="the input is hex (a 1.6 AuthorizationKey) and the charger sends the decoded bytes",
    )
    parser.add_argument(
        "--any-length", action="store_true", help="accept passwords outside 16..40 characters"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not 1 <= args.cost <= _MAX_LOG2_N:
        print(f"error: --cost must be within 1..{_MAX_LOG2_N}", file=sys.stderr)
        return 2
    line = sys.stdin.buffer.readline()
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    secret: bytes = line
    if args.hex:
        try:
            secret = bytes.fromhex(line.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            print("error: --hex input is not hexadecimal", file=sys.stderr)
            return 2
        length_ok = len(line) == MAX_PASSWORD_CHARS
    else:
        try:
            chars = len(line.decode("utf-8"))
        except UnicodeDecodeError:
            print("error: password is not UTF-8", file=sys.stderr)
            return 2
        length_ok = MIN_PASSWORD_CHARS <= chars <= MAX_PASSWORD_CHARS
    if not secret:
        print("error: empty password", file=sys.stderr)
        return 2
    if not length_ok and not args.any_length:
        print(
            f"error: password must be {MIN_PASSWORD_CHARS}..{MAX_PASSWORD_CHARS} characters "
            "(40 hex characters with --hex); use --any-length to override",
            file=sys.stderr,
        )
        return 2
    print(hash_password(secret, log2_n=args.cost))
    return 0

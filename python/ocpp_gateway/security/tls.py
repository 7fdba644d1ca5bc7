"""Server TLS context for OCPP security profiles 2 and 3, and client certificate identities.

Python's ssl module has no API for the session ticket keys, so they are set through OpenSSL's
own `SSL_CTX_ctrl` (ctypes, on the `SSL_CTX` the context wraps; see `OpenSslContext`): several
processes (`--workers`, other nodes) holding the same keys resume each other's TLS sessions.
Where that is not possible (another Python implementation, a pointer that does not check out),
the context stays as Python built it and tickets work within one process only. (CPython already
sets `SSL_MODE_RELEASE_BUFFERS`: idle connections hold no OpenSSL record buffers.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import ssl
import sys
from collections.abc import Mapping
from typing import Any

__all__ = [
    "LEGACY_RSA_CIPHERS",
    "OCPP_TLS12_CIPHERS",
    "TICKET_KEY_BYTES",
    "OpenSslContext",
    "build_server_context",
    "new_ticket_keys",
    "peer_identity",
    "read_ticket_keys",
]

TICKET_KEY_BYTES = 80
"""Length of OpenSSL's session ticket keys (since 1.1.0): a 16-byte key name, a 32-byte HMAC
secret and a 32-byte AES secret."""

_SSL_CTRL_GET_TLSEXT_TICKET_KEYS = 58
_SSL_CTRL_SET_TLSEXT_TICKET_KEYS = 59


def _find_libssl() -> ctypes.CDLL | None:
    """The libssl the ssl module is linked with (already loaded: dlopen returns its handle)."""
    path = None
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                if "/libssl.so" in line:
                    path = line.split()[-1]
                    break
    except OSError:
        pass
    path = path or ctypes.util.find_library("ssl")
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    return lib


class OpenSslContext:
    """The OpenSSL `SSL_CTX` behind a Python `ssl.SSLContext`, for controls Python lacks.

    CPython's context object holds the `SSL_CTX *` right after its object header. The pointer
    is used only once it checks out: OpenSSL must report the verify mode the Python object
    reports, for two different values set on purpose.

    Args:
        context: a context of this process's ssl module.

    Raises:
        OSError: not CPython on a 64-bit Linux-like system, no libssl found, or the pointer
            does not check out.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        if sys.implementation.name != "cpython" or ctypes.sizeof(ctypes.c_void_p) != 8:
            raise OSError("OpenSSL controls need CPython on a 64-bit platform")
        lib = _find_libssl()
        if lib is None:
            raise OSError("libssl not found")
        header = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)
        pointer = ctypes.c_void_p.from_address(id(context) + header).value
        if not pointer:
            raise OSError("no SSL_CTX behind the context")
        saved = context.verify_mode
        try:
            for mode in (ssl.CERT_OPTIONAL, ssl.CERT_NONE):
                context.verify_mode = mode
                if lib.SSL_CTX_get_verify_mode(pointer) != int(mode):
                    raise OSError("the SSL_CTX pointer does not check out")
        except ValueError as exc:  # a client context that checks host names
            raise OSError(f"cannot check the SSL_CTX pointer: {exc}") from exc
        finally:
            context.verify_mode = saved
        self._lib = lib
        self._ctx = pointer

    def set_ticket_keys(self, keys: bytes) -> None:
        """Encrypt and accept session tickets with `keys` instead of this process's random ones.

        Args:
            keys: `TICKET_KEY_BYTES` bytes (see `read_ticket_keys`).

        Raises:
            ValueError: wrong length.
            OSError: OpenSSL refused the keys, or reads back other keys.
        """
        if len(keys) != TICKET_KEY_BYTES:
            raise ValueError(f"ticket keys must be {TICKET_KEY_BYTES} bytes, not {len(keys)}")
        buffer = ctypes.create_string_buffer(keys, TICKET_KEY_BYTES)
        if not self._lib.SSL_CTX_ctrl(
            self._ctx, _SSL_CTRL_SET_TLSEXT_TICKET_KEYS, TICKET_KEY_BYTES, buffer
        ):
            raise OSError("OpenSSL refused the session ticket keys")
        check = ctypes.create_string_buffer(TICKET_KEY_BYTES)
        self._lib.SSL_CTX_ctrl(self._ctx, _SSL_CTRL_GET_TLSEXT_TICKET_KEYS, TICKET_KEY_BYTES, check)
        if check.raw != keys:
            raise OSError("OpenSSL did not keep the session ticket keys")


def new_ticket_keys() -> bytes:
    """Fresh random session ticket keys (`TICKET_KEY_BYTES` bytes)."""
    return os.urandom(TICKET_KEY_BYTES)


def read_ticket_keys(path: str) -> bytes:
    """Read a session ticket key file: exactly `TICKET_KEY_BYTES` bytes, raw or as hex text.

    Args:
        path: the file (e.g. made with `head -c 80 /dev/urandom > ticket.key`).

    Returns:
        The keys.

    Raises:
        OSError: the file cannot be read.
        ValueError: it holds neither 80 raw bytes nor 160 hex digits.
    """
    with open(path, "rb") as file:
        data = file.read(4 * TICKET_KEY_BYTES)
    if len(data) == TICKET_KEY_BYTES:
        return data
    text = data.strip()
    if len(text) == 2 * TICKET_KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise ValueError(
        f"{path}: a session ticket key file holds {TICKET_KEY_BYTES} raw bytes or "
        f"{2 * TICKET_KEY_BYTES} hex digits"
    )


OCPP_TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"
)
"""TLS 1.2 suites: TLS_ECDHE_ECDSA_WITH_AES_{128_GCM_SHA256,256_GCM_SHA384} that the OCPP security
profiles require, and their ECDHE-RSA variants for servers holding an RSA key. TLS 1.3 keeps
OpenSSL's default suites."""

LEGACY_RSA_CIPHERS = "AES128-GCM-SHA256:AES256-GCM-SHA384"
"""TLS_RSA_WITH_AES_{128,256}_GCM_SHA* (no forward secrecy), which the OCPP 1.6 security
whitepaper still lists; added only with `tls_allow_rsa_key_exchange`."""

# Short names an operator may give for `client_identity_field`, mapped to the attribute names
# Python's ssl module reports in `getpeercert()["subject"]`.
_FIELD_NAMES: Mapping[str, str] = {
    "CN": "commonName",
    "O": "organizationName",
    "OU": "organizationalUnitName",
    "SERIALNUMBER": "serialNumber",
    "UID": "userId",
    "DC": "domainComponent",
    "EMAILADDRESS": "emailAddress",
}


def build_server_context(
    cert_file: str,
    key_file: str,
    client_ca: str | None = None,
    *,
    allow_rsa_key_exchange: bool = False,
    client_cert_required: bool = True,
    ticket_keys: bytes | None = None,
) -> ssl.SSLContext:
    """Build the TLS context of the gateway's listening socket.

    TLS 1.2 and 1.3 only, no compression, no renegotiation; TLS 1.2 restricted to the OCPP suites.
    Session tickets on (resumption), one TLS 1.3 ticket per connection (OpenSSL sends two by
    default; a charge point holds one connection, and each ticket costs the server an encryption).

    Args:
        cert_file: PEM server certificate (chain).
        key_file: PEM private key of that certificate.
        client_ca: PEM CA bundle; when given, client certificates are verified against it.
        allow_rsa_key_exchange: also offer the static-RSA suites of the 1.6 whitepaper.
        client_cert_required: with `client_ca`, refuse TLS handshakes without a client
            certificate; when False, a certificate is optional but must verify when sent
            (mixed fleets of profile 2 and 3 charge points).
        ticket_keys: session ticket keys shared with other processes (`read_ticket_keys`);
            None keeps OpenSSL's random keys of this process.

    Returns:
        A server-side SSLContext.

    Raises:
        OSError: a file cannot be read, or `ticket_keys` cannot be installed.
        ssl.SSLError: the certificate, key or CA bundle is invalid or they do not match.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ciphers = OCPP_TLS12_CIPHERS
    if allow_rsa_key_exchange:
        ciphers = f"{ciphers}:{LEGACY_RSA_CIPHERS}"
    ctx.set_ciphers(ciphers)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    ctx.load_cert_chain(cert_file, key_file)
    if client_ca:
        ctx.load_verify_locations(cafile=client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if client_cert_required else ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    ctx.num_tickets = 1
    if ticket_keys is not None:
        OpenSslContext(ctx).set_ticket_keys(ticket_keys)
    return ctx


def peer_identity(peercert: Any, field: str = "CN") -> str | None:
    """The identity a verified client certificate asserts.

    Args:
        peercert: the dict from `SSLSocket.getpeercert()` / `get_extra_info("peercert")`
            (empty or None when the client sent no certificate).
        field: the subject attribute holding the charge point id ("CN", "serialNumber", ...).

    Returns:
        The attribute's value when the subject holds exactly one, else None.
    """
    if not isinstance(peercert, dict):
        return None
    wanted = _FIELD_NAMES.get(field.upper(), field)
    values: list[str] = []
    for rdn in peercert.get("subject", ()):
        for name, value in rdn:
            if name == wanted and isinstance(value, str):
                values.append(value)
    return values[0] if len(values) == 1 else None

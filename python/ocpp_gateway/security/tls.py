"""Server TLS context for OCPP security profiles 2 and 3, and client certificate identities."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

__all__ = [
    "LEGACY_RSA_CIPHERS",
    "OCPP_TLS12_CIPHERS",
    "build_server_context",
    "peer_identity",
]

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
) -> ssl.SSLContext:
    """Build the TLS context of the gateway's listening socket.

    TLS 1.2 and 1.3 only, no compression, no renegotiation; TLS 1.2 restricted to the OCPP suites.

    Args:
        cert_file: PEM server certificate (chain).
        key_file: PEM private key of that certificate.
        client_ca: PEM CA bundle; when given, client certificates are verified against it.
        allow_rsa_key_exchange: also offer the static-RSA suites of the 1.6 whitepaper.
        client_cert_required: with `client_ca`, refuse TLS handshakes without a client
            certificate; when False, a certificate is optional but must verify when sent
            (mixed fleets of profile 2 and 3 charge points).

    Returns:
        A server-side SSLContext.

    Raises:
        OSError: a file cannot be read.
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

"""Fixtures of the security tests: a throwaway PKI (CA, server and client certificates) and
credentials files, all generated in the test with `cryptography`."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ocpp_gateway.security.passwords import hash_password

# Low scrypt cost keeps the tests fast; the encoded form carries it, so production code is the same.
TEST_COST = 8
PASSWORD = "Sup3r-Secret-Pa55word!"  # 22 characters, a 2.x BasicAuthPassword
AUTH_KEY_HEX = "00112233445566778899aabbccddeeff00112233"  # a 1.6 AuthorizationKey


@dataclass(frozen=True)
class Pki:
    """Paths of a generated PKI and a factory of client certificates."""

    dir: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    rsa_server_cert: Path
    rsa_server_key: Path
    client: Callable[..., tuple[Path, Path]]
    other_ca_client: Callable[[str], tuple[Path, Path]]


def _name(cn: str, serial: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ocpp-gateway tests")]
    if serial is not None:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _make_ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    name: x509.Name,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    *,
    server: bool,
) -> x509.Certificate:
    ca_cert, ca_key = ca
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, an ECDSA and an RSA server certificate for 127.0.0.1, and client certificates."""
    d = tmp_path_factory.mktemp("pki")
    ca = _make_ca("ocpp-gateway test CA")
    _write_cert(d / "ca.pem", ca[0])
    server_key = ec.generate_private_key(ec.SECP256R1())
    _write_key(d / "server.key", server_key)
    _write_cert(d / "server.pem", _issue(ca, _name("localhost"), server_key, server=True))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(d / "rsa-server.key", rsa_key)
    _write_cert(d / "rsa-server.pem", _issue(ca, _name("localhost"), rsa_key, server=True))
    other = _make_ca("some other CA")

    def client(cn: str, serial: str | None = None) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        stem = f"client-{cn}-{serial}"
        _write_key(d / f"{stem}.key", key)
        _write_cert(d / f"{stem}.pem", _issue(ca, _name(cn, serial), key, server=False))
        return d / f"{stem}.pem", d / f"{stem}.key"

    def other_ca_client(cn: str) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(d / f"other-{cn}.key", key)
        _write_cert(d / f"other-{cn}.pem", _issue(other, _name(cn), key, server=False))
        return d / f"other-{cn}.pem", d / f"other-{cn}.key"

    return Pki(
        dir=d,
        ca_cert=d / "ca.pem",
        server_cert=d / "server.pem",
        server_key=d / "server.key",
        rsa_server_cert=d / "rsa-server.pem",
        rsa_server_key=d / "rsa-server.key",
        client=client,
        other_ca_client=other_ca_client,
    )


def client_ssl_context(
    pki: Pki,
    cert: tuple[Path, Path] | None = None,
    *,
    version: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """A client TLS context trusting the test CA, optionally with a client certificate."""
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    if version is not None:
        ctx.minimum_version = version
        ctx.maximum_version = version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


@pytest.fixture(scope="session")
def credentials_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CP-1 and CP-2 with PASSWORD, CP-16 with the 40-hex AuthorizationKey as sent."""
    path = tmp_path_factory.mktemp("creds") / "credentials.toml"
    lines = [
        f'"CP-1" = "{hash_password(PASSWORD, log2_n=TEST_COST)}"',
        f'"CP-2" = "{hash_password(PASSWORD, log2_n=TEST_COST)}"',
        f'"CP-16" = "{hash_password(AUTH_KEY_HEX, log2_n=TEST_COST)}"',
        f'"CP-raw" = "{hash_password(bytes.fromhex(AUTH_KEY_HEX), log2_n=TEST_COST)}"',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path

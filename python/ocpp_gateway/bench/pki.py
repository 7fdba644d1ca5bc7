"""A throwaway PKI for TLS benchmarks, generated in the run.

A CA, EC P-256 and RSA-2048 server certificates, client certificates named after charge points
(security profile 3) and a credentials file (profile 2).

Everything is generated in the run with `cryptography` (a `bench` extra); nothing is fetched.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ocpp_gateway.security.passwords import hash_password

__all__ = ["BENCH_PASSWORD", "BenchPki", "make_pki"]

BENCH_PASSWORD = "bench-Basic-auth-password-1"
"""The Basic auth password of every benchmark charge point (profile 2)."""

_Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class BenchPki:
    """Paths of a generated PKI.

    Attributes:
        dir: where the files are.
        ca_cert: the CA that signed everything (clients trust it; profile 3 servers verify
            client certificates against it).
        ec_cert, ec_key: server certificate and key on EC P-256.
        rsa_cert, rsa_key: server certificate and key on RSA-2048.
    """

    dir: Path
    ca_cert: Path
    ec_cert: Path
    ec_key: Path
    rsa_cert: Path
    rsa_key: Path

    def client(self, charge_point_id: str) -> tuple[Path, Path]:
        """The client certificate and key files of a charge point (see `add_clients`).

        Args:
            charge_point_id: the certificate's common name.

        Returns:
            (certificate, key) paths.
        """
        return self.dir / "clients" / f"{charge_point_id}.pem", self.dir / "clients" / (
            f"{charge_point_id}.key"
        )

    def add_clients(self, charge_point_ids: Iterable[str]) -> None:
        """Issue an EC P-256 client certificate per charge point (CN = its id).

        Args:
            charge_point_ids: the ids.
        """
        ca = _load_ca(self)
        (self.dir / "clients").mkdir(exist_ok=True)
        for cp_id in charge_point_ids:
            cert_path, key_path = self.client(cp_id)
            if cert_path.exists():
                continue
            key = ec.generate_private_key(ec.SECP256R1())
            _write_key(key_path, key)
            _write_cert(cert_path, _issue(ca, cp_id, key, server=False))

    def credentials_file(self, charge_point_ids: Iterable[str], log2_n: int = 10) -> Path:
        """A credentials file giving every charge point `BENCH_PASSWORD`.

        One scrypt hash is shared by all (hashing thousands at the production cost would take
        minutes); `log2_n` sets its cost, which every first verification of an id pays.

        Args:
            charge_point_ids: the ids.
            log2_n: scrypt cost (the gateway's default for new hashes is 14).

        Returns:
            The file's path.
        """
        encoded = hash_password(BENCH_PASSWORD, log2_n=log2_n)
        path = self.dir / f"credentials-{log2_n}.toml"
        path.write_text("".join(f'"{cp_id}" = "{encoded}"\n' for cp_id in charge_point_ids))
        return path


def _write_key(path: Path, key: _Key) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ocpp-gateway bench"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _issue(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], cn: str, key: _Key, *, server: bool
) -> x509.Certificate:
    ca_cert, ca_key = ca
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())


def _load_ca(pki: BenchPki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = serialization.load_pem_private_key((pki.dir / "ca.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def make_pki(folder: Path) -> BenchPki:
    """Generate a CA and both server certificates (for "localhost") into `folder`.

    Args:
        folder: an existing directory.

    Returns:
        The PKI's paths.
    """
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("bench CA"))
        .issuer_name(_name("bench CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(folder / "ca.key", ca_key)
    _write_cert(folder / "ca.pem", ca_cert)
    pki = BenchPki(
        folder,
        folder / "ca.pem",
        folder / "ec.pem",
        folder / "ec.key",
        folder / "rsa.pem",
        folder / "rsa.key",
    )
    ca = (ca_cert, ca_key)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    _write_key(pki.ec_key, ec_key)
    _write_cert(pki.ec_cert, _issue(ca, "localhost", ec_key, server=True))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.rsa_key, rsa_key)
    _write_cert(pki.rsa_cert, _issue(ca, "localhost", rsa_key, server=True))
    return pki

"""``qorgau certs``: a private certificate authority and server certificates for TLS.

For a deployment that has no PKI of its own (a plant's control room, a ministry
data centre without an internal CA): one CA (10 years), and a server
certificate (2 years) for the names and addresses the MQTT broker (mqtts) and
the API (HTTPS) are reached by. Devices and browsers trust the CA certificate
(``ca.crt``); the CA key (``ca.key``) belongs offline once the server
certificates are made. Where an organisation's own CA exists, use it instead:
Qorgau only needs a certificate and key file per server and the CA file for
clients (``QORGAU_MQTT_CA_FILE``).

    qorgau certs deploy/certs --host broker.example.kz --host api.example.kz --host 10.0.0.5
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.errors import QorgauError
from core.statefiles import write_private

__all__ = ["add_parser", "cmd_certs", "make_certificates"]


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Qorgau"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(path, pem)


def make_certificates(out: Path, hosts: list[str], *, days: int = 730) -> dict[str, Path]:
    """``ca.crt``/``ca.key`` (made once, reused) and ``server.crt``/``server.key`` for
    ``hosts`` (DNS names or IP addresses) in ``out``."""
    if not hosts:
        raise QorgauError("name at least one --host the servers are reached by")
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key_path, ca_crt_path = out / "ca.key", out / "ca.crt"
    if ca_key_path.exists() and ca_crt_path.exists():
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise QorgauError(f"{ca_key_path} is not an EC key made by qorgau certs")
        ca_key = loaded
        ca_cert = x509.load_pem_x509_certificate(ca_crt_path.read_bytes())
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Qorgau CA"))
            .issuer_name(_name("Qorgau CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(ca_key_path, ca_key)
        ca_crt_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(out / "server.key", key)
    (out / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return {
        "ca.crt": ca_crt_path,
        "ca.key": ca_key_path,
        "server.crt": out / "server.crt",
        "server.key": out / "server.key",
    }


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "certs",
        help="make a private CA and a server certificate for mqtts:// and HTTPS",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", type=Path, help="directory for ca.crt, ca.key, server.crt, server.key")
    p.add_argument(
        "--host", action="append", default=[], help="a DNS name or IP of the servers (repeat)"
    )
    p.add_argument("--days", type=int, default=730, help="server certificate lifetime")


def cmd_certs(args: argparse.Namespace) -> int:
    made = make_certificates(args.out, args.host, days=args.days)
    for name, path in made.items():
        print(f"{name:<11} {path}")
    print(
        "Give devices and browsers ca.crt; mount server.crt/server.key in the broker and the API;"
        " keep ca.key offline (it signs new server certificates)."
    )
    return 0


def env_secrets() -> str:
    """A ``.env`` block for docker-compose.yml with every secret made at random (one line
    each: the VAPID key as base64url DER, which `.env` files can hold)."""
    import secrets

    from alerts.channels.webpush import b64url

    vapid = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    def token() -> str:
        return secrets.token_urlsafe(36)

    lines = [
        "# Made by `qorgau secrets`: keep this file secret (mode 0600), out of version control.",
        "QORGAU_PUBLIC_URL=https://qorgau.example.kz:8443",
        f"POSTGRES_PASSWORD={token()}",
        f"QORGAU_JWT_SECRET={token()}",
        f"QORGAU_WEBHOOK_SECRET={token()}",
        f"QORGAU_VAPID_PRIVATE_KEY={b64url(vapid)}",
        f"QORGAU_ADMIN_PASSWORD={token()}",
        f"GRAFANA_ADMIN_PASSWORD={token()}",
        f"GRAFANA_DB_PASSWORD={token()}",
        f"QORGAU_MQTT_SECRET_BRIDGE={token()}",
        f"QORGAU_MQTT_SECRET_NOTIFIER={token()}",
        f"QORGAU_MQTT_SECRET_API={token()}",
        "QORGAU_SMTP_URL=",
    ]
    return "\n".join(lines) + "\n"

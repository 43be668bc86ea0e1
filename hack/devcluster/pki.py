"""Certificates and keys for the local control plane.

Called by `devcluster.cluster.LocalCluster.start()` once per state directory:
`ensure_pki(dir)` writes a CA, the kube-apiserver serving certificate, client
certificates (admin, kube-controller-manager, process node) and the
service-account RSA key pair, and reuses them on later starts so that a warm
start costs no key generation and old kubeconfigs stay valid.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Serving-cert SANs: loopback, the in-cluster DNS name and the first service IP.
APISERVER_DNS_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
APISERVER_IPS = ("127.0.0.1", "10.0.0.1")
VALIDITY = dt.timedelta(days=3650)

KeyType = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class ClientIdentity:
    """Who a client certificate says its holder is (CN = user, O = groups)."""

    name: str
    user: str
    groups: tuple[str, ...]


# The node agent is scheduler and kubelet at once (it binds pods and runs them),
# so it gets system:masters rather than system:nodes: see docs/decisions/0002.
CLIENTS = (
    ClientIdentity("admin", "admin", ("system:masters",)),
    ClientIdentity("controller-manager", "system:kube-controller-manager", ()),
    ClientIdentity("node", "devcluster:node-agent:local-0", ("system:masters",)),
)


@dataclass(frozen=True)
class Pki:
    """Paths of everything `ensure_pki` wrote; all PEM files."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"

    def client_cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def client_key(self, name: str) -> Path:
        return self.dir / f"{name}.key"


def _ec_key() -> ec.EllipticCurvePrivateKey:
    # P-256 keys take microseconds to generate; RSA only where Kubernetes needs it.
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: KeyType) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: object) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _make_ca(pki: Pki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _ec_key()
    name = _name("devcluster-ca")
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(pki.ca_key, key)
    _write_cert(pki.ca_cert, cert)
    return cert, key


def _leaf(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _ec_key()
    builder = (
        _builder(subject, ca.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def ensure_pki(directory: Path) -> Pki:
    """Create the cluster's PKI under `directory` unless a complete one is there."""
    pki = Pki(directory)
    wanted = [pki.ca_cert, pki.serving_cert, pki.sa_key, pki.sa_pub]
    wanted += [pki.client_cert(c.name) for c in CLIENTS]
    if all(p.exists() for p in wanted):
        return pki
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _make_ca(pki)

    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in APISERVER_DNS_NAMES]
    sans.append(x509.DNSName("kubernetes.default.svc.cluster.local"))
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in APISERVER_IPS]
    cert, key = _leaf(ca, ca_key, _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans)
    _write_cert(pki.serving_cert, cert)
    _write_key(pki.serving_key, key)

    for client in CLIENTS:
        subject = _name(client.user, client.groups)
        cert, key = _leaf(ca, ca_key, subject, ExtendedKeyUsageOID.CLIENT_AUTH)
        _write_cert(pki.client_cert(client.name), cert)
        _write_key(pki.client_key(client.name), key)

    # Service-account tokens are signed with RSA (RS256), which Kubernetes expects.
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.sa_key, sa)
    pki.sa_pub.write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki

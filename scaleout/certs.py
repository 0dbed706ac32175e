"""Development certificates: one CA, a server certificate for the hosts given, a client certificate.

What `scaleout certs create` writes. The server certificate serves the API (https) and the combiners
(gRPC TLS) alike, so it names every host either is reached by; the client certificate is what clients
and the controller present to a combiner that requires mutual TLS. ECDSA P-256 keys: small, fast and
accepted by both OpenSSL (Python's ssl, uvicorn) and BoringSSL (gRPC). For production, certificates
from your own PKI work the same way: every flag takes PEM files.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scaleout.errors import ScaleoutError

# Loopback names every local process dials; always in the server certificate.
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
LEAF_DAYS = 825  # the longest validity browsers and Apple's TLS stack accept for a leaf certificate
# Clock skew between machines must not make a fresh certificate "not yet valid".
BACKDATE = timedelta(minutes=5)

CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"
SERVER_CERT, SERVER_KEY = "server.pem", "server-key.pem"
CLIENT_CERT, CLIENT_KEY = "client.pem", "client-key.pem"
FILES = (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, CLIENT_CERT, CLIENT_KEY)


class CertificateError(ScaleoutError):
    """Certificates could not be written, or existing ones do not fit the request."""


@dataclass(frozen=True)
class CertificateSet:
    """Where `create_certificates` put (or found) each file, and the hosts the server certificate names."""

    folder: Path
    hosts: tuple[str, ...]
    created: bool

    def path(self, name: str) -> Path:
        return self.folder / name


def server_hosts(hosts: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The hosts given, then the loopback defaults, each once, in that order."""
    return tuple(dict.fromkeys([*(h.strip() for h in hosts if h.strip()), *DEFAULT_HOSTS]))


def create_certificates(
    folder: Path, hosts: list[str] | tuple[str, ...], force: bool = False, keep_existing: bool = False
) -> CertificateSet:
    """Write the CA, server and client certificates and keys to ``folder`` (keys 0600).

    Existing files are an error naming them, unless ``force`` (overwrite all) or ``keep_existing``
    (keep a complete set whose server certificate names every host asked for; compose's one-shot
    ``certs`` service, run again on every ``docker compose up``, must not replace the CA).
    """
    names = server_hosts(hosts)
    existing = [name for name in FILES if (folder / name).exists()]
    if existing and not force:
        if keep_existing and len(existing) == len(FILES):
            return _kept(folder, names)
        raise CertificateError(
            f"{folder} already holds {', '.join(existing)}; pass --force to replace every certificate "
            "(clients must then get the new ca.pem), --keep-existing to keep a complete set, "
            "or choose another --out"
        )
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _make_ca()
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _sign_leaf(ca_key, ca_cert, server_key, "scaleout server", names, server=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _sign_leaf(ca_key, ca_cert, client_key, "scaleout client", (), server=False)
    for name, key, cert in (
        (CA_KEY, ca_key, None),
        (SERVER_KEY, server_key, None),
        (CLIENT_KEY, client_key, None),
        (CA_CERT, None, ca_cert),
        (SERVER_CERT, None, server_cert),
        (CLIENT_CERT, None, client_cert),
    ):
        if key is not None:
            _write(folder / name, _key_pem(key), 0o600)
        else:
            _write(folder / name, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return CertificateSet(folder, names, created=True)


def certificate_hosts(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names and IP addresses a certificate's subjectAltName lists."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return (*san.get_values_for_type(x509.DNSName), *ips)


def _kept(folder: Path, names: tuple[str, ...]) -> CertificateSet:
    cert = x509.load_pem_x509_certificate((folder / SERVER_CERT).read_bytes())
    listed = certificate_hosts(cert)
    missing = [name for name in names if _normalized(name) not in {_normalized(h) for h in listed}]
    if missing:
        raise CertificateError(
            f"{folder / SERVER_CERT} does not name {', '.join(missing)} (it names {', '.join(listed)}); "
            "pass --force to make new certificates for these hosts"
        )
    return CertificateSet(folder, listed, created=False)


def _normalized(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def _make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "scaleout development CA")])
    now = datetime.now(UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _sign_leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    hosts: tuple[str, ...],
    server: bool,
) -> x509.Certificate:
    now = datetime.now(UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(_general_names(hosts)), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_names(hosts: tuple[str, ...]) -> list[x509.GeneralName]:
    """An IP address becomes an iPAddress entry (TLS stacks match IPs only there), a name a dNSName."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted PKCS#8: the servers read their keys unattended; the file mode protects them.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write with the mode from the start (a key is never readable by others, even for a moment)."""
    path.unlink(missing_ok=True)  # os.open's mode applies only to a file it creates
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, mode)  # the umask may have taken bits off; certificates are meant to be readable

"""`scaleout certs create`: what it writes, read back with `cryptography` (SANs, signatures, usages,
file modes), and how it treats files that already exist."""

import ipaddress
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID

from scaleout.cli.main import cli

FILES = {"ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "client.pem", "client-key.pem"}


def create(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["certs", "create", *args])
    return result.exit_code, result.output


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return names.get_values_for_type(x509.DNSName), [
        str(ip) for ip in names.get_values_for_type(x509.IPAddress)
    ]


def usages(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_the_server_certificate_names_the_hosts_given_and_loopback(tmp_path: Path) -> None:
    code, output = create("--out", str(tmp_path), "--host", "api", "--host", "combiner", "--host", "10.1.2.3")

    assert code == 0, output
    assert {p.name for p in tmp_path.iterdir()} == FILES
    dns, ips = sans(load(tmp_path / "server.pem"))
    assert dns == ["api", "combiner", "localhost"]
    assert ips == ["10.1.2.3", "127.0.0.1", "::1"]
    assert (
        f"Created certificates in {tmp_path} for api, combiner, 10.1.2.3, localhost, 127.0.0.1, ::1" in output
    )


def test_server_and_client_certificates_are_signed_by_the_ca_for_their_use(tmp_path: Path) -> None:
    assert create("--out", str(tmp_path))[0] == 0
    ca, server, client = (load(tmp_path / name) for name in ("ca.pem", "server.pem", "client.pem"))

    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.subject == ca.issuer
    ca.verify_directly_issued_by(ca)
    for leaf in (server, client):
        leaf.verify_directly_issued_by(ca)  # raises unless the CA's key signed it
        assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert usages(server) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert usages(client) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert sans(server) == (["localhost"], ["127.0.0.1", "::1"])  # loopback without any --host
    # A certificate of another run's CA is not this CA's.
    other = tmp_path / "other"
    assert create("--out", str(other))[0] == 0
    with pytest.raises(InvalidSignature):  # same CA name, another key
        load(other / "server.pem").verify_directly_issued_by(ca)


def test_keys_are_private_to_their_owner_and_match_their_certificates(tmp_path: Path) -> None:
    assert create("--out", str(tmp_path))[0] == 0

    for name in ("ca", "server", "client"):
        key_path = tmp_path / f"{name}-key.pem"
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / f"{name}.pem").stat().st_mode) == 0o644
        key = load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.public_key() == load(tmp_path / f"{name}.pem").public_key()


def test_existing_certificates_are_never_overwritten_silently(tmp_path: Path) -> None:
    assert create("--out", str(tmp_path), "--host", "api")[0] == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    code, output = create("--out", str(tmp_path), "--host", "api")

    assert code == 1
    assert output.strip() == (
        f"Error: {tmp_path} already holds ca.pem, ca-key.pem, server.pem, server-key.pem, client.pem, "
        "client-key.pem; pass --force to replace every certificate (clients must then get the new "
        "ca.pem), --keep-existing to keep a complete set, or choose another --out"
    )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_keep_existing_keeps_a_set_that_names_the_hosts_and_refuses_one_that_does_not(tmp_path: Path) -> None:
    assert create("--out", str(tmp_path), "--host", "api")[0] == 0
    ca = (tmp_path / "ca.pem").read_bytes()

    code, output = create("--out", str(tmp_path), "--host", "api", "--keep-existing")
    assert code == 0, output
    assert output.startswith(f"Kept existing certificates in {tmp_path}")
    assert (tmp_path / "ca.pem").read_bytes() == ca

    code, output = create("--out", str(tmp_path), "--host", "combiner", "--keep-existing")
    assert code == 1
    assert output.strip() == (
        f"Error: {tmp_path}/server.pem does not name combiner (it names api, localhost, 127.0.0.1, ::1); "
        "pass --force to make new certificates for these hosts"
    )


def test_force_replaces_every_certificate(tmp_path: Path) -> None:
    assert create("--out", str(tmp_path), "--host", "api")[0] == 0
    old_ca = load(tmp_path / "ca.pem")

    code, output = create("--out", str(tmp_path), "--host", "combiner", "--force")

    assert code == 0, output
    new_ca = load(tmp_path / "ca.pem")
    assert new_ca.serial_number != old_ca.serial_number
    load(tmp_path / "server.pem").verify_directly_issued_by(new_ca)
    assert sans(load(tmp_path / "server.pem"))[0] == ["combiner", "localhost"]
    assert stat.S_IMODE((tmp_path / "server-key.pem").stat().st_mode) == 0o600


def test_ip_hosts_are_ip_address_entries(tmp_path: Path) -> None:
    assert create("--out", str(tmp_path), "--host", "2001:db8::1")[0] == 0
    names = load(tmp_path / "server.pem").extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert ipaddress.ip_address("2001:db8::1") in names.value.get_values_for_type(x509.IPAddress)
    assert "2001:db8::1" not in names.value.get_values_for_type(x509.DNSName)

"""The TLS flags are checked before anything starts: each wrong combination or file is one usage
error naming the flag, the file and the fix."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from scaleout.certs import create_certificates
from scaleout.cli.main import cli


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_certificates(tmp_path_factory.mktemp("certs"), []).folder


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_certificates(tmp_path_factory.mktemp("other"), []).folder


def usage_error(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 2, result.output
    return result.output.strip().splitlines()[-1]


def test_a_certificate_without_its_key_is_refused(certs: Path) -> None:
    line = usage_error("combiner", "start", "--tls-cert", str(certs / "server.pem"))
    assert line == "Error: --tls-key is missing: --tls-cert and --tls-key go together"


def test_mutual_tls_without_tls_is_refused(certs: Path) -> None:
    line = usage_error("combiner", "start", "--tls-client-ca", str(certs / "ca.pem"))
    assert line == "Error: --tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first"


def test_a_key_of_another_certificate_is_refused_naming_both_files(certs: Path, other: Path) -> None:
    cert, key = certs / "server.pem", other / "server-key.pem"
    for command in (["combiner", "start"], ["api", "start"]):
        line = usage_error(*command, "--tls-cert", str(cert), "--tls-key", str(key))
        assert line == (
            f"Error: --tls-cert {cert} and --tls-key {key} are not a usable pair (KEY_VALUES_MISMATCH); "
            "give the certificate and the key made with it"
        )


def test_a_missing_ca_file_is_refused_naming_the_flag(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    line = usage_error("client", "start", "--tls-ca", str(missing))
    assert line == (
        f"Error: cannot read --tls-ca {missing}: No such file or directory; "
        "check the path and its permissions"
    )


def test_a_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "ca.der"
    junk.write_bytes(b"\x30\x82junk")
    line = usage_error("combiner", "health", "--tls-ca", str(junk))
    assert line == f"Error: --tls-ca {junk} is not a PEM file; give the .pem `scaleout certs create` wrote"


def test_a_client_certificate_without_its_key_is_refused(certs: Path) -> None:
    line = usage_error("client", "start", "--tls-client-cert", str(certs / "client.pem"))
    assert line == (
        "Error: --tls-client-cert and --tls-client-key go together: give both (mutual TLS) or neither"
    )

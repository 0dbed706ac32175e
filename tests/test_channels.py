"""proto/channels.py against a real grpc.aio server: a certificate that does not name the host dialled
is refused in one line naming the host and the fix (the foreign-CA case runs end to end in
tests/e2e/test_tls.py)."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scaleout.certs import create_certificates
from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc
from scaleout.proto.channels import certificate_refusal, open_channel, server_credentials
from scaleout.tls import ClientTLS, ServerTLS


class _Control(rpc.ControlServicer):
    async def Info(
        self, request: pb.CombinerInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.CombinerInfo:
        return pb.CombinerInfo(name="probe")


def _certificate_for(folder: Path, host: str) -> ServerTLS:
    """A server certificate naming only ``host``, signed by the CA in ``folder``."""
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca-key.pem").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "elsewhere.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (folder / "elsewhere-key.pem").write_bytes(pem_key)
    return ServerTLS(folder / "elsewhere.pem", folder / "elsewhere-key.pem")


async def _info(tls: ServerTLS, client: ClientTLS) -> tuple[str, str | None]:
    server = grpc.aio.server()
    rpc.add_ControlServicer_to_server(_Control(), server)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(tls))
    await server.start()
    target = f"127.0.0.1:{port}"
    try:
        async with open_channel(target, client) as channel:
            try:
                await rpc.ControlStub(channel).Info(pb.CombinerInfoRequest(), timeout=20)
            except grpc.aio.AioRpcError as error:
                return target, certificate_refusal(error, target, client)
        return target, None
    finally:
        await server.stop(0)


def test_a_certificate_that_does_not_name_the_host_dialled_is_refused_naming_it(tmp_path: Path) -> None:
    certs = create_certificates(tmp_path, [])
    target, refusal = asyncio.run(
        _info(_certificate_for(tmp_path, "elsewhere.example"), ClientTLS(certs.path("ca.pem")))
    )
    assert refusal == (
        f"the combiner at {target} presented a certificate that does not name 127.0.0.1; make its "
        "certificate with `scaleout certs create --host 127.0.0.1`, or advertise a host it names"
    )


def test_the_certificates_of_certs_create_serve_loopback(tmp_path: Path) -> None:
    certs = create_certificates(tmp_path, [])
    server = ServerTLS(certs.path("server.pem"), certs.path("server-key.pem"))
    assert asyncio.run(_info(server, ClientTLS(certs.path("ca.pem"))))[1] is None

"""`scaleout certs create`: a development CA with server and client certificates for TLS everywhere."""

from __future__ import annotations

from pathlib import Path

import click

from scaleout.cli.common import user_errors


@click.group("certs")
def certs_group() -> None:
    """Certificates for TLS between the API, combiners, clients and the controller."""


@certs_group.command("create")
@click.option(
    "--out",
    "out_dir",
    envvar="SCALEOUT_CERTS_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write ca.pem, server.pem, client.pem and their -key.pem files to "
    "(env SCALEOUT_CERTS_DIR).",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="A host name or IP address clients use to reach the API or a combiner; repeat for each. "
    "localhost, 127.0.0.1 and ::1 are always included.",
)
@click.option("--force", is_flag=True, help="Replace existing certificates (a new CA: redistribute ca.pem).")
@click.option(
    "--keep-existing",
    is_flag=True,
    help="When a complete set already exists and names every --host, keep it and exit 0 "
    "(for a one-shot service run on every start).",
)
def create(out_dir: Path, hosts: tuple[str, ...], force: bool, keep_existing: bool) -> None:
    """Make a development CA and, signed by it, a server certificate for the hosts given and a
    client certificate for mutual TLS. Keys are written readable by their owner only (0600).

    \b
    Then, for example:
      scaleout api start --tls-cert DIR/server.pem --tls-key DIR/server-key.pem
      scaleout combiner start --tls-cert DIR/server.pem --tls-key DIR/server-key.pem
      scaleout client start --api-url https://HOST:8092 --tls-ca DIR/ca.pem
    """
    from scaleout.certs import create_certificates

    if force and keep_existing:
        raise click.UsageError("--force and --keep-existing contradict each other; give one")
    with user_errors():
        made = create_certificates(out_dir, hosts, force=force, keep_existing=keep_existing)
    verb = "Created" if made.created else "Kept existing"
    click.echo(f"{verb} certificates in {made.folder} for {', '.join(made.hosts)}:")
    click.echo("  ca.pem                        give to every process that verifies a server (--tls-ca)")
    click.echo(
        "  server.pem, server-key.pem    the API and combiners serve with them (--tls-cert, --tls-key)"
    )
    click.echo("  client.pem, client-key.pem    for mutual TLS (--tls-client-cert, --tls-client-key)")
    click.echo("  ca-key.pem                    signs certificates: keep it off the servers")

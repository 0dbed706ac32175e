"""`scaleout --config FILE`: the YAML file is the third source of option values, after flags and env."""

from pathlib import Path

import click
from click.testing import CliRunner

from scaleout.cli.config import load_config
from scaleout.cli.main import cli


@click.group()
@click.option(
    "--config", type=click.Path(path_type=Path), callback=load_config, is_eager=True, expose_value=False
)
def group() -> None:
    pass


@group.command("start")
@click.option("--port", type=int, envvar="TEST_PORT", default=1)
@click.option("--db", "db_uri", default="sqlite:///default.db")
def start(port: int, db_uri: str) -> None:
    click.echo(f"{port} {db_uri}")


def run(tmp_path: Path, text: str, *args: str, env: dict[str, str] | None = None) -> str:
    config = tmp_path / "scaleout.yaml"
    config.write_text(text)
    result = CliRunner().invoke(group, ["--config", str(config), "start", *args], env=env or {})
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_the_file_overrides_defaults_and_is_keyed_by_option_names(tmp_path: Path) -> None:
    assert run(tmp_path, "start:\n  port: 7\n  db: mongodb://m/x\n") == "7 mongodb://m/x"


def test_environment_and_flags_override_the_file(tmp_path: Path) -> None:
    text = "start:\n  port: 7\n"
    assert run(tmp_path, text, env={"TEST_PORT": "8"}) == "8 sqlite:///default.db"
    assert run(tmp_path, text, "--port", "9", env={"TEST_PORT": "8"}) == "9 sqlite:///default.db"


def test_an_unknown_option_in_the_file_is_named_with_the_known_ones(tmp_path: Path) -> None:
    config = tmp_path / "scaleout.yaml"
    config.write_text("api:\n  start:\n    prot: 8092\n")

    result = CliRunner().invoke(cli, ["--config", str(config), "api", "start", "--help"])

    assert result.exit_code == 2
    assert "scaleout.yaml.api.start has unknown option(s) ['prot']" in result.output
    assert "port" in result.output


def test_an_unknown_command_in_the_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "scaleout.yaml"
    config.write_text("apii:\n  start: {}\n")

    result = CliRunner().invoke(cli, ["--config", str(config), "api", "start", "--help"])

    assert result.exit_code == 2 and "has no command 'apii'" in result.output


def test_the_real_commands_take_their_defaults_from_the_file(tmp_path: Path) -> None:
    config = tmp_path / "scaleout.yaml"
    config.write_text("api:\n  start:\n    port: 9123\n")

    result = CliRunner().invoke(cli, ["--config", str(config), "api", "start", "--help"])

    assert result.exit_code == 0 and "default: 9123" in result.output

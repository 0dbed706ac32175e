"""`scaleout run`: run a compute package's entry points locally, exactly as a client would in a round.

train and validate get absolute paths (the command runs in the package folder) and their outputs
are checked against the SISO contract, so a package that passes here behaves the same on a client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from scaleout.cli.common import env_dir_option, user_errors
from scaleout.client.dispatcher import Dispatcher, RunResult
from scaleout.client.outputs import Stamp, metadata_path, read_metrics, read_train_metadata, stamp, written
from scaleout.errors import PackageError
from scaleout.seed import SEED_NAME, SeedBuild, build_seed


def package_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options every `scaleout run` command takes: the package, the env cache, a timeout."""
    options = [
        click.option(
            "--path",
            required=True,
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="The compute package folder (the one holding scaleout.yaml).",
        ),
        env_dir_option,
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Stop the entry point after this many seconds (default: no limit).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def echo_line(stream: str, line: str) -> None:
    """Pass the entry point's output through: its stdout to ours, its stderr to ours."""
    click.echo(line, err=stream == "stderr")


def run_entry_point(
    path: Path,
    env_dir: Path,
    entry_point: str,
    args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> RunResult:
    """Build the package's environment if needed, then run ``entry_point`` with ``args``."""
    dispatcher = Dispatcher(path, env_dir=env_dir, sink=echo_line)
    venv = dispatcher.python_env()
    if venv is not None and not venv.ready:
        click.echo(f"Creating the python_env in {venv.path} (once; later runs reuse it) ...", err=True)
    result = dispatcher.run(entry_point, args, extra_env=extra_env, timeout=timeout)
    click.echo(f"Entry point '{entry_point}' finished in {result.seconds:.2f} s.")
    return result


def print_table(title: str, values: Mapping[str, Any]) -> None:
    table = Table(title=title)
    table.add_column("name")
    table.add_column("value", justify="right")
    for name, value in values.items():
        table.add_row(str(name), format_value(value))
    Console().print(table)


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@click.group("run")
def run_group() -> None:
    """Run a compute package's entry points locally (build, startup, train, validate, predict)."""


@run_group.command("build")
@package_options
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default="the current directory",
    help="Where the seed model should land (passed as SCALEOUT_BUILD_OUTPUT_DIR).",
)
def build(path: Path, env_dir: Path, timeout: float | None, output: Path) -> None:
    """Run the build entry point, which usually writes the seed model seed.npz."""
    with user_errors():
        result = build_seed(
            path,
            output,
            lambda env: run_entry_point(path, env_dir, "build", extra_env=env, timeout=timeout),
        )
    report_seed(result)


def report_seed(result: SeedBuild) -> None:
    """Say where this build's seed model is; a build that writes none is not an error here."""
    if result.seed is None:
        click.echo(f"build wrote no {SEED_NAME} in {result.output_dir} or {result.beside_package.parent}.")
        return
    if result.copied:
        beside = result.beside_package
        click.echo(f"build wrote {beside} (beside the package); copied it to the output folder.")
    click.echo(f"Seed model: {result.seed}")


@run_group.command("startup")
@package_options
def startup(path: Path, env_dir: Path, timeout: float | None) -> None:
    """Run the startup entry point, as a client does once its environment is ready."""
    with user_errors():
        run_entry_point(path, env_dir, "startup", timeout=timeout)


def model_io_options(output_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help=output_help
        )(command)
        return click.option(
            "--input",
            "input_path",
            required=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="The model to read (an .npz file, as a client receives it).",
        )(command)

    return decorate


def prepare_output(output: Path) -> Path:
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    return output


@run_group.command("train")
@package_options
@model_io_options("Where train writes the updated model (end it in .npz) and OUTPUT-metadata.")
def train(path: Path, env_dir: Path, timeout: float | None, input_path: Path, output: Path) -> None:
    """Run train IN OUT and check it wrote OUT and OUT-metadata with a positive num_examples."""
    output = prepare_output(output)
    suffixed = Path(str(output) + ".npz")
    before = {p: stamp(p) for p in (output, suffixed, metadata_path(output))}
    with user_errors():
        run_entry_point(path, env_dir, "train", [str(input_path.resolve()), str(output)], timeout=timeout)
        model = locate_model(output, suffixed, before)
        if not written(metadata_path(output), before[metadata_path(output)]):
            raise PackageError(
                f"train did not write {metadata_path(output)}; it must call "
                "save_metadata({'num_examples': N, ...}, out_path)"
            )
        metadata = read_train_metadata(output)
    click.echo(f"Model update: {model}")
    click.echo(f"num_examples: {metadata['num_examples']}")
    print_table("train metadata", metadata)


def locate_model(output: Path, suffixed: Path, before: Mapping[Path, Stamp]) -> Path:
    """The model train wrote: OUT, or OUT.npz when numpy appended the suffix to a bare OUT."""
    if written(output, before[output]):
        return output
    if written(suffixed, before[suffixed]):
        click.echo(
            f"Note: numpy appended .npz, so the model is at {suffixed}, not {output}; a client passes "
            "paths ending in .npz, so pass --output ending in .npz.",
            err=True,
        )
        return suffixed
    raise PackageError(f"train did not write the model to {output}; it must save the updated model there")


@run_group.command("validate")
@package_options
@model_io_options("Where validate writes its metrics (a JSON object).")
def validate(path: Path, env_dir: Path, timeout: float | None, input_path: Path, output: Path) -> None:
    """Run validate IN OUT.json and print the metrics it wrote."""
    output = prepare_output(output)
    before = stamp(output)
    with user_errors():
        run_entry_point(path, env_dir, "validate", [str(input_path.resolve()), str(output)], timeout=timeout)
        if not written(output, before):
            raise PackageError(
                f"validate did not write {output}; it must call save_metrics(metrics, out_path)"
            )
        metrics = read_metrics(output)
    print_table(f"metrics ({output})", metrics)


@run_group.command("predict")
@package_options
@model_io_options("Where predict writes its predictions.")
def predict(path: Path, env_dir: Path, timeout: float | None, input_path: Path, output: Path) -> None:
    """Run predict IN OUT and check it wrote OUT."""
    output = prepare_output(output)
    before = stamp(output)
    with user_errors():
        run_entry_point(path, env_dir, "predict", [str(input_path.resolve()), str(output)], timeout=timeout)
        if not written(output, before):
            raise PackageError(f"predict did not write {output}; it must write its predictions there")
    click.echo(f"Predictions: {output}")

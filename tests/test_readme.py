"""The README's commands exist as written: every `scaleout` command line in its shell blocks names a real
command and only options that command has, and its first screen serves the folder `make demo` writes."""

import re
import shlex
from pathlib import Path

import click
import pytest

from scaleout.cli.main import cli

REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / "README.md").read_text()
# That subsection shows the official Scaleout Edge client's own CLI (also named `scaleout`), not ours.
VENDOR_SECTION = re.compile(r"^### The official Scaleout Edge client\n.*?(?=^##)", re.DOTALL | re.MULTILINE)
SHELL_BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)
INLINE = re.compile(r"(?<!`)`((?:\.venv/bin/)?scaleout [a-z][^`]*)`")


def scaleout_lines() -> list[str]:
    """Each `scaleout …` command in the README: in its bash blocks (continuation lines joined, comments
    cut) and in its inline code."""
    ours = VENDOR_SECTION.sub("", README)
    assert len(ours) < len(README), "the official client's subsection is gone: update VENDOR_SECTION"
    lines = [command.removeprefix(".venv/bin/") for command in INLINE.findall(ours)]
    for block in SHELL_BLOCK.findall(ours):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split(" #")[0].strip()
            if re.match(r"^(\.venv/bin/)?scaleout ", command):
                lines.append(command.removeprefix(".venv/bin/"))
    return lines


def resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The click command the words name, and the words after it."""
    command: click.Command = cli
    rest = words[1:]
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    return command, rest


def option_names(command: click.Command) -> set[str]:
    return {name for param in command.params for name in (*param.opts, *param.secondary_opts)}


@pytest.mark.parametrize("line", scaleout_lines())
def test_every_scaleout_command_line_in_the_readme_exists(line: str) -> None:
    command, rest = resolve(shlex.split(line))
    assert rest == [] or not isinstance(command, click.Group), f"{line!r} names no command"
    options = {word.split("=")[0] for word in rest if word.startswith("--")} - {"--help"}
    assert options <= option_names(command), f"{line!r}: {options - option_names(command)}"


def test_the_first_screen_serves_the_folder_make_demo_writes() -> None:
    demo = re.search(r"^demo:.*\n\t(.*)$", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE)
    assert demo is not None
    work_dir = re.search(r"--work-dir (\S+)", demo.group(1))
    assert work_dir is not None
    first_screen = README[: README.index("Everything is installed from PyPI")]
    assert f".venv/bin/scaleout api start --work-dir {work_dir.group(1)}" in first_screen
    assert "http://127.0.0.1:8092/" in first_screen
    assert ".venv/bin/scaleout local examples/mnist-numpy/client --serve" in first_screen

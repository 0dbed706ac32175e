"""What users see when something is wrong: the API unreachable, a wrong token, a server error, a bad
URL; and that every command answers --help."""

import pytest

from scaleout.cli.remote import Endpoint, parse_api_url
from tests.api.conftest import run_api
from tests.cli.conftest import fails, invoke, ok
from tests.e2e.federation import free_port

TOKEN = "s3cret-token"

COMMANDS = [
    ["session"], ["session", "start"], ["session", "list"], ["session", "show"], ["session", "stop"],
    ["model"], ["model", "list"], ["model", "show"], ["model", "download"], ["model", "upload"],
    ["package", "upload"], ["package", "active"], ["validation"], ["validation", "list"],
    ["client", "list"], ["combiner", "list"], ["round"], ["round", "list"], ["init"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command):
    result = ok(None, *command, "--help")
    assert result.output.startswith("Usage: ")


def test_an_unreachable_api_is_one_line_naming_the_url_and_the_fix():
    url = f"http://127.0.0.1:{free_port()}"
    output = fails(None, "session", "list", "--api-url", url)
    assert output.startswith(f"Error: cannot reach the API at {url}: ")
    assert output.rstrip().endswith("is `scaleout api start` running?")
    assert len(output.strip().splitlines()) == 1


def test_init_gives_up_on_an_unreachable_api_after_its_wait_timeout(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    output = fails(None, "init", "--package", str(tmp_path), "--wait-timeout", "0.5", "--api-url", url)
    assert f"cannot reach the API at {url}: no answer within 0.5 s" in output


def test_a_wrong_token_prints_the_apis_401_message(tmp_path):
    with run_api(tmp_path, token=TOKEN) as server:
        output = fails(server, "client", "list", "--token", "wrong")
        assert "HTTP 401: invalid or missing API token" in output
        ok(server, "client", "list", env={"SCALEOUT_API_TOKEN": TOKEN})


def test_a_server_error_prints_the_servers_message(server):
    assert "HTTP 404: Session 'nope' not found" in fails(server, "session", "show", "nope")
    assert "HTTP 400: no seed model" in fails(server, "session", "start", "--no-wait")


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://localhost:8092", Endpoint("localhost", 8092, False)),
        ("https://fl.example.org", Endpoint("fl.example.org", 443, True)),
        ("http://10.0.0.1:9000/api/v1/", Endpoint("10.0.0.1", 9000, False)),
        ("api:8092", Endpoint("api", 8092, False)),
    ],
)
def test_api_urls_are_parsed_for_the_api_client(url, endpoint):
    assert parse_api_url(url) == endpoint


def test_an_api_url_with_another_path_is_a_usage_error():
    result = invoke(None, "session", "list", "--api-url", "http://localhost:8092/other")
    assert result.exit_code == 2 and "give the API's root" in result.output

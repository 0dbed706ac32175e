"""What users see when something is wrong: the API unreachable, a wrong token, a server error, a bad
URL; and that every command answers --help."""

import http.server
import threading
from collections.abc import Iterator

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
    ["client", "list"], ["combiner", "list"], ["round"], ["round", "list"], ["init"], ["event", "list"],
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


class WebPage(http.server.BaseHTTPRequestHandler):
    """Not a scaleout-edge API: a web server answering every path with an HTML page."""

    def do_GET(self) -> None:
        status = 404 if "missing" in self.path else 200
        body = b"<html><head><title>Welcome to nginx!</title></head><body>" + b"x" * 5000 + b"</body></html>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web_page() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WebPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_url_that_is_not_a_scaleout_api_is_one_line_naming_what_answered(web_page):
    output = fails(None, "session", "list", "--api-url", web_page)
    assert output == (
        f"Error: {web_page}/api/v1/sessions/ answered HTTP 200 with text/html (Welcome to nginx!) from "
        f"{WebPage.server_version} {WebPage.sys_version}, not the JSON of a scaleout-edge API: "
        "is the API URL right?\n"
    )
    assert "answered HTTP 404 with text/html" in fails(
        None, "session", "show", "missing", "--api-url", web_page
    )


def test_a_filter_on_an_id_that_matches_nothing_is_an_error(server):
    assert fails(server, "round", "list", "--session-id", "nosuch") == (
        "Error: no session has the id 'nosuch'; `scaleout session list` shows them\n"
    )
    assert "no session has the id '…1a2b3c4d'" in fails(
        server, "validation", "list", "--session-id", "…1a2b3c4d"
    )
    assert f"no session has the id '{'f' * 32}'" in fails(server, "model", "list", "--session-id", "f" * 32)
    assert fails(server, "validation", "list", "--model-id", "nosuch") == (
        "Error: no model has the id 'nosuch'; `scaleout model list` shows them\n"
    )


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

"""The running API against its own OpenAPI document: no 5xx, and every answer matches its documented schema.

schemathesis generates requests (valid and not) for every operation of /openapi.json and sends them to
a real uvicorn on loopback over SQLite and a file repository, with the admin token. Examples per
operation are bounded (EXAMPLES) to keep the run near a minute on two loaded cores.
"""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from scaleout.api.app import create_app
from scaleout.api.settings import ApiSettings
from scaleout.store.entities import Combiner
from tests.api.conftest import ApiServer, run_api

TOKEN = "schemathesis-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 8

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def running_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root: Path = tmp_path_factory.mktemp("schemathesis")
    # An online combiner, so /clients/add can assign (else it answers 503, as documented).
    with run_api(root, token=TOKEN, max_upload_bytes=1024 * 1024, combiner_online_seconds=3600) as server:
        server.statestore.combiners.upsert(
            Combiner(id="combiner", name="combiner", address="127.0.0.1", port=1)
        )
        yield server


# The document the served app answers at /openapi.json (checked below), built at import so pytest can
# make one test per operation.
DOCUMENT = create_app(ApiSettings(token=TOKEN)).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_served_document_is_the_one_tested(running_api: ApiServer) -> None:
    served = httpx.get(f"http://127.0.0.1:{running_api.port}/openapi.json", headers=AUTH)
    assert served.json() == DOCUMENT


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_every_operation_answers_without_5xx_as_documented(
    case: schemathesis.Case, running_api: ApiServer
) -> None:
    case.call_and_validate(
        base_url=f"http://127.0.0.1:{running_api.port}",
        headers=AUTH,
        checks=[not_a_server_error, response_schema_conformance],
    )

"""`scaleout client token …` and `scaleout client enrollment …` against a real API with an admin token."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import ApiServer, run_api
from tests.cli.conftest import fails, invoke, ok

ADMIN = {"SCALEOUT_API_TOKEN": "admin-secret"}


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[ApiServer]:
    with run_api(tmp_path / "api", token=ADMIN["SCALEOUT_API_TOKEN"]) as api_server:
        yield api_server


def test_a_token_is_printed_once_listed_without_its_secret_and_revoked_by_its_short_id(secured: ApiServer):
    created = ok(secured, "client", "token", "create", "--name", "site-a", "--client-id", "a", env=ADMIN)
    token = created.stdout.strip()
    (stored,) = secured.statestore.credentials.list().items
    assert token.startswith(f"{stored.id}.") and "site-a" in created.stderr

    listed = ok(secured, "client", "token", "list", env=ADMIN).stdout
    assert stored.id in listed and "site-a" in listed and token.partition(".")[2] not in listed

    revoked = ok(secured, "client", "token", "revoke", stored.id[-8:], env=ADMIN)
    assert revoked.stdout == f"revoked {stored.id} (site-a) of client a\n"
    assert secured.statestore.credentials.get(stored.id).revoked_at is not None


def test_an_enrollment_secret_lives_as_long_as_asked(secured: ApiServer):
    ok(secured, "client", "enrollment", "create", "--uses", "3", "--expires-in", "2h", env=ADMIN)
    (stored,) = secured.statestore.credentials.list().items
    assert stored.uses_left == 3
    assert 7190 < (stored.expires_at - stored.created_at).total_seconds() <= 7200


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "'soon' is not a duration like 3600, 15m, 12h or 7d"),
        ("0", "'0' must be longer than 0 seconds"),
    ],
)
def test_a_lifetime_that_is_not_a_positive_duration_is_a_usage_error(
    secured: ApiServer, value: str, message: str
):
    result = invoke(secured, "client", "enrollment", "create", "--expires-in", value, env=ADMIN)
    assert result.exit_code == 2 and message in result.output, result.output
    assert secured.statestore.credentials.count() == 0


def test_token_commands_without_the_admin_token_fail_with_the_fix(secured: ApiServer):
    assert "SCALEOUT_API_TOKEN" in fails(secured, "client", "token", "list")

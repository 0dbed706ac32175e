"""Drive our API with another project's API client, as its users' scripts do; print what it answered.

Run by tests/e2e/test_api_clients.py under the interpreter of .venv-fedn (``fedn==0.33.0``'s
``APIClient``) or .venv-official (``scaleout==1.1.0``'s ``Scaleout``): it imports nothing of ours.

    python api_client_driver.py {fedn|scaleout} PORT setup PACKAGE.tgz SEED.npz DOWNLOAD_PATH
    python api_client_driver.py {fedn|scaleout} PORT start
    python api_client_driver.py {fedn|scaleout} PORT read SESSION_ID DOWNLOAD_PATH

Each prints one JSON object: the client's own return values, unchanged. With an admin token, FEDn's
client reads it from FEDN_AUTH_TOKEN, as its users set it; Scaleout's takes it as an access token
provider (its ``token=`` is a refresh token for the Scaleout login flow).
"""

import json
import os
import sys
from typing import Any


def api_client(kind: str, port: int) -> Any:
    if kind == "fedn":
        from fedn.network.api.client import APIClient

        return APIClient("127.0.0.1", port)  # FEDN_AUTH_TOKEN, if set, is sent as a Bearer token
    from scaleout import Scaleout

    token = os.environ.get("SCALEOUT_API_TOKEN")
    return Scaleout("127.0.0.1", port=port, access_token_provider=(lambda: token) if token else None)


def setup(client: Any, package: str, seed: str, download_path: str) -> dict[str, Any]:
    return {
        "package": client.set_active_package(package, helper="numpyhelper", name="compat-package"),
        "seed": client.set_active_model(seed),
        "active_package": client.get_active_package(),
        "checksum": client.get_package_checksum(),
        "download": client.download_package(download_path),
    }


def start(client: Any) -> dict[str, Any]:
    return client.start_session(
        name="compat-session", rounds=2, round_timeout=60, min_clients=2, validate=True
    )


def read(client: Any, session_id: str, download_path: str) -> dict[str, Any]:
    active = client.get_active_model()
    return {
        "active_model": active,
        "trail": client.get_model_trail(),
        "models": client.get_models(session_id=session_id),
        "models_count": client.get_models_count(),
        "session": client.get_session(session_id),
        "session_by_name": client.get_session(name="compat-session"),
        "finished": client.session_is_finished(session_id),
        "rounds": client.get_rounds(),
        "validations": client.get_validations(session_id=session_id),
        "validations_of_model": client.get_validations(model_id=active["model_id"]),
        "statuses": client.get_statuses(session_id=session_id),
        "clients": client.get_clients(),
        "active_clients": client.get_active_clients(),
        "combiners": client.get_combiners(),
        "client_config": client.get_client_config(),
        "controller": client.get_controller_status(),
        "download": client.download_model(active["model_id"], download_path),
    }


def main(kind: str, port: str, command: str, *args: str) -> None:
    client = api_client(kind, int(port))
    steps = {"setup": setup, "start": start, "read": read}
    print(json.dumps(steps[command](client, *args)))


if __name__ == "__main__":
    main(*sys.argv[1:])

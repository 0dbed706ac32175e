"""Getting a package and a seed model into a running federation: `package upload|active`, `model
upload|download`, and `scaleout init`, which must upload nothing when run again."""

import hashlib
from pathlib import Path

import numpy as np

from scaleout.compute_package import create_package, sha256_file
from scaleoututil.helpers.helpers import get_helper
from tests.cli.conftest import as_json, ok
from tests.packages import model_package


def write_seed(path: Path) -> Path:
    return Path(get_helper("numpyhelper").save([np.arange(6, dtype=np.float32).reshape(2, 3)], str(path)))


def test_package_upload_of_a_folder_makes_it_active_with_its_checksum(server, tmp_path):
    package = model_package(tmp_path / "project")
    expected = sha256_file(create_package(package, output_dir=tmp_path / "dist"))

    output = ok(server, "package", "upload", str(package), "--name", "mnist").output

    with server.client() as api:
        active = api.get_active_package()
    assert active["sha256"] == expected and active["name"] == "mnist" and active["active"]
    assert f"sha256 {expected}" in output
    assert "mnist" in ok(server, "package", "active").output
    assert as_json(server, "package", "active") == active


def test_model_upload_prints_the_id_and_download_writes_identical_bytes(server, tmp_path):
    seed = write_seed(tmp_path / "seed.npz")

    output = ok(server, "model", "upload", str(seed)).stdout
    with server.client() as api:
        model_id = api.get_models()["result"][-1]["id"]
    assert output == (
        f"Uploaded seed.npz as model {model_id}; the next session without --model-id starts from it.\n"
    )
    target = tmp_path / "out" / "model.npz"
    ok(server, "model", "download", model_id, "--output", str(target))

    assert target.read_bytes() == seed.read_bytes()
    with server.client() as api:
        assert api.get_model(model_id)["sha256"] == hashlib.sha256(seed.read_bytes()).hexdigest()


def counts(server) -> dict[str, int]:
    with server.client() as api:
        return {family: api.count_entities(family) for family in ("packages", "models")}


def test_init_builds_and_uploads_once_then_uploads_nothing(server, tmp_path):
    package = model_package(tmp_path / "project")
    env = {"SCALEOUT_ENV_DIR": str(tmp_path / "envs")}

    first = ok(server, "init", "--package", str(package), env=env).output
    assert counts(server) == {"packages": 1, "models": 1}
    assert "uploaded and active" in first
    with server.client() as api:
        seed_id = api.get_models()["result"][0]["id"]
        assert seed_id in first
        assert api.get_active_package()["sha256"] == sha256_file(create_package(package, output_dir=tmp_path))

    second = ok(server, "init", "--package", str(package), env=env).output
    assert "Already seeded" in second and "nothing uploaded" in second
    assert counts(server) == {"packages": 1, "models": 1}


def test_init_with_a_given_seed_uploads_it_and_a_changed_package_again(server, tmp_path):
    package = model_package(tmp_path / "project")
    seed = write_seed(tmp_path / "given.npz")
    report = as_json(server, "init", "--package", str(package), "--seed", str(seed))
    assert report["uploaded"] is True
    with server.client() as api:
        assert api.get_model(report["model_id"])["sha256"] == sha256_file(seed)

    (package / "train.py").write_text((package / "train.py").read_text() + "\n# changed\n")
    again = as_json(server, "init", "--package", str(package), "--seed", str(seed))
    assert again["uploaded"] is True and again["package"]["sha256"] != report["package"]["sha256"]
    assert counts(server) == {"packages": 2, "models": 2}

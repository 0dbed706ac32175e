"""A robust round keeps the combiner's memory bounded by the model, not by K models: 16 clients of a
100 MB model, median over their spooled updates, within 400 MB of combiner peak RSS (VmHWM)."""

from pathlib import Path

import numpy as np
import pytest

from scaleoututil.helpers.helpers import get_helper
from tests.e2e.federation import Federation, federation, make_package
from tests.e2e.test_federation import ENV

pytestmark = pytest.mark.timeout(900)

CLIENTS = 16
MODEL_BYTES = 100_000_000
PEAK_RSS_BOUND = 400_000_000

TRAIN = """
import sys
from scaleoututil.helpers.helpers import get_helper, save_metadata

helper = get_helper("numpyhelper")
weights = helper.load(sys.argv[1])
save_metadata({"num_examples": 10}, sys.argv[2])
helper.save([w + 1 for w in weights], sys.argv[2])
"""


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


@pytest.mark.parametrize("aggregator", ["median", "krum"])
def test_a_robust_round_over_16_clients_of_a_100_mb_model_stays_within_400_mb(
    tmp_path: Path, aggregator: str
) -> None:
    with federation(tmp_path, f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models", ENV) as fed:
        fed: Federation
        fed.api.set_active_package(make_package(tmp_path, TRAIN))
        seed = [np.arange(MODEL_BYTES // 4, dtype=np.float32) % 1000]
        seed_id = fed.api.set_active_model(get_helper("numpyhelper").save(seed, str(tmp_path / "seed.npz")))
        combiner = fed.start_combiner()
        for index in range(CLIENTS):
            fed.start_client(f"client-{index}")
        fed.wait_for_clients(CLIENTS)
        Path(f"/proc/{combiner.popen.pid}/clear_refs").write_text("5")  # VmHWM from here on

        session_id = fed.api.start_session(
            rounds=1,
            round_timeout=600,
            min_clients=CLIENTS,
            validate=False,
            aggregator=aggregator,
            aggregator_kwargs={"f": 2} if aggregator == "krum" else {},
            model_id=seed_id,
        )
        session = fed.api.wait_for_session(session_id, 800)

        assert session["status"] == "Finished", session
        rss = peak_rss(combiner.popen.pid)
        assert rss <= PEAK_RSS_BOUND, f"combiner peak RSS {rss / 1e6:.0f} MB"
        (round_,) = fed.api.get_rounds(session_id=session_id)["result"]
        model = get_helper("numpyhelper").load(
            str(fed.api.download_model(round_["model_id"], tmp_path / "m.npz"))
        )
        np.testing.assert_array_equal(model[0], seed[0] + 1)  # every update is seed + 1
        print(f"{aggregator}: combiner peak RSS {rss / 1e6:.0f} MB over {CLIENTS} updates of 100 MB")

"""Data partitions claimed by replicas that share one configuration (docker compose deploy.replicas)."""

import subprocess
import sys
from pathlib import Path

import pytest

from scaleout.client.partition_claim import PartitionsExhausted, claim_partition

HOLD = """
import sys
from pathlib import Path
from scaleout.client.partition_claim import claim_partition

claim = claim_partition(Path(sys.argv[1]), int(sys.argv[2]))
print(claim.partition, flush=True)
sys.stdin.read()  # hold it until killed
"""


def test_clients_sharing_a_folder_claim_different_partitions_until_none_is_left(tmp_path: Path) -> None:
    with claim_partition(tmp_path, 2) as first, claim_partition(tmp_path, 2) as second:
        assert (first.partition, second.partition) == (0, 1)
        with pytest.raises(PartitionsExhausted, match=r"all 2 data partitions in .* SCALEOUT_NUM_PARTITIONS"):
            claim_partition(tmp_path, 2)


def test_a_released_partition_is_claimed_again(tmp_path: Path) -> None:
    first = claim_partition(tmp_path, 3)
    second = claim_partition(tmp_path, 3)
    first.release()
    with claim_partition(tmp_path, 3) as again:
        assert again.partition == 0
    second.release()


def test_a_killed_client_frees_its_partition_for_its_restart(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path), "2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"0"
        with claim_partition(tmp_path, 2) as other:
            assert other.partition == 1  # the live process still holds 0
    finally:
        holder.kill()  # no cleanup runs: the kernel drops the lock with the process
        holder.wait()
    with claim_partition(tmp_path, 2) as restarted:
        assert restarted.partition == 0


def test_the_client_cli_needs_the_partition_count_to_claim_one(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from scaleout.cli.main import cli

    result = CliRunner().invoke(
        cli, ["client", "start", "--partition-claim-dir", str(tmp_path)], env={"SCALEOUT_NUM_PARTITIONS": ""}
    )
    assert result.exit_code == 2
    assert "--partition-claim-dir needs --num-partitions" in result.output


def test_the_client_cli_refuses_a_partition_beyond_the_count() -> None:
    from click.testing import CliRunner

    from scaleout.cli.main import cli

    result = CliRunner().invoke(cli, ["client", "start", "--data-partition", "2", "--num-partitions", "2"])
    assert result.exit_code == 2
    assert "not below --num-partitions 2" in result.output

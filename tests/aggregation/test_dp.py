import numpy as np
from dp_accounting import dp_event, rdp

from scaleout.aggregation.dp import DpOptions, add_noise, dp_options, epsilon, noise_std
from tests.aggregation.models import load, save


def test_noise_has_std_sigma_c_over_k(tmp_path):
    zeros = save(tmp_path / "zero.npz", [np.zeros(1_000_000, dtype=np.float32)])
    options = DpOptions(clip_norm=2.0, noise_multiplier=1.5, delta=1e-5)
    std = noise_std(options, updates=4)
    assert std == 1.5 * 2.0 / 4
    add_noise(zeros, tmp_path / "noisy.npz", std, np.random.default_rng(1))
    (noisy,) = load(tmp_path / "noisy.npz")
    # 1e6 samples: the sample std is within 5 standard errors (std / sqrt(2n)) of the true one
    assert abs(noisy.std() - std) < 5 * std / np.sqrt(2 * noisy.size)
    assert abs(noisy.mean()) < 5 * std / np.sqrt(noisy.size)


def test_epsilon_is_the_rdp_accountants_figure():
    accountant = rdp.RdpAccountant()
    event = dp_event.PoissonSampledDpEvent(0.5, dp_event.GaussianDpEvent(1.1))
    accountant.compose(event, 3)
    assert epsilon(1.1, [0.5, 0.5, 0.5], 1e-5) == accountant.get_epsilon(1e-5)


def test_dp_is_off_without_a_clip_norm_and_delta_defaults_to_1e_5():
    assert dp_options({"server_lr": 0.1}) is None
    assert dp_options({"dp_clip_norm": 1.0}) == DpOptions(1.0, 0.0, 1e-5)

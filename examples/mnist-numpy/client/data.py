"""MNIST-shaped data for the example, built offline: no download, no internet.

scikit-learn ships 1,797 handwritten digits of 8x8 pixels (values 0..16). Each digit is scaled
bilinearly to 20x20 and centred in a 28x28 frame with 4 pixels of padding, which is how MNIST
itself lays out its digits, then scaled to [0, 1]. The set is shuffled once with a fixed seed,
cut into ``SCALEOUT_NUM_PARTITIONS`` disjoint partitions (default 2), one per client, and each
partition is split 80/20 into train and test parts. ``SCALEOUT_DATA_PARTITION`` (0-based,
default 0) picks this client's partition.

``python data.py`` (the ``startup`` entry point) writes the partition to
``data/clients/{partition + 1}/mnist.npz`` next to this file; ``load_data`` reads it back,
creating it first if it is missing. This is the same partitioning as the mnist-pytorch example.
"""

import os

import numpy as np

SEED = 42
TRAIN_FRACTION = 0.8
IMAGE_SIZE = 28
DIGIT_SIZE = 20

dir_path = os.path.dirname(os.path.realpath(__file__))


def _resize_matrix(n_out, n_in):
    """Bilinear interpolation as a matrix: (n_out, n_in), rows sum to 1 (pixel centres aligned)."""
    positions = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    positions = np.clip(positions, 0, n_in - 1)
    lower = np.floor(positions).astype(int)
    upper = np.minimum(lower + 1, n_in - 1)
    frac = positions - lower
    matrix = np.zeros((n_out, n_in))
    matrix[np.arange(n_out), lower] += 1 - frac
    matrix[np.arange(n_out), upper] += frac
    return matrix


def load_digits_28x28():
    """All 1,797 digits as float32 images of shape (N, 28, 28) in [0, 1] and int64 labels (N,)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images / 16.0
    resize = _resize_matrix(DIGIT_SIZE, images.shape[1])
    scaled = np.einsum("ij,njk,lk->nil", resize, images, resize)
    pad = (IMAGE_SIZE - DIGIT_SIZE) // 2
    x = np.zeros((len(images), IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    x[:, pad : pad + DIGIT_SIZE, pad : pad + DIGIT_SIZE] = np.clip(scaled, 0.0, 1.0)
    return x, digits.target.astype(np.int64)


def partition_indices(n_samples, num_partitions, partition):
    """Indices (train, test) of one partition; the same for every call with the same arguments."""
    if num_partitions < 1:
        raise ValueError(f"SCALEOUT_NUM_PARTITIONS must be at least 1, got {num_partitions}")
    if not 0 <= partition < num_partitions:
        raise ValueError(
            f"SCALEOUT_DATA_PARTITION must be in 0..{num_partitions - 1} "
            f"(SCALEOUT_NUM_PARTITIONS={num_partitions}), got {partition}"
        )
    order = np.random.default_rng(SEED).permutation(n_samples)
    part = np.array_split(order, num_partitions)[partition]
    n_train = round(TRAIN_FRACTION * len(part))
    return part[:n_train], part[n_train:]


def partition_from_env():
    """(partition, num_partitions) from SCALEOUT_DATA_PARTITION and SCALEOUT_NUM_PARTITIONS."""
    partition = int(os.environ.get("SCALEOUT_DATA_PARTITION", "0"))
    num_partitions = int(os.environ.get("SCALEOUT_NUM_PARTITIONS", "2"))
    return partition, num_partitions


def make_partition(partition, num_partitions):
    """The partition as numpy arrays: a dict with x_train, y_train, x_test, y_test."""
    x, y = load_digits_28x28()
    train, test = partition_indices(len(x), num_partitions, partition)
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


def default_data_path(partition=None):
    if partition is None:
        partition, _ = partition_from_env()
    return os.path.join(dir_path, "data", "clients", str(partition + 1), "mnist.npz")


def split(out_path=None):
    """Write this client's partition (chosen by the environment) to out_path as an npz file."""
    partition, num_partitions = partition_from_env()
    out_path = out_path or default_data_path(partition)
    arrays = make_partition(partition, num_partitions)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    np.savez(out_path, **arrays)
    return out_path


def load_data(data_path=None, is_train=True):
    """Load the train (or test) part: x float32 (N, 28, 28), y int64 (N,).

    data_path None means this client's default partition file; it is created if missing.
    """
    if data_path is None:
        data_path = default_data_path()
    if not os.path.exists(data_path):
        split(data_path)
    with np.load(data_path) as data:
        if is_train:
            return data["x_train"], data["y_train"]
        return data["x_test"], data["y_test"]


if __name__ == "__main__":
    path = split()
    partition, num_partitions = partition_from_env()
    print(f"Wrote partition {partition + 1} of {num_partitions} to {path}")

"""MNIST-shaped data for the example, built offline: no download, no internet.

scikit-learn ships 1,797 handwritten digits of 8x8 pixels (values 0..16). Each digit is scaled
bilinearly to 20x20 and centred in a 28x28 frame with 4 pixels of padding, which is how MNIST
itself lays out its digits, then scaled to [0, 1]. The set is shuffled once with a fixed seed,
cut into ``SCALEOUT_NUM_PARTITIONS`` disjoint partitions (default 2), one per client, and each
partition is split 80/20 into train and test parts. ``SCALEOUT_DATA_PARTITION`` (0-based,
default 0) picks this client's partition.

The guide's train.py runs one epoch of SGD (lr 0.01, batch 32) a round, sized for MNIST's 30,000
images a client (940 steps); the ~720 training digits of a partition at 2 clients would give it 23
steps a round, too few to learn anything in a handful of rounds. So each training digit is kept as
itself and joined by label-preserving variants (sub-pixel shifts, small rotations, scalings and
slants, a smooth elastic jitter, a thicker or thinner stroke), drawn with a seed fixed per partition,
as many as make about ``TRAIN_IMAGES_PER_CLIENT`` (30,000) training images: some 940 steps a round,
as on MNIST, whatever the number of clients. The test part stays the original digits, and its
digits are never the source of a training variant.

``python data.py`` (the ``startup`` entry point) writes the partition to
``data/clients/{partition + 1}/mnist.pt`` next to this file; ``load_data`` reads it back,
creating it first if it is missing.
"""

import math
import os

import numpy as np

# torch is imported where it is used, so that the partitioning can be checked without it.

SEED = 42
TRAIN_FRACTION = 0.8
IMAGE_SIZE = 28
DIGIT_SIZE = 20
# Each client's training part: its digits and their warped variants, at least this many in all.
TRAIN_IMAGES_PER_CLIENT = 30_000  # as many as a client of the guide's MNIST at 2 clients
AUGMENT_CHUNK = 4096  # images warped at once: bounds the memory of the per-pixel coordinate arrays
# How far the warps go: small enough that a digit stays the digit it was (a 6 never turns into a 9).
MAX_ROTATION_DEGREES = 12.0
SCALE_RANGE = (0.8, 1.05)
MAX_SLANT = 0.2  # horizontal shear, the way handwriting leans
MAX_SHIFT = 1.5  # pixels, in each direction, sub-pixel
ELASTIC_PIXELS = 0.8  # standard deviation of the smooth displacement field
ELASTIC_GRID = 4  # the field is drawn on a 4x4 grid and interpolated: smooth, not noisy
STROKE_RANGE = (-0.5, 0.7)  # < 0 erodes towards a thinner stroke, > 0 dilates towards a thicker one

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


def _stroke(images, amounts):
    """Blend each image towards its 4-neighbour dilation (amount > 0) or erosion (amount < 0)."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    neighbours = np.stack(
        [images, padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]]
    )
    target = np.where(amounts[:, None, None] > 0, neighbours.max(axis=0), neighbours.min(axis=0))
    return images + np.abs(amounts)[:, None, None] * (target - images)


def _sample(images, rows, cols):
    """Bilinear sample of each image at (rows, cols) of the same shape; zero outside the frame."""
    n, size, _ = images.shape
    width = size + 2
    flat = np.pad(images, ((0, 0), (1, 1), (1, 1))).ravel()  # the zero ring out-of-frame reads hit
    rows = np.clip(rows, -1.0, size) + 1.0
    cols = np.clip(cols, -1.0, size) + 1.0
    row0 = np.minimum(rows.astype(np.intp), size)  # floor: coordinates are >= 0 here
    col0 = np.minimum(cols.astype(np.intp), size)
    fr, fc = rows - np.floor(rows), cols - np.floor(cols)  # in float32, not promoted by the ints
    corner = np.arange(n)[:, None, None] * width * width + row0 * width + col0
    top = flat.take(corner) * (1 - fc) + flat.take(corner + 1) * fc
    bottom = flat.take(corner + width) * (1 - fc) + flat.take(corner + width + 1) * fc
    return top * (1 - fr) + bottom * fr


def _matrices(a, b, c, d):
    """Per-image 2x2 matrices [[a, b], [c, d]] from arrays of entries: shape (n, 2, 2)."""
    return np.stack([np.stack([a, b], -1), np.stack([c, d], -1)], -2)


def _warp(images, rng):
    """Each image under its own random affine map (about the frame centre) and elastic field."""
    n, size, _ = images.shape
    angle = np.deg2rad(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES, n))
    scale = rng.uniform(*SCALE_RANGE, n)
    slant = rng.uniform(-MAX_SLANT, MAX_SLANT, n)
    shift = rng.uniform(-MAX_SHIFT, MAX_SHIFT, (n, 2)).astype(np.float32)
    ones, zeros = np.ones(n), np.zeros(n)
    rotate = _matrices(np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle))
    lean = _matrices(ones, zeros, slant, ones)  # on (row, col): col += slant * row
    forward = scale[:, None, None] * rotate @ lean  # sampling needs its inverse
    # (n, 2, 2, 1, 1): each entry broadcasts over the pixels
    inverse = np.linalg.inv(forward).astype(np.float32)[:, :, :, None, None]
    centre = (size - 1) / 2
    grid = np.arange(size, dtype=np.float32) - centre
    rows = grid[None, :, None] - shift[:, 0, None, None]  # (n, size, 1)
    cols = grid[None, None, :] - shift[:, 1, None, None]  # (n, 1, size)
    upsample = _resize_matrix(size, ELASTIC_GRID)
    coarse = rng.normal(0.0, ELASTIC_PIXELS, (n, 2, ELASTIC_GRID, ELASTIC_GRID))
    elastic = (upsample @ coarse @ upsample.T).astype(np.float32)  # (n, 2, size, size), smooth
    source_rows = inverse[:, 0, 0] * rows + inverse[:, 0, 1] * cols + centre + elastic[:, 0]
    source_cols = inverse[:, 1, 0] * rows + inverse[:, 1, 1] * cols + centre + elastic[:, 1]
    return _sample(images, source_rows, source_cols)


def augment(images, seed):
    """(images, source): each image once as itself, then warped variants, all shuffled.

    Every image is the source of the same number of outputs, ``copies_per_digit(len(images))``;
    source[i] is the index in ``images`` that output i was made from, so labels carry over.
    """
    rng = np.random.default_rng(seed)
    n = len(images)
    source = np.tile(np.arange(n), copies_per_digit(n))
    strokes = rng.uniform(*STROKE_RANGE, len(source) - n).astype(np.float32)
    chunks = [images]
    for start in range(n, len(source), AUGMENT_CHUNK):
        stop = min(start + AUGMENT_CHUNK, len(source))
        chunks.append(_warp(_stroke(images[source[start:stop]], strokes[start - n : stop - n]), rng))
    order = rng.permutation(len(source))  # train.py takes its batches in file order
    return np.clip(np.concatenate(chunks)[order], 0.0, 1.0), source[order]


def copies_per_digit(n_digits):
    """How many training images each of n_digits digits becomes (itself included)."""
    return math.ceil(TRAIN_IMAGES_PER_CLIENT / n_digits)


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
    """The partition as numpy arrays: a dict with x_train, y_train, x_test, y_test, train_source.

    The training part is augmented with a seed of its own per (num_partitions, partition);
    train_source holds the index in the 1,797 digits that each training image was made from.
    """
    x, y = load_digits_28x28()
    train, test = partition_indices(len(x), num_partitions, partition)
    x_train, source = augment(x[train], seed=[SEED, num_partitions, partition])
    return {
        "x_train": x_train,
        "y_train": y[train][source],
        "x_test": x[test],
        "y_test": y[test],
        "train_source": train[source],
    }


def default_data_path(partition=None):
    if partition is None:
        partition, _ = partition_from_env()
    return os.path.join(dir_path, "data", "clients", str(partition + 1), "mnist.pt")


def split(out_path=None):
    """Write this client's partition (chosen by the environment) to out_path as torch tensors."""
    import torch

    partition, num_partitions = partition_from_env()
    out_path = out_path or default_data_path(partition)
    arrays = make_partition(partition, num_partitions)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    torch.save({key: torch.from_numpy(value) for key, value in arrays.items()}, out_path)
    return out_path


def load_data(data_path, is_train=True):
    """Load the train (or test) part: x float32 (N, 28, 28), y int64 (N,).

    data_path None means this client's default partition file; it is created if missing.
    """
    import torch

    if data_path is None:
        data_path = default_data_path()
    if not os.path.exists(data_path):
        split(data_path)
    data = torch.load(data_path, weights_only=True)
    if is_train:
        return data["x_train"], data["y_train"]
    return data["x_test"], data["y_test"]


if __name__ == "__main__":
    path = split()
    partition, num_partitions = partition_from_env()
    print(f"Wrote partition {partition + 1} of {num_partitions} to {path}")

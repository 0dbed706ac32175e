"""Softmax regression on 28x28 digits, in numpy only: the `build` entry point writes the seed model.

The model parameters are a list of two arrays, [weights (784, 10), bias (10,)] in float32, saved
with the numpyhelper as an npz file with keys "0" and "1".

``python model.py`` writes ``seed.npz`` to ``$SCALEOUT_BUILD_OUTPUT_DIR`` (default: the current
directory).
"""

import os

import numpy as np

from scaleoututil.helpers.helpers import get_helper

HELPER_MODULE = "numpyhelper"
helper = get_helper(HELPER_MODULE)

N_FEATURES = 28 * 28
N_CLASSES = 10


def init_parameters(seed=0):
    """Small random weights (a near-uniform prediction: accuracy about 1/10) and zero bias."""
    rng = np.random.default_rng(seed)
    weights = (0.01 * rng.standard_normal((N_FEATURES, N_CLASSES))).astype(np.float32)
    bias = np.zeros(N_CLASSES, dtype=np.float32)
    return [weights, bias]


def predict_proba(parameters, x):
    """Class probabilities (N, 10) for images x of shape (N, 28, 28) or (N, 784)."""
    weights, bias = parameters
    logits = x.reshape(len(x), -1) @ weights + bias
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def loss_and_accuracy(parameters, x, y):
    """Mean cross-entropy and accuracy of the model on (x, y), as Python floats."""
    proba = predict_proba(parameters, x)
    loss = -np.mean(np.log(proba[np.arange(len(y)), y] + 1e-12))
    accuracy = np.mean(np.argmax(proba, axis=1) == y)
    return float(loss), float(accuracy)


def gradients(parameters, x, y):
    """Gradients of the mean cross-entropy with respect to [weights, bias]."""
    features = x.reshape(len(x), -1)
    delta = predict_proba(parameters, features)
    delta[np.arange(len(y)), y] -= 1.0
    delta /= len(y)
    return [features.T @ delta, delta.sum(axis=0)]


def save_parameters(parameters, out_path):
    helper.save(parameters, out_path)


def load_parameters(model_path):
    return helper.load(model_path)


def init_seed(out_path="seed.npz"):
    save_parameters(init_parameters(), out_path)


if __name__ == "__main__":
    out_dir = os.environ.get("SCALEOUT_BUILD_OUTPUT_DIR", os.getcwd())
    os.makedirs(out_dir, exist_ok=True)
    out_path = os.path.join(out_dir, "seed.npz")
    init_seed(out_path)
    print(f"Wrote the seed model to {out_path}")

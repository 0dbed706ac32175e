"""The `train` entry point: ``python train.py IN OUT`` (single input, single output).

Reads the global model from IN (an npz file), runs a few epochs of mini-batch SGD on this
client's training partition and writes the update to OUT, plus ``OUT-metadata`` (JSON with the
mandatory ``num_examples``, used to weight the aggregate). The client may pass round settings in
``IN-metadata`` (a JSON object); ``epochs``, ``batch_size`` and ``lr`` are read from it when present.
"""

import json
import os
import sys

import numpy as np
from data import load_data
from model import gradients, load_parameters, loss_and_accuracy, save_parameters

from scaleoututil.helpers.helpers import save_metadata

DEFAULT_SETTINGS = {"epochs": 1, "batch_size": 32, "lr": 0.1}


def round_settings(in_model_path):
    """The default settings, overridden by those the client wrote to IN-metadata, if any."""
    settings = dict(DEFAULT_SETTINGS)
    metadata_path = in_model_path + "-metadata"
    if os.path.exists(metadata_path):
        with open(metadata_path) as f:
            given = json.load(f)
        if isinstance(given, dict):
            settings.update({key: given[key] for key in DEFAULT_SETTINGS if key in given})
    return {
        "epochs": int(settings["epochs"]),
        "batch_size": int(settings["batch_size"]),
        "lr": float(settings["lr"]),
    }


def train(in_model_path, out_model_path, data_path=None):
    settings = round_settings(in_model_path)
    x_train, y_train = load_data(data_path)
    parameters = load_parameters(in_model_path)

    # A fixed seed keeps a client's update reproducible for a given input model.
    rng = np.random.default_rng(0)
    batch_size, lr = settings["batch_size"], settings["lr"]
    for _ in range(settings["epochs"]):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            grads = gradients(parameters, x_train[batch], y_train[batch])
            parameters = [(p - lr * g).astype(p.dtype) for p, g in zip(parameters, grads, strict=True)]

    training_loss, training_accuracy = loss_and_accuracy(parameters, x_train, y_train)
    print(f"Trained {settings['epochs']} epoch(s) on {len(x_train)} examples: loss {training_loss:.4f}")

    metadata = {
        # num_examples is mandatory: the aggregator weights each update by it.
        "num_examples": len(x_train),
        **settings,
        "training_loss": training_loss,
        "training_accuracy": training_accuracy,
    }
    save_metadata(metadata, out_model_path)
    save_parameters(parameters, out_model_path)


if __name__ == "__main__":
    train(sys.argv[1], sys.argv[2])

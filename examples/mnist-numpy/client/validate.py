"""The `validate` entry point: ``python validate.py IN OUT.json``.

Evaluates the model in IN on this client's train and test partitions and writes the metrics as a
JSON object to OUT.json.
"""

import sys

from data import load_data
from model import load_parameters, loss_and_accuracy

from scaleoututil.helpers.helpers import save_metrics


def validate(in_model_path, out_json_path, data_path=None):
    x_train, y_train = load_data(data_path)
    x_test, y_test = load_data(data_path, is_train=False)
    parameters = load_parameters(in_model_path)

    training_loss, training_accuracy = loss_and_accuracy(parameters, x_train, y_train)
    test_loss, test_accuracy = loss_and_accuracy(parameters, x_test, y_test)
    report = {
        "training_loss": training_loss,
        "training_accuracy": training_accuracy,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
    }
    save_metrics(report, out_json_path)


if __name__ == "__main__":
    validate(sys.argv[1], sys.argv[2])

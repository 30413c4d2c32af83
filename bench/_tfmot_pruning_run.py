"""The tfmot 0.8 side of bench_pruning.py; run as a subprocess with TF_USE_LEGACY_KERAS=1.

Usage: python bench/_tfmot_pruning_run.py config.json result.json
Builds the same CNN on tf_keras, loads the Keras 3 baseline's weights, and
runs the same fine-tuning without and with tfmot's pruning wrappers.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times, self._t, self._epoch = [], None, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._t = epoch, None

    def on_train_batch_begin(self, batch, logs=None):
        now = time.perf_counter()
        if self._t is not None and self._epoch >= 1:
            self.times.append(now - self._t)
        self._t = now


def build(cfg):
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input(cfg["input_shape"]),
            L.Conv2D(32, 3, activation="relu", name="conv1"),
            L.MaxPooling2D(name="pool1"),
            L.Conv2D(64, 3, activation="relu", name="conv2"),
            L.MaxPooling2D(name="pool2"),
            L.Conv2D(64, 3, activation="relu", name="conv3"),
            L.Flatten(name="flat"),
            L.Dense(128, activation="relu", name="fc"),
            L.Dense(10, name="logits"),
        ]
    )


def compile_model(model, cfg):
    model.compile(
        optimizer=keras.optimizers.Adam(cfg["lr"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def main():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    data = np.load(cfg["data"])
    x, y, xt, yt = data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    weights = np.load(cfg["baseline_weights"])
    weights = [weights[f"w{i}"] for i in range(len(weights.files))]
    tf.random.set_seed(cfg["seed"])
    np.random.seed(cfg["seed"])

    dense = build(cfg)
    dense.set_weights(weights)
    compile_model(dense, cfg)
    dense_acc = float(dense.evaluate(xt, yt, verbose=0)[1])
    timer_dense = StepTimer()
    dense.fit(x, y, batch_size=cfg["batch_size"], epochs=cfg["epochs"], verbose=0,
              callbacks=[timer_dense], shuffle=True)

    base = build(cfg)
    base.set_weights(weights)
    s = cfg["schedule"]
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        s["initial_sparsity"], s["final_sparsity"], s["begin_step"], s["end_step"],
        power=s["power"], frequency=s["frequency"])
    pruned = tfmot.sparsity.keras.prune_low_magnitude(base, pruning_schedule=schedule)
    compile_model(pruned, cfg)
    timer = StepTimer()
    pruned.fit(x, y, batch_size=cfg["batch_size"], epochs=cfg["epochs"], verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep(), timer], shuffle=True)
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    compile_model(stripped, cfg)
    acc = float(stripped.evaluate(xt, yt, verbose=0)[1])
    sparsity = {}
    for layer in stripped.layers:
        if layer.name in cfg["pruned_layers"]:
            k = layer.get_weights()[0]
            sparsity[layer.name] = float(1 - np.count_nonzero(k) / k.size)
    result = {
        "dense_accuracy_before_finetune": dense_acc,
        "pruned_accuracy": acc,
        "sparsity": sparsity,
        "step_ms_without": 1000 * float(np.median(timer_dense.times)),
        "step_ms_with": 1000 * float(np.median(timer.times)),
        "step_ms_with_mean": 1000 * float(np.mean(timer.times)),
        "step_ms_without_mean": 1000 * float(np.mean(timer_dense.times)),
        "versions": {"tensorflow": tf.__version__, "tfmot": tfmot.__version__,
                     "tf_keras": keras.__version__},
    }
    with open(sys.argv[2], "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()

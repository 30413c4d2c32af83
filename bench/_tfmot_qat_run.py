"""tfmot QAT side of bench_qat.py (runs with TF_USE_LEGACY_KERAS=1, tf_keras + tfmot 0.8).

Reads the float weights and data from an .npz, builds the same CNN in tf_keras,
measures float and QAT training step times, QAT-fine-tunes for the same epochs,
converts to full int8 and prints one JSON line of results.
"""

import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402


def build(input_shape, classes):
    L = keras.layers
    inp = keras.Input(input_shape)
    x = inp
    for i, f in enumerate((16, 32, 32)):
        x = L.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"bn{i + 1}")(x)
        x = L.ReLU(name=f"relu{i + 1}")(x)
        if i < 2:
            x = L.MaxPooling2D(name=f"pool{i + 1}")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(classes, activation="softmax", name="logits")(x)
    return keras.Model(inp, out)


class StepTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._t)


def step_ms(model, x, y, batch_size, steps):
    timer = StepTimer()
    n = batch_size * steps
    model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0, callbacks=[timer])
    return timer.times[3:]


def paired_step_ms(float_model, qat_model, x, y, batch_size, rounds=4, steps=20):
    """Median step times of two models, measured in alternating rounds so that load from
    other processes hits both alike."""
    f, q = [], []
    step_ms(float_model, x, y, batch_size, 5)  # build the train functions
    step_ms(qat_model, x, y, batch_size, 5)
    for _ in range(rounds):
        f += step_ms(float_model, x, y, batch_size, steps)
        q += step_ms(qat_model, x, y, batch_size, steps)
    return float(np.median(f) * 1000), float(np.median(q) * 1000)


def main(path):
    d = np.load(path, allow_pickle=True)
    x_train, y_train, x_test, y_test = d["x_train"], d["y_train"], d["x_test"], d["y_test"]
    weights = list(d["weights"])
    epochs, lr, batch = int(d["epochs"]), float(d["lr"]), int(d["batch_size"])
    tf.keras.utils.set_random_seed(0)
    model = build(x_train.shape[1:], 10)
    model.set_weights(weights)
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    float_acc = float(model.evaluate(x_test, y_test, verbose=0)[1])
    # Step time of float training (on a copy, so the weights QAT starts from stay the same).
    timing = build(x_train.shape[1:], 10)
    timing.set_weights(weights)
    timing.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")

    qat = tfmot.quantization.keras.quantize_model(model)
    qat.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    timing_q = tfmot.quantization.keras.quantize_model(timing)
    timing_q.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    float_ms, qat_ms = paired_step_ms(timing, timing_q, x_train, y_train, batch, rounds=4, steps=20)
    t0 = time.perf_counter()
    qat.fit(x_train, y_train, batch_size=batch, epochs=epochs, verbose=0)
    fit_s = time.perf_counter() - t0
    qat_keras_acc = float(qat.evaluate(x_test, y_test, verbose=0)[1])

    conv = tf.lite.TFLiteConverter.from_keras_model(qat)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    blob = conv.convert()
    interp = tf.lite.Interpreter(model_content=blob)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    s, z = inp["quantization"]
    preds = []
    for xi in x_test:
        q = np.clip(np.round(xi / s + z), -128, 127).astype(np.int8)[None]
        interp.set_tensor(inp["index"], q)
        interp.invoke()
        preds.append(int(np.argmax(interp.get_tensor(out["index"])[0])))
    int8_acc = float(np.mean(np.array(preds) == y_test))
    print(json.dumps({
        "float_accuracy": float_acc,
        "qat_keras_accuracy": qat_keras_acc,
        "int8_accuracy": int8_acc,
        "float_step_ms": float_ms,
        "qat_step_ms": qat_ms,
        "qat_fit_seconds": fit_s,
        "tflite_bytes": len(blob),
    }))


if __name__ == "__main__":
    main(sys.argv[1])

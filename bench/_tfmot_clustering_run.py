"""The tfmot 0.8 side of bench_clustering.py; run as a subprocess with TF_USE_LEGACY_KERAS=1.

Usage: python bench/_tfmot_clustering_run.py config.json out_dir
Builds the demo CNN on tf_keras, loads the Keras 3 baseline's weights (and the
Keras 3 pruned weights, so PCQAT starts from the same zeros), then runs with
tfmot: clustering alone (16 clusters, the same init), CQAT and PCQAT, each
fine-tune as long as ours. Writes the int8 .tflite files and the step times to
out_dir; the main script measures every .tflite the same way.
"""

import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from _tfmot_pruning_run import StepTimer  # the pruning bench's tf_keras step timer

CL = tfmot.clustering.keras
QK = tfmot.quantization.keras
CollabCQAT = tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme


def build(cfg):
    L = keras.layers
    inputs = keras.Input(cfg["input_shape"], name="image")
    x = inputs
    for i, filters in enumerate((32, 64, 128)):
        x = L.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        x = L.MaxPooling2D(name=f"pool{i + 1}")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(64, activation="relu", name="fc")(x)
    x = L.Dropout(0.2, name="dropout")(x)
    return keras.Model(inputs, L.Dense(10, name="logits")(x), name="cnn")


def fit(model, cfg, data, epochs=None, callbacks=()):
    model.compile(optimizer=keras.optimizers.Adam(cfg["lr"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    timer = StepTimer()
    model.fit(data["x_train"], data["y_train"], batch_size=cfg["batch_size"], epochs=epochs or cfg["epochs"],
              verbose=0, callbacks=[*callbacks, timer], shuffle=True)
    return 1000 * float(np.median(timer.times)) if timer.times else None


def int8(model, data, qat):
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if not qat:
        rep = data["x_train"][:200]
        conv.representative_dataset = lambda: ([rep[i : i + 1]] for i in range(len(rep)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def with_weights(cfg, weights):
    model = build(cfg)
    model.set_weights(weights)
    return model


def main():
    cfg = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    data = dict(np.load(cfg["data"]))
    load = lambda f: [w[1] for w in sorted(np.load(f).items(), key=lambda kv: int(kv[0][1:]))]
    base_w, pruned_w = load(cfg["baseline_weights"]), load(cfg["pruned_weights"])
    tf.random.set_seed(cfg["seed"])
    params = dict(number_of_clusters=cfg["clusters"], cluster_centroids_init=CL.CentroidInitialization[cfg["init"]])
    result = {"versions": {"tensorflow": tf.__version__, "tfmot": tfmot.__version__, "tf_keras": keras.__version__}}

    # step times: plain fine-tune and clustered fine-tune, alternated for `rounds` rounds
    plain_ms, wrapped_ms = [], []
    for _ in range(cfg["rounds"]):
        plain_ms.append(fit(with_weights(cfg, base_w), cfg, data, epochs=2))
        wrapped_ms.append(fit(CL.cluster_weights(with_weights(cfg, base_w), **params), cfg, data, epochs=2))
    result["step_ms_plain"], result["step_ms_clustered"] = plain_ms, wrapped_ms

    clustered = CL.cluster_weights(with_weights(cfg, base_w), **params)
    fit(clustered, cfg, data)
    stripped = CL.strip_clustering(clustered)
    files = {"cluster_int8": int8(stripped, data, qat=False)}
    cqat = QK.quantize_apply(QK.quantize_annotate_model(stripped), CollabCQAT())
    fit(cqat, cfg, data)
    files["cqat_int8"] = int8(cqat, data, qat=True)

    sparse = CL.cluster_weights(with_weights(cfg, pruned_w), preserve_sparsity=True, **params)
    fit(sparse, cfg, data)
    sparse = CL.strip_clustering(sparse)
    pcqat = QK.quantize_apply(QK.quantize_annotate_model(sparse), CollabCQAT(preserve_sparsity=True))
    fit(pcqat, cfg, data)
    files["pcqat_int8"] = int8(pcqat, data, qat=True)

    for name, blob in files.items():
        with open(os.path.join(out, f"{name}.tflite"), "wb") as f:
            f.write(blob)
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()

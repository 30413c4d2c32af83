"""Pruned models on the way to a device: int8 TFLite keeps exact zeros; MirroredStrategy."""

import gzip
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_compress.convert import to_tflite
from keras_compress.pruning import (
    ConstantSparsity,
    UpdatePruningStep,
    prune_low_magnitude,
    strip_pruning,
)

L = keras.layers


@pytest.fixture(scope="module")
def pruned_and_dense():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 6, 6, 2)).astype("float32")
    y = rng.integers(0, 4, 128)
    dense = keras.Sequential(
        [keras.Input((6, 6, 2)), L.Conv2D(16, 3, name="conv"), L.ReLU(), L.Flatten(),
         L.Dense(96, activation="relu", name="fc"), L.Dense(4, name="out")]
    )
    dense.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dense.fit(x, y, epochs=1, batch_size=32, verbose=0)
    pruned = prune_low_magnitude(dense, ConstantSparsity(0.8, 0, frequency=1))
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[UpdatePruningStep()])
    return strip_pruning(pruned), dense, x


def _constant_int8_tensors(data):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    out = {}
    for d in interp.get_tensor_details():
        if d["dtype"] == np.int8 and len(d["shape"]) >= 2:
            try:
                out.setdefault(tuple(d["shape"]), []).append(interp.get_tensor(d["index"]))
            except ValueError:
                pass  # activation tensor without data
    return out


def test_int8_tflite_keeps_every_pruned_weight_as_exact_zero(pruned_and_dense):
    stripped, _, x = pruned_and_dense
    data = to_tflite(stripped, quantization="int8", representative_data=x[:32], verbose=False)
    tensors = _constant_int8_tensors(data)
    conv = stripped.get_layer("conv").get_weights()[0]  # (kh, kw, in, out) -> (out, kh, kw, in)
    fc = stripped.get_layer("fc").get_weights()[0]  # (in, out) -> (out, in)
    for name, kernel_tfl in (("conv", np.transpose(conv, (3, 0, 1, 2))), ("fc", fc.T)):
        candidates = tensors[kernel_tfl.shape]
        assert len(candidates) == 1, f"{name}: {len(candidates)} int8 constants of shape {kernel_tfl.shape}"
        q = candidates[0]
        float_zero = kernel_tfl == 0
        assert float_zero.mean() == pytest.approx(0.8, abs=0.02)
        assert np.all(q[float_zero] == 0), f"{name}: a pruned weight is not an int8 zero"
        assert np.count_nonzero(q[~float_zero]) >= 0.95 * (~float_zero).sum()


def test_gzip_size_of_pruned_int8_falls(pruned_and_dense):
    stripped, dense, x = pruned_and_dense
    sizes = {}
    for label, model in (("pruned", stripped), ("dense", dense)):
        data = to_tflite(model, quantization="int8", representative_data=x[:32], verbose=False)
        sizes[label] = len(gzip.compress(data, 9))
    assert sizes["pruned"] < 0.6 * sizes["dense"], sizes


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    import keras, numpy as np
    from keras_compress.pruning import (PolynomialDecay, UpdatePruningStep, prune_low_magnitude,
                                        sparsity_report, strip_pruning)
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6, 6, 1)).astype("float32"); y = rng.integers(0, 3, 64)
    with strategy.scope():
        model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(8, 3),
                                  keras.layers.Flatten(), keras.layers.Dense(3)])
        pruned = prune_low_magnitude(model, PolynomialDecay(0.0, 0.75, 0, 8, frequency=2))
        pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[UpdatePruningStep()])
    rows = sparsity_report(strip_pruning(pruned), print_fn=None)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "sparsity": [r["sparsity"] for r in rows],
                      "iterations": int(pruned.optimizer.iterations.numpy())}))
    """
)


@pytest.mark.slow  # a subprocess imports TensorFlow and trains under MirroredStrategy: 20-30 s
def test_pruning_under_mirrored_strategy_with_two_logical_cpus():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True, env=env, timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["iterations"] == 8
    assert all(abs(s - 0.75) <= 0.02 for s in result["sparsity"]), result


# ---------------------------------------------- models saved by tfmot users (tf_keras, .h5)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "tfmot")


def _expected():
    return np.load(os.path.join(FIXTURES, "expected.npz"))


def test_tf_keras_h5_saved_by_a_tfmot_user_loads_and_prunes():
    """tests/fixtures/tfmot/make_fixtures.py made the file with tf_keras 2.21 (TF_USE_LEGACY_KERAS=1)."""
    path = os.path.join(FIXTURES, "tfkeras_cnn.h5")
    with pytest.raises(TypeError, match="SparseCategoricalCrossentropy"):
        keras.saving.load_model(path)  # tf_keras' compile config (loss, optimizer) does not load
    model = keras.saving.load_model(path, compile=False)
    expected = _expected()
    np.testing.assert_allclose(model.predict(expected["x"], verbose=0), expected["tfkeras_cnn"], atol=1e-5)

    keras.utils.set_random_seed(0)
    pruned = prune_low_magnitude(model, ConstantSparsity(0.5, 0, frequency=1))
    assert [l.name for l in pruned.layers if type(l).__name__ == "PruneLowMagnitude"] == [
        "prune_low_magnitude_conv", "prune_low_magnitude_fc", "prune_low_magnitude_logits"]
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    pruned.fit(rng.random((32, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, 32), batch_size=16,
               verbose=0, callbacks=[UpdatePruningStep()])
    stripped = strip_pruning(pruned)
    for name in ("conv", "fc", "logits"):
        kernel = stripped.get_layer(name).get_weights()[0]
        assert abs((kernel == 0).mean() - 0.5) <= 0.02, name
    np.testing.assert_allclose(
        stripped.predict(expected["x"], verbose=0), pruned.predict(expected["x"], verbose=0), atol=1e-6
    )


def test_h5_still_wrapped_by_tfmot_loads_with_prune_scope_resumes_and_strips():
    from keras_compress.pruning import collect_wrappers, prune_scope

    path = os.path.join(FIXTURES, "tfmot_pruned_cnn.h5")
    with prune_scope():
        model = keras.saving.load_model(path, compile=False)
    expected = _expected()
    np.testing.assert_allclose(model.predict(expected["x"], verbose=0), expected["tfmot_pruned_cnn"], atol=1e-5)
    wrappers = collect_wrappers(model)
    assert len(wrappers) == 8  # tfmot wraps every layer
    steps = {int(w.pruning_step.numpy()) for w in wrappers}
    assert steps == {4}  # 64 samples, batch 16, one epoch
    conv = model.get_layer("prune_low_magnitude_conv")
    mask = keras.ops.convert_to_numpy(conv.masks[0])
    assert abs(1 - mask.mean() - 0.5) <= 0.03 and np.all(conv.layer.get_weights()[0][mask == 0] == 0)

    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(1)
    model.fit(rng.random((32, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, 32), batch_size=16,
              verbose=0, callbacks=[UpdatePruningStep()])
    assert {int(w.pruning_step.numpy()) for w in wrappers} == {6}  # resumed from tfmot's step
    stripped = strip_pruning(model)
    assert [type(l).__name__ for l in stripped.layers][:2] == ["Conv2D", "BatchNormalization"]
    np.testing.assert_allclose(
        stripped.predict(expected["x"], verbose=0), model.predict(expected["x"], verbose=0), atol=1e-6
    )

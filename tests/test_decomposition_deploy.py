"""A decomposed model is an ordinary model: QAT -> full int8 -> Edge TPU check, pruning, distillation."""

from __future__ import annotations

from collections import Counter

import keras
import numpy as np
import pytest

import edgetpu
from keras_compress.convert import to_tflite
from keras_compress.decomposition import decompose, model_macs
from keras_compress.distillation import Distiller
from keras_compress.pruning import (
    UpdatePruningStep,
    prune_filters,
    prune_low_magnitude,
    strip_pruning,
)
from keras_compress.pruning.schedules import ConstantSparsity
from keras_compress.quantization import quantize_model

L = keras.layers

#: conv2 (followed by BN) by channels, conv3 spatially, fc1 by SVD
PLAN = {"conv2": {"ratio": 0.5, "method": "channel"}, "conv3": {"ratio": 0.5, "method": "spatial"}, "fc1": 8}


def _cnn():
    inp = keras.Input((32, 32, 1), name="image")
    h = L.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inp)
    h = L.MaxPooling2D(name="pool1")(h)
    h = L.Conv2D(16, 3, padding="same", use_bias=False, name="conv2")(h)
    h = L.BatchNormalization(name="bn2")(h)
    h = L.ReLU(name="relu2")(h)
    h = L.MaxPooling2D(name="pool2")(h)
    h = L.Conv2D(32, 3, padding="same", activation="relu", name="conv3")(h)
    h = L.MaxPooling2D(name="pool3")(h)
    h = L.Flatten(name="flatten")(h)
    h = L.Dense(32, activation="relu", name="fc1")(h)
    return keras.Model(inp, L.Dense(10, name="logits")(h), name="cnn")


def _compile(model, lr=1e-3):
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def trained(digits):
    (x_train, y_train), _ = digits
    keras.utils.set_random_seed(0)
    model = _compile(_cnn())
    model.fit(x_train, y_train, epochs=4, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def decomposed(trained):
    return decompose(trained, layers=PLAN)


def _ops(blob):
    return Counter(op.op for op in edgetpu.read_model(blob).main.operators)


def test_decomposed_cnn_halves_the_macs_of_its_layers(trained, decomposed):
    names = [l.name for l in decomposed.layers]
    for n in ("conv2", "conv3", "fc1"):
        assert n not in names and f"{n}_a" in names and f"{n}_b" in names
    assert decomposed.get_layer("conv3_a").kernel_size == (3, 1)
    assert decomposed.get_layer("conv2_b").kernel_size == (1, 1)
    assert names.index("conv2_b") + 1 == names.index("bn2")  # BN kept after the second factor
    assert model_macs(decomposed) < 0.6 * model_macs(trained)


@pytest.mark.slow
def test_qat_int8_adds_only_conv_and_fc_and_maps_fully(trained, decomposed, digits):
    (x_train, y_train), (x_test, _) = digits
    blobs, qat_top1 = {}, None
    for name, model in (("baseline", trained), ("decomposed", decomposed)):
        keras.utils.set_random_seed(0)
        qat = _compile(quantize_model(model), 1e-4)
        qat.fit(x_train[:512], y_train[:512], epochs=1, batch_size=32, verbose=0)
        blobs[name] = to_tflite(qat, quantization="int8", verbose=False)  # raises if any float op is left
        qat_top1 = qat.predict(x_test, verbose=0).argmax(-1)
    added = _ops(blobs["decomposed"]) - _ops(blobs["baseline"])
    assert added == Counter({"CONV_2D": 2, "FULLY_CONNECTED": 1})
    assert not _ops(blobs["baseline"]) - _ops(blobs["decomposed"])
    for t in edgetpu.read_model(blobs["decomposed"]).main.tensors:
        assert not t.dtype.startswith("float"), t
    result = edgetpu.check(blobs["decomposed"])
    assert result.fully_mapped and result.fraction_mapped == 1.0, result.format_table()
    int8_top1 = edgetpu.run(edgetpu.make_interpreter(blobs["decomposed"]), x_test).argmax(-1)
    assert np.mean(int8_top1 == qat_top1) > 0.95  # the int8 model computes what the QAT model learned


def test_ptq_int8_of_a_decomposed_model_maps_fully(decomposed, digits):
    (x_train, _), (x_test, _) = digits
    blob = to_tflite(decomposed, quantization="int8", representative_data=x_train[:64], verbose=False)
    assert edgetpu.check(blob).fraction_mapped == 1.0
    float_top1 = decomposed.predict(x_test, verbose=0).argmax(-1)
    int8_top1 = edgetpu.run(edgetpu.make_interpreter(blob), x_test).argmax(-1)
    assert np.mean(int8_top1 == float_top1) > 0.9


def test_magnitude_pruning_and_filter_pruning_apply_to_the_factors(decomposed, digits):
    (x_train, y_train), _ = digits
    pruned = _compile(prune_low_magnitude(decomposed, pruning_schedule=ConstantSparsity(0.5, begin_step=0, frequency=1)))
    pruned.fit(x_train[:128], y_train[:128], epochs=1, batch_size=32, verbose=0, callbacks=[UpdatePruningStep()])
    kernel = strip_pruning(pruned).get_layer("conv3_a").kernel.numpy()
    assert np.mean(kernel == 0) == pytest.approx(0.5, abs=0.02)
    rank = decomposed.get_layer("conv3_a").filters
    smaller = prune_filters(decomposed, 0.5, layers=["conv3_a"])  # removing factor filters lowers the rank
    assert smaller.get_layer("conv3_a").filters == round(rank / 2)
    assert smaller.get_layer("conv3_b").kernel.shape[-2] == round(rank / 2)


@pytest.mark.slow
def test_distillation_from_the_original_recovers_accuracy(trained, digits):
    (x_train, y_train), (x_test, y_test) = digits
    student = decompose(trained, ratio=0.25, layers=["conv2", "conv3", "fc1"])
    before = _compile(student).evaluate(x_test, y_test, verbose=0)[1]
    keras.utils.set_random_seed(0)
    teacher = keras.models.clone_model(trained)  # the Distiller freezes its teacher: keep the fixture trainable
    teacher.set_weights(trained.get_weights())
    distiller = Distiller(teacher, student, temperature=4.0, student_loss_weight=0.5)
    distiller.compile(optimizer=keras.optimizers.Adam(5e-4),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    distiller.fit(x_train, y_train, epochs=2, batch_size=32, verbose=0)
    result = distiller.get_student()
    assert [l.name for l in result.layers] == [l.name for l in student.layers]
    after = _compile(result).evaluate(x_test, y_test, verbose=0)[1]
    assert after > before + 0.02, (before, after)

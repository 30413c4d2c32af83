"""Distiller on keras.distillation: Hinton loss, one default (standardized), pruning/QAT and multi-output
students, projections, strip, save/resume."""

from __future__ import annotations

import numpy as np
import pytest

import keras

from keras_compress.distillation import (
    DistillationError,
    Distiller,
    FeatureDistillation,
    LogitsDistillation,
    distill,
    outputs_probabilities,
)
from keras_compress.errors import CompressError


def _cnn(width, name, softmax=False, classes=3):
    L = keras.layers
    x = inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(width, 3, padding="same", activation="relu", name="conv")(x)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Conv2D(width, 3, padding="same", activation="relu", name="conv2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(classes, activation="softmax" if softmax else None, name="logits")(x)
    return keras.Model(inputs, out, name=name)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.random((48, 8, 8, 1), dtype=np.float32)
    y = (x[:, :4].mean((1, 2, 3)) > x[:, 4:].mean((1, 2, 3))).astype("int32") + (x.mean((1, 2, 3)) > 0.5)
    return x, y.astype("int32")


def _hinton(t, s, temperature):
    def log_softmax(z):
        z = z / temperature
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    lt, ls = log_softmax(t), log_softmax(s)
    return float(np.mean(np.sum(np.exp(lt) * (lt - ls), -1)) * temperature**2)


def test_logits_loss_is_hinton_kl_on_logits_and_on_probabilities():
    rng = np.random.default_rng(1)
    t = rng.normal(size=(5, 4)).astype("float32") * 3
    s = rng.normal(size=(5, 4)).astype("float32")
    expected = _hinton(t, s, 3.0)
    got = float(LogitsDistillation(3.0, standardize=False).compute_loss(t, s))
    assert got == pytest.approx(expected, rel=1e-4)
    # Keras's own class with the default "kl_divergence" string skips the softmax (3.15); ours does not.
    assert got != pytest.approx(float(keras.distillation.LogitsDistillation(3.0).compute_loss(t, s)), rel=1e-3)

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    from_probs = LogitsDistillation(3.0, teacher_from_logits=False, student_from_logits=False, standardize=False)
    assert float(from_probs.compute_loss(softmax(t), softmax(s))) == pytest.approx(expected, rel=1e-3)


def _zscore(z):
    return (z - z.mean(-1, keepdims=True)) / (z.std(-1, keepdims=True) + 1e-6)


def test_standardized_logits_are_the_default_everywhere():
    """LogitsDistillation, the Distiller shortcut and distill() all z-score the logits unless told not to."""
    import inspect

    from keras_compress.distillation import distill

    rng = np.random.default_rng(2)
    t = rng.normal(size=(6, 5)).astype("float32") * 8
    s = rng.normal(size=(6, 5)).astype("float32")
    assert float(LogitsDistillation(4.0).compute_loss(t, s)) == pytest.approx(_hinton(_zscore(t), _zscore(s), 4.0), rel=1e-4)
    assert LogitsDistillation().standardize is True
    assert Distiller(_cnn(4, "t"), _cnn(2, "s")).distillation_losses[0].standardize is True
    assert inspect.signature(distill).parameters["standardize"].default is True


def test_explicit_logits_loss_and_shortcut_train_the_same_student(data):
    """Distiller(t, s, temperature=4) and Distiller(t, s, distillation_losses=LogitsDistillation(4.0)): one student."""
    x, y = data
    keras.utils.set_random_seed(5)
    teacher = _cnn(8, "t")
    students = []
    for spelling in ("shortcut", "explicit"):
        keras.utils.set_random_seed(7)
        student = _cnn(3, f"s_{spelling}")
        if spelling == "shortcut":
            d = Distiller(teacher, student, temperature=4.0, student_loss_weight=0.3)
        else:
            d = Distiller(teacher, student, distillation_losses=LogitsDistillation(temperature=4.0), student_loss_weight=0.3)
        d.compile(keras.optimizers.Adam(1e-2))
        keras.utils.set_random_seed(11)
        d.fit(x, y, epochs=2, batch_size=16, verbose=0)
        students.append(student)
    for a, b in zip(students[0].get_weights(), students[1].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    keras.utils.set_random_seed(7)
    initial = _cnn(3, "fresh").get_weights()  # what both students started from
    assert all(not np.allclose(a, c) for a, c in zip(students[0].get_weights(), initial) if a.ndim > 1)


def _two_heads(width, name):
    L = keras.layers
    x = inputs = keras.Input((8, 8, 1))
    x = L.GlobalAveragePooling2D()(L.Conv2D(width, 3, activation="relu", name="conv")(x))
    return keras.Model(inputs, [L.Dense(3, name="a")(x), L.Dense(2, name="b")(x)], name=name)


def test_multi_output_student_distils_every_output(data):
    """Two-output teacher and student: the loss sums Hinton's term over the outputs (keras.tree), and fit trains.

    Keras 3.15's Distiller cannot pair a label loss with several outputs, so such a student distils from
    the teacher alone (student_loss_weight=0); asking for a label loss is refused up front, by name.
    """
    x, _ = data
    rng = np.random.default_rng(3)
    ta, tb = rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(4, 2)).astype("float32")
    sa, sb = rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(4, 2)).astype("float32")
    loss = LogitsDistillation(2.0)
    both = float(loss.compute_loss([ta, tb], [sa, sb]))
    assert both == pytest.approx(float(loss.compute_loss(ta, sa)) + float(loss.compute_loss(tb, sb)), rel=1e-5)
    assert float(loss.compute_loss({"a": ta, "b": tb}, {"a": sa, "b": sb})) == pytest.approx(both, rel=1e-5)
    keras.utils.set_random_seed(0)
    teacher, student = _two_heads(6, "t"), _two_heads(2, "s")
    with pytest.raises(DistillationError, match="has 2 outputs.*student_loss_weight=0"):
        Distiller(teacher, student)
    d = Distiller(teacher, student, student_loss_weight=0.0)
    d.compile("adam")
    before = student.get_weights()
    d.fit(x, None, epochs=1, batch_size=16, verbose=0)
    assert all(not np.allclose(a, b) for a, b in zip(before, student.get_weights()) if a.ndim > 1)


def test_bad_temperature_and_weights_raise_compress_errors():
    with pytest.raises(CompressError, match="temperature"):
        LogitsDistillation(0.0)
    with pytest.raises(DistillationError, match="student_loss_weight"):
        Distiller(_cnn(4, "t"), _cnn(2, "s"), student_loss_weight=1.5)
    with pytest.raises(DistillationError, match="projection"):
        FeatureDistillation("conv", "conv", projection="linear")


def test_softmax_models_detected_and_label_loss_follows():
    t, s = _cnn(4, "t", softmax=True), _cnn(2, "s")
    assert outputs_probabilities(t) and not outputs_probabilities(s)
    d = Distiller(t, s)
    loss = d.distillation_losses[0]
    assert loss.teacher_from_logits is False and loss.student_from_logits is True


def test_feature_projection_only_when_widths_differ_and_trained(data):
    x, y = data
    keras.utils.set_random_seed(0)
    t, s = _cnn(8, "t"), _cnn(2, "s")
    d = Distiller(t, s, features=[("conv2", "conv2")])
    assert len(d.projections) == 1 and d.projections[0].kernel.shape == (2, 8)
    assert any(v is d.projections[0].kernel for v in d.trainable_variables)
    assert not any(v is w for v in d.trainable_variables for w in t.weights)
    before = d.projections[0].kernel.numpy().copy()
    teacher_before = [w.numpy().copy() for w in t.weights]
    d.compile(keras.optimizers.Adam(1e-2))
    d.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert not np.allclose(before, d.projections[0].kernel.numpy())
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(teacher_before, t.weights))
    # Same widths: no projection.
    assert Distiller(_cnn(4, "t2"), _cnn(4, "s2"), features=[("conv", "conv")]).projections == []


def test_feature_layer_errors_name_the_layer():
    with pytest.raises(DistillationError, match="no layer 'nope'"):
        Distiller(_cnn(4, "t"), _cnn(2, "s"), features=[("conv", "nope")])
    with pytest.raises(DistillationError, match="spatial size"):
        Distiller(_cnn(4, "t"), _cnn(2, "s"), features=[("conv", "conv2")])
    with pytest.raises(DistillationError, match="projection='none'"):
        Distiller(_cnn(4, "t"), _cnn(2, "s"), features=[FeatureDistillation("conv", "conv", projection="none")])


def test_pruned_teacher_is_refused():
    from keras_compress.pruning import prune_low_magnitude

    with pytest.raises(DistillationError, match="strip"):
        Distiller(prune_low_magnitude(_cnn(4, "t")), _cnn(2, "s"))


def test_pruning_student_with_feature_loss_prunes_and_strips(data):
    from keras_compress.pruning import ConstantSparsity, UpdatePruningStep, collect_wrappers, prune_low_magnitude

    x, y = data
    keras.utils.set_random_seed(0)
    student = prune_low_magnitude(_cnn(4, "s"), ConstantSparsity(0.5, 0, frequency=1))
    # "conv2" is found inside its pruning wrapper.
    d = Distiller(_cnn(8, "t"), student, features=[("conv2", "conv2")])
    assert d.distillation_losses[1].student_layer_name == "prune_low_magnitude_conv2"
    # Callbacks see each student wrapper once (feature extractors are hidden).
    assert len(collect_wrappers(d)) == len(collect_wrappers(student)) == 3
    d.compile("adam")
    d.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[UpdatePruningStep()])
    stripped = d.get_student()
    assert not collect_wrappers(stripped)
    k = stripped.get_layer("conv2").kernel.numpy()
    assert 0.45 <= 1 - np.count_nonzero(k) / k.size <= 0.55
    np.testing.assert_allclose(stripped.predict(x, verbose=0), student.predict(x, verbose=0), atol=1e-5)


def test_save_mid_training_and_resume_continues_exactly(tmp_path, data):
    from keras_compress.pruning import PolynomialDecay, UpdatePruningStep, prune_low_magnitude

    x, y = data

    def make():
        keras.utils.set_random_seed(3)
        student = prune_low_magnitude(_cnn(2, "s"), PolynomialDecay(0.0, 0.5, 0, 6, frequency=1))
        d = Distiller(_cnn(4, "t"), student, features=[("conv2", "conv2")], temperature=3.0)
        d.compile(keras.optimizers.Adam(1e-2), metrics=["accuracy"])
        return d

    d = make()
    d.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0, callbacks=[UpdatePruningStep()])
    d.save(tmp_path / "mid.keras")
    resumed = keras.models.load_model(tmp_path / "mid.keras")
    assert isinstance(resumed, Distiller) and resumed.temperature == 3.0
    assert int(resumed.optimizer.iterations) == 3
    for a, b in zip(d.optimizer.variables, resumed.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    d.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0, callbacks=[UpdatePruningStep()])
    resumed.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0, callbacks=[UpdatePruningStep()])
    np.testing.assert_allclose(resumed.predict(x, verbose=0), d.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(resumed.projections[0].kernel.numpy(), d.projections[0].kernel.numpy(), atol=1e-6)


def test_qat_student_distils_with_a_feature_loss(data):
    from keras_compress.convert import is_qat_model
    from keras_compress.quantization import quantize_model

    x, y = data
    keras.utils.set_random_seed(0)
    qat = quantize_model(_cnn(2, "s"))
    student = distill(_cnn(4, "t"), qat, x, y, epochs=1, batch_size=16, features=[("conv2", "conv2")])
    assert student is qat and is_qat_model(student)


def test_distill_helper_adds_pruning_callback_and_strips(data):
    from keras_compress.pruning import ConstantSparsity, collect_wrappers, prune_low_magnitude

    x, y = data
    student = prune_low_magnitude(_cnn(2, "s"), ConstantSparsity(0.5, 0, frequency=1))
    out = distill(_cnn(4, "t"), student, x, y, epochs=1, batch_size=16)
    assert not collect_wrappers(out)
    k = out.get_layer("conv2").kernel.numpy()
    assert 1 - np.count_nonzero(k) / k.size >= 0.45

"""Callbacks that drive pruning in ``model.fit``: step/mask updates and summaries.

Step numbering follows tfmot: the batch run when ``optimizer.iterations == i``
is pruning step ``i + 1``, so ``ConstantSparsity(0.8, 0, frequency=100)`` first
prunes on the 100th batch, and a ``PolynomialDecay`` whose ``end_step`` is a
multiple of ``frequency`` reaches its final sparsity on batch ``end_step``.
The step comes from ``optimizer.iterations`` (restored with a ``.keras``
checkpoint), so a resumed run continues the schedule where it stopped; if the
optimizer is new (0 iterations) but the wrappers recorded a later step, that
recorded step is used.
"""

from __future__ import annotations

import os
import warnings

import keras
import numpy as np

from keras_compress.errors import PruningError
from keras_compress.pruning.wrapper import collect_wrappers

__all__ = ["PruningSummaries", "UpdatePruningStep"]


def _optimizer_step(model) -> int | None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or getattr(optimizer, "iterations", None) is None:
        return None
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


def _recorded_step(wrappers) -> int:
    steps = [int(keras.ops.convert_to_numpy(w.pruning_step)) for w in wrappers if w.built]
    return max(steps, default=-1)


class UpdatePruningStep(keras.callbacks.Callback):
    """Advances the pruning step and updates the masks as the schedules say.

    Required when training a model made by :func:`prune_low_magnitude`. The
    masks are recomputed only on the steps the schedule selects (eagerly, before
    the batch); on all other batches the callback runs no TensorFlow op. At the
    end of each epoch and of training the pruned weights are written as zeros,
    so a saved model holds the sparse weights.

    In a custom training loop, call it as tfmot documents::

        step_callback.set_model(model)
        model.optimizer = optimizer          # optional: the step then follows it
        step_callback.on_train_begin()
        for epoch in range(epochs):
            for x, y in batches:
                step_callback.on_train_batch_begin(batch=-1)
                ...                          # forward, gradients, apply_gradients
            step_callback.on_epoch_end(batch=-1)

    Example:
        >>> model.fit(x, y, epochs=2, callbacks=[UpdatePruningStep()])  # doctest: +SKIP
    """

    def __init__(self):
        super().__init__()
        self.step = 0
        self._groups = []
        self._steps_per_batch = 1

    def on_train_begin(self, logs=None):
        wrappers = collect_wrappers(self.model)
        self._groups = []
        if not wrappers:
            warnings.warn(
                f"UpdatePruningStep: model '{self.model.name}' has no PruneLowMagnitude layer, "
                "so nothing is pruned (wrap it with prune_low_magnitude first)",
                stacklevel=2,
            )
            return
        iterations = _optimizer_step(self.model) or 0
        recorded = _recorded_step(wrappers)
        # self.step = number of the last step already run; the next batch is step + 1.
        self.step = iterations if iterations > 0 or recorded < 0 else recorded
        groups = {}
        for w in wrappers:
            w.callback_attached = True
            groups.setdefault(id(w.pruning_schedule), (w.pruning_schedule, []))[1].append(w)
        self._groups = list(groups.values())
        self._steps_per_batch = int(getattr(self.model, "steps_per_execution", 1) or 1)

    def on_train_batch_begin(self, batch=None, logs=None):
        first, last = self.step + 1, self.step + self._steps_per_batch
        for schedule, wrappers in self._groups:
            # With steps_per_execution > 1 the masks are updated before the chunk
            # that contains a pruning step, at that step's sparsity.
            for s in range(last, first - 1, -1):
                should_prune, sparsity = schedule(s)
                if should_prune:
                    for w in wrappers:
                        if w.built:
                            w.update_masks(s, sparsity)
                    break
        self.step = last

    def _write_back(self):
        for _, wrappers in self._groups:
            for w in wrappers:
                if w.built:
                    w.apply_masks()
                    w.pruning_step.assign(max(self.step, _recorded_step([w])))

    def on_epoch_end(self, epoch=None, logs=None, *, batch=None):
        """Writes the pruned weights as zeros (``batch=`` is tfmot's name for ``epoch``)."""
        self._write_back()

    def on_train_end(self, logs=None):
        self._write_back()


class PruningSummaries(keras.callbacks.Callback):
    """Writes per-layer sparsity and thresholds to TensorBoard logs.

    Scalars ``pruning/<layer>/<weight>/sparsity`` and ``.../threshold`` plus
    ``pruning/sparsity`` (whole model) are written with ``tf.summary`` at the
    optimizer step, at the start and end of every epoch (tfmot logs at the
    start), or every ``update_freq`` batches if an int. Works in tfmot's
    custom training loop too: ``set_model(model)`` then
    ``on_epoch_begin(epoch=-1)`` in each epoch.

    Args:
        log_dir: Directory for the event files (TensorBoard's ``--logdir``), a
            non-empty string or path.
        update_freq: ``"epoch"`` or a number of batches.

    Raises:
        PruningError: (a ``ValueError``, as tfmot's) ``log_dir`` is empty or
            not a string, or ``update_freq`` is invalid.

    Example:
        >>> callbacks = [UpdatePruningStep(), PruningSummaries("logs/prune")]  # doctest: +SKIP
    """

    def __init__(self, log_dir, update_freq="epoch"):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(log_dir):
            raise PruningError(f"log_dir must be a non-empty string, got {log_dir!r}")
        if update_freq != "epoch" and (not isinstance(update_freq, int) or update_freq < 1):
            raise PruningError(f"update_freq must be 'epoch' or an int >= 1, got {update_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.update_freq = update_freq
        self._writer = None

    def _ensure_writer(self):
        if self._writer is None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "pruning"))
        return self._writer

    @staticmethod
    def _scalar(name, value):
        """A TensorBoard scalar written with core TF (no `tensorboard` package needed)."""
        import tensorflow as tf

        metadata = tf.compat.v1.SummaryMetadata(
            plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars")
        )
        tf.summary.write(name, tf.constant(value, tf.float32), metadata=metadata)

    def _log(self):
        wrappers = [w for w in collect_wrappers(self.model) if w.built]
        step = _optimizer_step(self.model)
        if step is None:
            step = max(_recorded_step(wrappers), 0)
        total = zeros = 0
        with self._ensure_writer().as_default(step=step):
            for w in wrappers:
                for mask, threshold in zip(w.masks, w.thresholds):
                    m = keras.ops.convert_to_numpy(mask)
                    name = f"pruning/{w.layer.name}/{mask.path.split('/')[-1][: -len('_mask')]}"
                    self._scalar(f"{name}/sparsity", 1.0 - float(np.mean(m)))
                    self._scalar(f"{name}/threshold", float(keras.ops.convert_to_numpy(threshold)))
                    total += m.size
                    zeros += int(m.size - np.count_nonzero(m))
            self._scalar("pruning/sparsity", zeros / max(total, 1))
        self._writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq != "epoch" and (batch + 1) % self.update_freq == 0:
            self._log()

    def on_epoch_begin(self, epoch=None, logs=None):
        self._log()

    def on_epoch_end(self, epoch=None, logs=None, *, batch=None):
        """Logs the sparsity (``batch=`` is accepted as tfmot's name for ``epoch``)."""
        self._log()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

"""Knowledge distillation that composes with pruning and QAT, on ``keras.distillation``.

Keras 3.12+ ships :class:`keras.distillation.Distiller` with
``LogitsDistillation`` and ``FeatureDistillation``. This package builds on them
and adds what compression needs:

- the student may be a pruning model (:func:`keras_compress.pruning.prune_low_magnitude`)
  or a QAT model (:func:`keras_compress.quantization.quantize_model`); callbacks
  such as :class:`~keras_compress.pruning.UpdatePruningStep` go to ``fit`` as
  usual and find the student's wrappers (and never the teacher's);
- Hinton et al. logits distillation on **standardized** logits (the default
  everywhere: :class:`LogitsDistillation`, :class:`Distiller`, :func:`distill`),
  for models that output logits *or* softmax probabilities (detected), with
  one output or several (``keras.tree``: the term is summed over the outputs;
  Keras 3.15's Distiller fits a several-output student on the teacher alone,
  ``student_loss_weight=0``: its label loss cannot pair several outputs);
- feature distillation between named intermediate layers, with a learned
  projection (a bias-free ``Dense`` on the channel axis, trained with the
  student and dropped afterwards) when the widths differ; student layer names
  are found through pruning / QAT wrappers;
- :meth:`Distiller.get_student` returns the trained student stripped of its
  pruning wrappers, ready for :func:`keras_compress.convert.to_tflite`;
- a whole distiller (teacher, student, projections, optimizer state, pruning
  step) saves to one ``.keras`` file mid-training and resumes with
  ``keras.models.load_model`` then ``fit``.

The loss is Keras's: ``alpha * label_loss + (1 - alpha) * sum_i(w_i * L_i)``,
where ``alpha`` is ``student_loss_weight``. Nothing here seeds a random
generator: call ``keras.utils.set_random_seed`` yourself for repeatable runs.

Modules: ``losses`` (LogitsDistillation, FeatureDistillation), ``distiller``
(Distiller, distill, strip_student).

Example:
    >>> import keras, numpy as np
    >>> from keras_compress.distillation import Distiller
    >>> def cnn(width, name):
    ...     x = inputs = keras.Input((8, 8, 1))
    ...     x = keras.layers.Conv2D(width, 3, activation="relu", name="conv")(x)
    ...     x = keras.layers.GlobalAveragePooling2D()(x)
    ...     return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name=name)
    >>> teacher, student = cnn(16, "teacher"), cnn(4, "student")
    >>> d = Distiller(teacher, student, temperature=4.0, student_loss_weight=0.5,
    ...               features=[("conv", "conv")])   # widths 16 vs 4: learned projection
    >>> d.compile(optimizer="adam")                   # label loss picked from the outputs
    >>> x, y = np.random.rand(16, 8, 8, 1).astype("float32"), np.arange(16) % 3
    >>> _ = d.fit(x, y, epochs=1, verbose=0)
    >>> [l.name for l in d.get_student().layers][-1]
    'logits'
"""

from keras_compress.distillation.distiller import Distiller, distill, strip_student
from keras_compress.distillation.losses import FeatureDistillation, LogitsDistillation, outputs_probabilities
from keras_compress.errors import DistillationError

__all__ = [
    "Distiller",
    "LogitsDistillation",
    "FeatureDistillation",
    "DistillationError",
    "distill",
    "strip_student",
    "outputs_probabilities",
]

"""One compression run = a list of stages. The recipes, the demo and the benches all run through here.

A **stage** is a small function in its own module, ``keras_compress/pipeline/stages/<name>.py``::

    run(spec, artifact, ctx) -> Artifact

- ``spec``: its settings, a frozen dataclass whose fields validate themselves
  (:func:`~keras_compress.pipeline.spec.setting`); a recipe writes it as
  ``- <name>: {field: value, ...}``.
- ``artifact``: an :class:`Artifact` ``(name, model, meta)``: the variant's
  name, a ``keras.Model`` (or .tflite ``bytes`` after ``convert``, ``None``
  before ``build``), and plain facts (``meta["stages"]``: the stages applied
  since the root, ...). A stage returns a new one (``artifact.evolve(...)``);
  it never changes the model it was given in place when it makes a new one.
- ``ctx``: the run's :class:`Context`: data (``ctx.x_train`` ...), the output
  folder (``ctx.folder``, every file recorded in its manifest), the seed,
  ``ctx.say`` (progress), ``ctx.rows``, ``ctx.timings``, the finished
  variants (``ctx.model(name)``, e.g. a teacher) and the recipe's
  distillation settings.

Stages in the registry (:data:`STAGES`): ``build`` (source), ``train``,
``distil``, ``prune``, ``prune_filters``, ``qat``, ``decompose``, ``cluster`` (Keras -> Keras,
usable in a recipe's chains), ``convert`` (Keras -> .tflite) and ``measure`` (a table row)
for every output of a variant, ``report`` (summary, table, HTML) once at the end.

**Per-layer settings.** A spec field declared with
:func:`~keras_compress.pipeline.spec.per_layer` takes one value or a map
``{layer regex: value or null}`` (a :class:`LayerMap`: ``re.search``, the last
matching pattern wins, ``null`` leaves the layer alone, as AI Edge Quantizer's
recipes). A budget search writes its per-layer plan as such maps and applies
it by running the same stages: ``run_chain([("prune", PruneSpec(target_sparsity=LayerMap.of(plan))), ("qat", None)], artifact, ctx)``.

**Seeds.** Before stage ``k`` of a chain (counted from its root), the run
seeds Keras, NumPy and Python with ``seed + k``; stages themselves never seed.
A student built and trained from scratch and the same student distilled thus
start from the same weights and see the same batches.

How to add a stage
------------------
A new method (clustering, low-rank decomposition, 4-bit weights, ...) is
**one stage module + one spec dataclass + one registry entry**, nothing else:

1. ``keras_compress/pipeline/stages/cluster.py``::

       @dataclass(frozen=True, kw_only=True)
       class ClusterSpec(FitSpec):                      # FitSpec: epochs, batch_size, learning_rate
           clusters: LayerMap = setting(per_layer(integer(2, 256)), LayerMap.of(16))
           teacher: str | None = setting(optional(file_name), None)

       def run(spec: ClusterSpec, artifact: Artifact, ctx) -> Artifact:
           from keras_compress.clustering import cluster_weights, strip_clustering
           counts = spec.clusters.select(layer_names(artifact.model), "cluster.clusters", f"layer of {artifact.name!r}")
           ctx.say(f"[cluster] {artifact.name}: {spec.clusters} clusters, {spec.epochs} epochs")
           model = cluster_weights(artifact.model, counts)
           fit(model, ctx, spec, label=artifact.name, teacher=spec.teacher)   # labels, or distilled
           return artifact.evolve(strip_clustering(model), stage="cluster")

       STAGE = Stage("cluster", ClusterSpec, run)     # takes="keras", gives="keras"

2. one line in :data:`~keras_compress.pipeline.registry.STAGES`:
   ``"cluster": "keras_compress.pipeline.stages.cluster",``

Recipes can then write ``- cluster: {clusters: {"conv": 16, "^fc$": 8}, epochs: 3}``
in any variant's ``stages``; validation (field names, types, ranges, NaN,
unknown teachers) comes from the spec, conversion, measurement, the table and
the report from the existing stages. Give the module a docstring with its
recipe form and a doctest, and a test that runs it in a tiny chain
(``tests/test_pipeline.py`` shows how).

Example:
    >>> from keras_compress.pipeline import get_stage, LayerMap
    >>> get_stage("qat").spec().epochs
    2
    >>> LayerMap.of({"conv": 0.5}).resolve(["conv1", "fc"])
    {'conv1': 0.5}
"""

from keras_compress.pipeline.artifact import Artifact
from keras_compress.pipeline.context import Context
from keras_compress.pipeline.fit import DistillationSpec, FitSpec, fit
from keras_compress.pipeline.layermap import LayerMap
from keras_compress.pipeline.registry import STAGES, Stage, get_stage, stage_names
from keras_compress.pipeline.rundir import RunFolder

__all__ = [
    "Artifact",
    "Context",
    "Stage",
    "STAGES",
    "get_stage",
    "stage_names",
    "LayerMap",
    "FitSpec",
    "DistillationSpec",
    "fit",
    "RunFolder",
    "compress",
    "run_stage",
    "run_chain",
    "run_variant",
]


def __getattr__(name: str):
    # The runners import the recipes package, which imports the stage specs from here: load them on first use.
    if name in ("compress", "run_recipe", "run_stage", "run_chain", "run_variant", "open_run", "describe_model"):
        from keras_compress.pipeline import run

        return getattr(run, name)
    raise AttributeError(f"module 'keras_compress.pipeline' has no attribute {name!r}")

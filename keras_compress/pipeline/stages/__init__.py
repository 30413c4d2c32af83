"""One module per stage; each defines its spec dataclass, ``run(spec, artifact, ctx)`` and ``STAGE``.

See :mod:`keras_compress.pipeline` ("How to add a stage") and
:data:`keras_compress.pipeline.registry.STAGES`.

Example:
    >>> from keras_compress.pipeline.stages import prune
    >>> prune.STAGE.name, prune.STAGE.spec is prune.PruneSpec
    ('prune', True)
"""

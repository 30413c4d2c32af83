"""Compress to a budget: per-layer settings searched under size / gzip / MACs / latency / accuracy budgets.

:func:`search` (``keras-compress search``) allocates filter pruning, magnitude
sparsity, low-rank factorization and weight clustering per layer from a cached
sensitivity analysis and a cost model (exact bytes and MACs, latency from a
lookup table measured on this machine), fine-tunes the chosen plan with
distillation from the original, converts it to int8 and measures it on the
target, beside the uniform allocation of the same methods.

Example:
    >>> from keras_compress.search import Plan, Budget
    >>> Plan({"fc": {"sparsity": 0.9}}).describe(), str(Budget.parse("size=25%"))
    ('fc sparsity 0.9', 'size <= 0.25x the original')
"""

from keras_compress.search.apply import apply_oneshot, apply_plan, apply_structure
from keras_compress.search.budget import Budget, parse_budgets
from keras_compress.search.plan import METHODS, Plan
from keras_compress.search.search import TARGETS, SearchResult, search
from keras_compress.search.sensitivity import Sensitivity
from keras_compress.search.space import DEFAULT_METHODS, LEVELS, SearchSpace

__all__ = [
    "search", "SearchResult", "TARGETS", "Plan", "METHODS", "apply_plan", "apply_oneshot", "apply_structure",
    "Budget", "parse_budgets", "SearchSpace", "LEVELS", "DEFAULT_METHODS", "Sensitivity",
]

"""Allocation: the per-layer settings that lose the least predicted accuracy while meeting the budgets.

With damages additive over ``(layer, method)`` choices (the sensitivity
model), picking one rung of each ladder under cost limits is a multiple-choice
knapsack. :func:`greedy` solves it the way AMC / HAQ-style allocators and
MCT's mixed-precision search approximate it, in two passes:

1. *forward*: from no compression, repeatedly take the one-rung step with the
   best ratio of cost removed (the sum, over the budgets still exceeded, of
   the excess it removes, each as a fraction of its limit) to damage added,
   until every budget is predicted to be met;
2. *backward*: undo steps, the most damaging first, while every budget stays
   met (the forward pass overshoots when a late big step makes earlier small
   ones unnecessary).

It takes a few hundred cost evaluations on a small CNN (cached structures,
seconds); an evolutionary search would need thousands of them for the same
answer at this size. :func:`uniform` is the baseline the search is compared
with: one rung per method shared by every layer, the cheapest in damage among
those meeting the budgets.

Example:
    >>> from keras_compress.search.allocate import greedy
    >>> from keras_compress.search.plan import Plan
    >>> damage = {("a", "sparsity", 0.5): 0.01, ("a", "sparsity", 0.9): 0.2, ("b", "sparsity", 0.5): 0.05, ("b", "sparsity", 0.9): 0.06}
    >>> size = {"a": 100, "b": 100}
    >>> def cost(plan):
    ...     return {"size": sum(size[n] * (1 - plan.get(n, "sparsity") if plan.get(n, "sparsity") else size[n]) for n in size)}
    >>> space = {"a": {"sparsity": (0.5, 0.9)}, "b": {"sparsity": (0.5, 0.9)}}
    >>> greedy(space, lambda p: sum(damage[(n, m, v)] for n, s in p.layers.items() for m, v in s.items()),
    ...        cost, {"size": 70}).layers
    {'a': {'sparsity': 0.5}, 'b': {'sparsity': 0.9}}
"""

from __future__ import annotations

import itertools
from typing import Callable, Mapping

from keras_compress.errors import ConfigError
from keras_compress.search.plan import Plan

__all__ = ["greedy", "uniform", "excess", "trajectory_points", "candidate_plans"]

Costs = Callable[[Plan], Mapping[str, float]]


def excess(costs: Mapping[str, float], limits: Mapping[str, float]) -> float:
    """Sum over the budgets of how far ``costs`` exceed them, each as a fraction of its limit (0 if all are met)."""
    return sum(max(costs[m] / limit - 1.0, 0.0) for m, limit in limits.items())


def _steps(space, plan: Plan):
    """Every one-rung step up from ``plan``: ``(layer, method, next setting)``."""
    for name, methods in space.items():
        for method, ladder in methods.items():
            current = plan.get(name, method)
            i = -1 if current is None else ladder.index(current)
            if i + 1 < len(ladder):
                yield name, method, ladder[i + 1]


def _down(ladder, current):
    i = ladder.index(current)
    return ladder[i - 1] if i > 0 else None


def greedy(space: Mapping[str, Mapping[str, tuple]], damage: Callable[[Plan], float], cost: Costs,
           limits: Mapping[str, float], *, start: Plan | None = None, trace: list | None = None) -> Plan:
    """Forward then backward pass (see the module docstring).

    Args:
        space: ``{layer: {method: ladder}}`` (:attr:`SearchSpace.candidates`).
        damage: the predicted damage of a plan (lower is better).
        cost: predicted costs of a plan, ``{metric: value}`` for every metric in ``limits``.
        limits: ``{metric: limit}``, all "at most".
        start: the plan to start from (default: no compression).
        trace: if given, every plan the forward pass visits is appended (for the Pareto front).

    Raises:
        ConfigError: no step can meet the budgets (the message gives the closest the space gets).
    """
    plan = start or Plan()
    cur = excess(cost(plan), limits)
    while cur > 0:
        best, best_score = None, 0.0
        d0 = damage(plan)
        for name, method, value in _steps(space, plan):
            candidate = plan.with_setting(name, method, value)
            gain = cur - excess(cost(candidate), limits)
            if gain <= 1e-12:
                continue
            score = gain / (max(damage(candidate) - d0, 0.0) + 1e-6)
            if score > best_score:
                best, best_score = candidate, score
        if best is None:
            got = ", ".join(f"{m} {cost(plan)[m]:,.4g} (limit {limit:,.4g})" for m, limit in limits.items())
            raise ConfigError(f"the budget cannot be met with these methods and settings: the most compressed "
                              f"plan reached gives {got}; allow more methods or stronger settings")
        plan, cur = best, excess(cost(best), limits)
        if trace is not None:
            trace.append(plan)
    return _backward(space, plan, damage, cost, limits)


def _backward(space, plan: Plan, damage, cost: Costs, limits) -> Plan:
    while True:
        options = []
        for name, settings in plan.layers.items():
            for method, value in settings.items():
                lighter = plan.with_setting(name, method, _down(space[name][method], value))
                options.append((damage(plan) - damage(lighter), lighter))
        for _saving, lighter in sorted(options, key=lambda o: -o[0]):
            if excess(cost(lighter), limits) == 0:
                plan = lighter
                break
        else:
            return plan


def uniform(space: Mapping[str, Mapping[str, tuple]], damage: Callable[[Plan], float], cost: Costs,
            limits: Mapping[str, float]) -> Plan:
    """The best plan with one rung per method for every layer that method can take (the uniform baseline).

    Every combination of rungs (or nothing) across the methods is costed; of
    those predicted to meet ``limits``, the one with the least damage wins.

    Raises:
        ConfigError: no uniform setting meets the budgets.
    """
    methods = sorted({m for ms in space.values() for m in ms})
    ladders = {m: max((ms[m] for ms in space.values() if m in ms), key=len) for m in methods}
    best, best_damage = None, float("inf")
    for rungs in itertools.product(*[(None, *ladders[m]) for m in methods]):
        layers = {n: {m: r for m, r in zip(methods, rungs) if r is not None and m in ms and r in ms[m]}
                  for n, ms in space.items()}
        plan = Plan(layers)
        if excess(cost(plan), limits) == 0 and damage(plan) < best_damage:
            best, best_damage = plan, damage(plan)
    if best is None:
        raise ConfigError("no uniform setting (one per method for every layer) meets the budget")
    return best


def trajectory_points(trace: list[Plan], n: int) -> list[Plan]:
    """Up to ``n`` plans spread evenly along a forward pass's trace (the last one included)."""
    if len(trace) <= n:
        return list(trace)
    step = (len(trace) - 1) / (n - 1) if n > 1 else 0
    return [trace[round(i * step)] for i in range(n)] if n > 1 else [trace[-1]]


def candidate_plans(space: Mapping[str, Mapping[str, tuple]], damage: Callable[[Plan], float], cost: Costs,
                    limits: Mapping[str, float], trace: list | None = None) -> list[Plan]:
    """Distinct plans meeting ``limits``: greedy over every method, greedy over each method alone, the uniform one.

    The first is the greedy plan over all methods (its forward pass goes to
    ``trace``). The additive damage model cannot see how compressions interact,
    so these few alternatives are then measured as whole plans
    (:func:`keras_compress.search.sensitivity.evaluate_plans`).
    """
    methods = sorted({m for ms in space.values() for m in ms})
    subsets = [tuple(methods)] + ([(m,) for m in methods] if len(methods) > 1 else [])
    plans: list[Plan] = []
    for subset in subsets:
        sub = {n: {m: ms[m] for m in subset if m in ms} for n, ms in space.items()}
        try:
            plans.append(greedy({n: ms for n, ms in sub.items() if ms}, damage, cost, limits,
                                trace=trace if subset == tuple(methods) else None))
        except ConfigError:
            if subset == tuple(methods):
                raise
    try:
        plans.append(uniform(space, damage, cost, limits))
    except ConfigError:
        pass
    unique: list[Plan] = []
    for p in plans:
        if p not in unique:
            unique.append(p)
    return unique

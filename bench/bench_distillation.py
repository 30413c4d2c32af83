"""Distillation on load_shapes(), 3 seeds: does the distilled student beat the same student from scratch,
and does a 50%-sparse + QAT distilled student stay within 1 point of the dense distilled one?

Each seed runs the bundled ``shapes_distill`` recipe through the pipeline (the same stages as
``keras-compress run shapes_distill``; the data is fixed, load_shapes(seed=0); the seed sets
weights and batch order):

1. teacher: ``cnn`` width 1.0 (225k parameters), trained on labels (30 epochs).
2. student_scratch: ``cnn`` width 0.375 (32k parameters, 7x fewer), on labels (20 epochs).
3. student_distilled: the same student, *same initial weights* (same seed and stage), same epochs,
   distilled from the teacher (T=4, alpha=0.5, standardized logits: plain Hinton KD with this
   teacher's large logits made the student worse than scratch in our runs).
4. student_distilled_pruned(_qat): the distilled student pruned to 50% while still distilling,
   then quantization-aware fine-tuned with the zeros preserved (still distilling).

Every model is converted to int8 TFLite (PTQ with 200 calibration images; the QAT model from its
own ranges) and evaluated on the 1,000 test images through the TFLite interpreter. Writes
``bench/results/distillation.json`` and prints a table of means and spreads (population std, min, max).

Usage:
    .venv/bin/python bench/bench_distillation.py               # 3 seeds, ~5-8 min per seed on 2 cores
    .venv/bin/python bench/bench_distillation.py --seeds 0 --teacher-epochs 2 --epochs 2   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import machine  # noqa: E402

MODELS = {"teacher": "teacher", "scratch": "student_scratch", "distilled": "student_distilled",
          "pruned_qat": "student_distilled_pruned_qat"}


def overrides(seed: int, args) -> dict:
    """The bench's settings as overrides of the bundled shapes_distill recipe."""
    v = "variants"
    return {
        "seed": seed,
        f"{v}.teacher.stages.0.build.width": args.teacher_width,
        f"{v}.teacher.stages.1.train.epochs": args.teacher_epochs,
        f"{v}.student_scratch.stages.0.build.width": args.student_width,
        f"{v}.student_scratch.stages.1.train.epochs": args.epochs,
        f"{v}.student_distilled.stages.0.build.width": args.student_width,
        f"{v}.student_distilled.stages.1.distil.epochs": args.epochs,
        f"{v}.student_distilled_pruned.stages.0.prune.epochs": args.prune_epochs,
        f"{v}.student_distilled_pruned_qat.stages.0.qat.epochs": args.qat_epochs,
        "distillation.temperature": args.temperature,
        "distillation.alpha": args.alpha,
        "distillation.standardize": args.standardize,
        "measure.latency_runs": 5,
        "report.html": False,
    }


def run_seed(seed: int, args, folder: Path) -> dict:
    """One run of the recipe; per model its Keras and int8 accuracy, size, parameters and sparsity."""
    from keras_compress.pipeline import compress
    from keras_compress.progress import Progress

    say = Progress()
    rows = {r["variant"]: r for r in compress("shapes_distill", folder, overrides=overrides(seed, args), verbose=False,
                                              progress=lambda m: say(f"[seed {seed}] {m}"))}
    out = {"seed": seed, "seconds": json.loads((folder / "run.json").read_text())["seconds"]}
    for key, variant in MODELS.items():
        r = rows[variant]
        out[key] = {"params": r["params"], "keras": r["keras_accuracy"], "int8": r["accuracy"],
                    "int8_bytes": r["size_bytes"], "sparsity": r["sparsity"]}
    say(f"[seed {seed}] int8: " + ", ".join(f"{k} {out[k]['int8']:.2%}" for k in MODELS))
    return out


def stats(values):
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max()), "values": v.tolist()}


def summarize(runs: list[dict]) -> tuple[dict, dict]:
    summary = {}
    for key in MODELS:
        summary[key] = {m: stats([r[key][m] for r in runs]) for m in ("keras", "int8")}
        summary[key]["params"] = runs[0][key]["params"]
    gaps = {
        "distilled_minus_scratch_int8": stats([r["distilled"]["int8"] - r["scratch"]["int8"] for r in runs]),
        "distilled_minus_scratch_keras": stats([r["distilled"]["keras"] - r["scratch"]["keras"] for r in runs]),
        "pruned_qat_minus_distilled_int8": stats([r["pruned_qat"]["int8"] - r["distilled"]["int8"] for r in runs]),
    }
    return summary, gaps


def print_table(summary: dict, gaps: dict, n: int, args) -> None:
    print(f"load_shapes(), {n} seed(s); int8 TFLite test accuracy (1,000 images), mean ± std [min, max]")
    print(f"{'model':<34}{'params':>8}  {'Keras':>22}  {'int8 TFLite':>22}")
    names = {
        "teacher": f"teacher cnn x{args.teacher_width}",
        "scratch": f"student x{args.student_width}, scratch",
        "distilled": f"student x{args.student_width}, distilled",
        "pruned_qat": "distilled, 50% pruned + QAT",
    }
    for key, label in names.items():
        k, q = summary[key]["keras"], summary[key]["int8"]
        print(f"{label:<34}{summary[key]['params']:>8,}  {k['mean']:>13.2%} ± {k['std']:.2%}  {q['mean']:>13.2%} ± {q['std']:.2%}")
    for key, label in (("distilled_minus_scratch_int8", "distilled - scratch (int8):"),
                       ("pruned_qat_minus_distilled_int8", "pruned+QAT - distilled (int8):")):
        g = gaps[key]
        print(f"{label:<34}{g['mean'] * 100:+.2f} pt ± {g['std'] * 100:.2f} [{g['min'] * 100:+.2f}, {g['max'] * 100:+.2f}]")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--teacher-epochs", type=int, default=30)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--prune-epochs", type=int, default=6)
    p.add_argument("--qat-epochs", type=int, default=3)
    p.add_argument("--teacher-width", type=float, default=1.0)
    p.add_argument("--student-width", type=float, default=0.375)
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "distillation.json"))
    args = p.parse_args(argv)

    m = machine()
    with tempfile.TemporaryDirectory(prefix="kc_bench_distil_") as tmp:
        runs = [run_seed(s, args, Path(tmp) / f"seed{s}") for s in args.seeds]
    summary, gaps = summarize(runs)
    result = {
        "settings": vars(args),
        "machine": m,
        "runs": runs,
        "summary": summary,
        "gaps": gaps,
        "done_when": {
            "distilled_beats_scratch": gaps["distilled_minus_scratch_int8"]["mean"] > 0,
            "pruned_qat_within_1pt": gaps["pruned_qat_minus_distilled_int8"]["mean"] >= -0.01,
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print_table(summary, gaps, len(runs), args)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

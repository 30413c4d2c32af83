"""Low-rank decomposition against filter pruning at equal MACs: accuracy, size, MACs, int8 latency.

For each model (the demo CNN and a ResNet-style CNN on digits 32x32; MobileNetV2
alpha 0.35 at 96x96 on digits upsampled, trained as bench_qat.py trains it):

1. train the float baseline; convert it to full int8 (PTQ, 200 calibration images);
2. for every per-layer MAC ratio in ``--ratios``: ``decompose(baseline, ratio=r,
   layers=<every Conv/Dense but the first conv and the classifier>)``
   (method "auto"), and ``prune_filters(baseline, f)`` with ``f`` found by
   bisection so that both models have the same MACs (within 1%);
3. fine-tune both the same way: ``--epochs`` epochs of distillation from the
   baseline (``keras_compress.distillation.Distiller``, T=4, alpha=0.5);
4. convert both to full int8, measure the int8 accuracy on the test split,
   check the int8 model has no float op and what ``edgetpu.check`` predicts;
5. time every int8 model of that model family with ``edgetpu.benchmark``
   (1 thread, XNNPACK), interleaved round by round with the baseline.

Writes bench/results/decomposition.{json,md,png} (or --out). The markdown says,
from the measurements, where low-rank beats filter pruning at equal MACs and
where it does not, and checks the issue's done-when on the demo CNN.

Run (one command; on a quiet machine for the latency figures):
    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python bench/bench_decomposition.py
Smoke test (minutes; figures meaningless):
    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python bench/bench_decomposition.py --quick --out /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import keras
import numpy as np
from _common import RESULTS, interleave, machine, machine_md, md_table, write_results

import edgetpu
from keras_compress.convert import to_tflite
from keras_compress.datasets import load_digits
from keras_compress.decomposition import decompose, model_macs, plan_decomposition
from keras_compress.demo import build_demo_cnn
from keras_compress.distillation import Distiller
from keras_compress.pruning import prune_filters

L = keras.layers


# ---- models ------------------------------------------------------------------------------------


def demo_cnn():
    """The demo's baseline CNN (keras_compress.demo; it moves to the recipe builders with the pipeline restructure)."""
    return build_demo_cnn()


def resnet_cnn(input_shape=(32, 32, 1), classes=10, widths=(16, 32, 64), blocks=2):
    """A ResNet-style CNN: conv stem + max-pool, 3 stages of basic blocks (3x3 conv-BN-ReLU twice, identity or
    1x1-projection shortcut), global average pooling, dense classifier."""
    def conv_bn(x, filters, strides, name, relu=True):
        x = L.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return L.ReLU(name=f"{name}_relu")(x) if relu else x

    inputs = keras.Input(input_shape, name="image")
    x = L.MaxPooling2D(name="stem_pool")(conv_bn(inputs, widths[0], 1, "stem"))
    for s, width in enumerate(widths):
        for b in range(blocks):
            strides = 2 if s > 0 and b == 0 else 1
            name = f"s{s + 1}b{b + 1}"
            y = conv_bn(conv_bn(x, width, strides, f"{name}a"), width, 1, f"{name}b", relu=False)
            if strides != 1 or x.shape[-1] != width:
                x = L.Conv2D(width, 1, strides=strides, use_bias=False, name=f"{name}_proj")(x)
                x = L.BatchNormalization(momentum=0.9, name=f"{name}_proj_bn")(x)
            x = L.ReLU(name=f"{name}_out")(L.Add(name=f"{name}_add")([x, y]))
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(classes, name="logits")(x), name="resnet_cnn")


def mobilenet_v2():
    model = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(96, 96, 3), classes=10)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.momentum = 0.9  # as bench_qat.py: Keras's 0.999 needs far more steps than this short run has
    return model


def digits(size):
    (x_train, y_train), (x_test, y_test) = load_digits(image_size=size)
    if size != 32:
        x_train, x_test = np.repeat(x_train, 3, axis=-1), np.repeat(x_test, 3, axis=-1)
    return x_train, y_train, x_test, y_test


#: name -> (builder, image size, float epochs, learning rate, outputs are logits)
MODELS = {
    "demo_cnn": (demo_cnn, 32, 12, 1e-3, True),
    "resnet_cnn": (resnet_cnn, 32, 12, 2e-3, True),
    "mobilenet_v2": (mobilenet_v2, 96, 8, 2e-3, False),
}


def lowrank_layers(model) -> list[str]:
    """Every Conv / Dense layer but the first conv (few input channels) and the classifier (few outputs)."""
    names = [l.name for l in model.layers if type(l) in (L.Conv2D, L.Dense)]
    return names[1:-1]


# ---- training, variants, conversion ---------------------------------------------------------------


def compile_model(model, lr, logits):
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=logits),
                  metrics=["accuracy"])
    return model


def train_baseline(name, data, args):
    build, _, epochs, lr, logits = MODELS[name]
    x_train, y_train = data[:2]
    keras.utils.set_random_seed(0)
    model = compile_model(build(), lr, logits)
    t0 = time.perf_counter()
    model.fit(x_train, y_train, batch_size=32, epochs=1 if args.quick else epochs, verbose=0)
    return model, time.perf_counter() - t0


def equal_mac_pruning(model, target_macs, tolerance=0.01, steps=14):
    """prune_filters(model, f) with f bisected so its MACs match ``target_macs``; returns (model, f)."""
    lo, hi, best = 0.0, 0.95, None
    for _ in range(steps):
        f = (lo + hi) / 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # layers it cannot shrink (residual Adds, the output) are skipped
            pruned = prune_filters(model, f)
        macs = model_macs(pruned)
        if best is None or abs(macs - target_macs) < abs(model_macs(best[0]) - target_macs):
            best = (pruned, f)
        if abs(macs - target_macs) <= tolerance * target_macs:
            break
        lo, hi = (f, hi) if macs > target_macs else (lo, f)
    return best


def distill(teacher, student, data, epochs, logits):
    """``epochs`` of distillation from ``teacher`` (a copy of it: the Distiller freezes its teacher)."""
    x_train, y_train, _, _ = data
    frozen = keras.models.clone_model(teacher)
    frozen.set_weights(teacher.get_weights())
    keras.utils.set_random_seed(1)
    distiller = Distiller(frozen, student, temperature=4.0, student_loss_weight=0.5)
    distiller.compile(optimizer=keras.optimizers.Adam(5e-4),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits))
    t0 = time.perf_counter()
    distiller.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0)
    return distiller.get_student(), time.perf_counter() - t0


def float_ops(blob) -> list[str]:
    m = edgetpu.read_model(blob).main
    return sorted({op.op for op in m.operators
                   if op.op == "DEQUANTIZE" or any(m.tensors[i].dtype.startswith("float")
                                                   for i in (*op.inputs, *op.outputs) if i >= 0)})


def measure(name, model, data, logits, extra=None):
    """Float accuracy, int8 conversion, int8 accuracy, size, MACs, Edge TPU prediction: one result row."""
    x_train, _, x_test, y_test = data
    compile_model(model, 1e-3, logits)
    float_acc = float(model.evaluate(x_test, y_test, verbose=0)[1])
    blob = to_tflite(model, quantization="int8", representative_data=x_train[:200], verbose=False)
    interpreter = edgetpu.make_interpreter(blob, num_threads=1)
    int8_acc = float(np.mean(edgetpu.run(interpreter, x_test).argmax(-1) == y_test))
    ops = [op.op for op in edgetpu.read_model(blob).main.operators]
    row = {"variant": name, "float_accuracy": float_acc, "int8_accuracy": int8_acc,
           "params": int(model.count_params()), "macs": int(model_macs(model)), "int8_bytes": len(blob),
           "ops": {op: ops.count(op) for op in sorted(set(ops))}, "float_ops": float_ops(blob),
           "edgetpu_mapped": edgetpu.check(blob).fraction_mapped, **(extra or {})}
    return row, blob


def methods_used(baseline, ratio) -> dict:
    """How many layers ``decompose`` factorized with each method, and how many it left alone."""
    counts: dict[str, int] = {}
    for p in plan_decomposition(baseline, ratio=ratio, layers=lowrank_layers(baseline)):
        key = p.method if p.decomposed else "left alone"
        counts[key] = counts.get(key, 0) + 1
    return counts


def float_accuracy(model, data, logits) -> float:
    _, _, x_test, y_test = data
    return float(compile_model(model, 1e-3, logits).evaluate(x_test, y_test, verbose=0)[1])


def variants(baseline, ratio):
    """``(low-rank model, filter-pruned model with the same MACs, pruned fraction)`` at one per-layer ratio."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # layers where no factorization saves MACs are left alone (listed in JSON)
        lowrank = decompose(baseline, ratio=ratio, layers=lowrank_layers(baseline))
    pruned, fraction = equal_mac_pruning(baseline, model_macs(lowrank))
    return lowrank, pruned, fraction


def time_int8(blobs: dict, args) -> dict:
    """Median latency (ms) of every int8 model, 1 thread, interleaved round by round."""
    interpreters = {k: edgetpu.make_interpreter(b, num_threads=1) for k, b in blobs.items()}
    tasks = {k: (lambda i=i: edgetpu.benchmark(i, runs=args.runs, warmup=args.warmup)["median_ms"])
             for k, i in interpreters.items()}
    per_round = interleave(tasks, args.rounds)
    return {k: {"median_ms": float(np.median(v)), "min_ms": float(min(v)), "max_ms": float(max(v)),
                "rounds_ms": v} for k, v in per_round.items()}


def run_model(name, args) -> dict:
    _, size, _, _, logits = MODELS[name]
    data = digits(size)
    print(f"[{name}] training the baseline", file=sys.stderr, flush=True)
    baseline, train_s = train_baseline(name, data, args)
    row, blob = measure("baseline", baseline, data, logits, {"method": "baseline", "setting": None, "ratio": None})
    rows, blobs = [row], {"baseline": blob}
    for ratio in args.ratios:
        lowrank, pruned, fraction = variants(baseline, ratio)
        for method, student, setting in (("lowrank", lowrank, ratio), ("pruned", pruned, fraction)):
            key = f"{method}@{ratio}"
            print(f"[{name}] {key}: {model_macs(student) / model_macs(baseline):.1%} MACs, fine-tuning",
                  file=sys.stderr, flush=True)
            before = float_accuracy(student, data, logits)
            tuned, ft_s = distill(baseline, student, data, args.epochs, logits)
            extra = {"method": method, "setting": setting, "ratio": ratio, "float_accuracy_before_finetune": before,
                     "finetune_seconds": ft_s}
            if method == "lowrank":
                extra["layer_methods"] = methods_used(baseline, ratio)
            row, blob = measure(key, tuned, data, logits, extra)
            rows.append(row)
            blobs[key] = blob
    print(f"[{name}] timing {len(blobs)} int8 models, {args.rounds} interleaved rounds", file=sys.stderr, flush=True)
    latency = time_int8(blobs, args)
    for row in rows:
        row["latency"] = latency[row["variant"]]
    return {"model": name, "train_seconds": train_s, "finetune_epochs": args.epochs,
            "data": f"digits {size}x{size} ({len(data[0])} train / {len(data[2])} test)", "rows": rows}


# ---- verdicts, tables, plot ---------------------------------------------------------------------


def verdicts(result) -> list[str]:
    """One line per ratio: which method is ahead on int8 accuracy and on latency at (nearly) equal MACs."""
    rows = {r["variant"]: r for r in result["rows"]}
    base = rows["baseline"]
    lines = []
    for ratio in sorted({r["ratio"] for r in result["rows"] if r["ratio"] is not None}, reverse=True):
        lr, pf = rows[f"lowrank@{ratio}"], rows[f"pruned@{ratio}"]
        d_acc = 100 * (lr["int8_accuracy"] - pf["int8_accuracy"])
        lat_lr, lat_pf = lr["latency"]["median_ms"], pf["latency"]["median_ms"]
        overlap = not (lr["latency"]["max_ms"] < pf["latency"]["min_ms"] or pf["latency"]["max_ms"] < lr["latency"]["min_ms"])
        acc = (f"{'ahead of' if d_acc > 0 else 'behind'} filter pruning by {abs(d_acc):.2f} points of int8 accuracy"
               if round(d_acc, 2) else "level with filter pruning on int8 accuracy")
        lat_word = "within the round range of" if overlap else ("faster than" if lat_lr < lat_pf else "slower than")
        lines.append(
            f"{result['model']}, {lr['macs'] / base['macs']:.0%} vs {pf['macs'] / base['macs']:.0%} of the baseline's "
            f"MACs: low-rank is {acc} ({lr['int8_accuracy']:.2%} vs {pf['int8_accuracy']:.2%}) and {lat_word} it "
            f"({lat_lr:.3f} vs {lat_pf:.3f} ms)."
        )
    return lines


def done_when(result) -> list[str]:
    """The issue's bar on the demo CNN: <= 50% MACs, within 1.0 point of the baseline's int8 accuracy, faster."""
    rows = result["rows"]
    base = rows[0]
    out = []
    for r in rows:
        if r["method"] != "lowrank" or r["macs"] > 0.5 * base["macs"]:
            continue
        gap = 100 * (base["int8_accuracy"] - r["int8_accuracy"])
        where = (f"{gap:.2f} points below" if gap > 0 else f"{-gap:.2f} points above") if round(gap, 2) else "equal to"
        faster = r["latency"]["max_ms"] < base["latency"]["min_ms"]
        ok = gap <= 1.0 and faster
        out.append(
            f"{r['variant']}: {r['macs'] / base['macs']:.1%} of the MACs, int8 accuracy {r['int8_accuracy']:.2%} vs "
            f"{base['int8_accuracy']:.2%} ({where} the baseline), {result['finetune_epochs']} epochs of "
            f"distillation; int8 latency {r['latency']['median_ms']:.3f} ms vs {base['latency']['median_ms']:.3f} ms "
            f"(slowest round {r['latency']['max_ms']:.3f} vs fastest baseline round {base['latency']['min_ms']:.3f}): "
            f"{'met' if ok else 'NOT met'}"
        )
    return out or ["no low-rank variant at <= 50% of the MACs was run"]


def model_table(result) -> str:
    base = result["rows"][0]
    body = []
    for r in result["rows"]:
        lat = r["latency"]
        setting = "-" if r["setting"] is None else (f"ratio {r['setting']}" if r["method"] == "lowrank"
                                                    else f"fraction {r['setting']:.3f}")
        before = r.get("float_accuracy_before_finetune")
        body.append([
            r["variant"], setting, f"{r['macs']:,} ({r['macs'] / base['macs']:.0%})", f"{r['params']:,}",
            "-" if before is None else f"{before:.2%}", f"{r['float_accuracy']:.2%}", f"{r['int8_accuracy']:.2%}",
            f"{lat['median_ms']:.3f} ({lat['min_ms']:.3f}-{lat['max_ms']:.3f})",
            f"{base['latency']['median_ms'] / lat['median_ms']:.2f}x", f"{r['edgetpu_mapped']:.0%}",
            ", ".join(r["float_ops"]) or "none",
        ])
    header = ["variant", "setting", "MACs", "params", "float acc. before fine-tune", "float acc.", "int8 acc.",
              "int8 latency ms, 1 thr (round range)", "speed-up", "Edge TPU (pred.)", "float ops"]
    return md_table(header, body)


def plot(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(11, 3.6 * len(results)), squeeze=False)
    for (ax_macs, ax_lat), result in zip(axes, results):
        base = result["rows"][0]
        for method, style in (("lowrank", "o-"), ("pruned", "s--")):
            rows = sorted((r for r in result["rows"] if r["method"] == method), key=lambda r: r["macs"])
            acc = [100 * r["int8_accuracy"] for r in rows]
            label = "low-rank (decompose)" if method == "lowrank" else "filter pruning (prune_filters)"
            ax_macs.plot([r["macs"] / 1e6 for r in rows], acc, style, label=label)
            ax_lat.plot([r["latency"]["median_ms"] for r in rows], acc, style, label=label)
        for ax, x in ((ax_macs, base["macs"] / 1e6), (ax_lat, base["latency"]["median_ms"])):
            ax.plot([x], [100 * base["int8_accuracy"]], "k*", markersize=12, label="baseline")
            ax.set_ylabel("int8 accuracy (%)")
            ax.grid(alpha=0.3)
        ax_macs.set_title(f"{result['model']}: accuracy vs MACs")
        ax_macs.set_xlabel("MACs (millions)")
        ax_lat.set_title(f"{result['model']}: accuracy vs int8 latency (1 thread)")
        ax_lat.set_xlabel("median latency (ms)")
        ax_macs.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def markdown(results, m, args) -> str:
    parts = [
        "# Low-rank decomposition vs filter pruning at equal MACs",
        "",
        (f"Per-layer MAC ratios {args.ratios}; each low-rank model is matched by a `prune_filters` model with the "
        f"same MACs (bisection on the fraction, within 1%). Both fine-tuned {args.epochs} epochs by distillation "
        "from the baseline, then converted to full int8 (PTQ, 200 calibration images). Latency: `edgetpu.benchmark`, "
        f"1 thread, XNNPACK, median of {args.rounds} interleaved rounds x {args.runs} invokes (range over rounds). "
        f"CPU int8 features: {', '.join(m.get('simd') or [])} (no VNNI means int8 is about as fast as float32 "
        "here). Accuracy differences of a point or two are a handful of test images (see each model's heading)."),
        "",
        "## Done-when (demo CNN)",
        "",
    ]
    for result in results:
        if result["model"] == "demo_cnn":
            parts += [f"- {line}" for line in done_when(result)]
    parts += ["", "## Where low-rank beats filter pruning, and where not (measured)", ""]
    for result in results:
        parts += [f"- {line}" for line in verdicts(result)]
    for result in results:
        n_test = int(re.search(r"(\d+) test", result["data"]).group(1))
        heading = (f"## {result['model']} ({result['data']}: one test image is {100 / n_test:.2f} points; "
                   f"baseline trained in {result['train_seconds']:.0f} s)")
        parts += ["", heading, "", model_table(result), ""]
        methods = {r["variant"]: r["layer_methods"] for r in result["rows"] if r.get("layer_methods")}
        parts.append("Layers by method (auto): " + "; ".join(f"{k}: {v}" for k, v in methods.items()))
    parts += ["", "![accuracy vs MACs and latency](decomposition.png)"]
    return "\n".join(parts)


def render(path: Path, out: Path) -> int:
    """Markdown and plot again from a finished run's JSON (no training, no timing)."""
    payload = json.loads(path.read_text())
    args = argparse.Namespace(**payload["args"])
    out.mkdir(parents=True, exist_ok=True)
    plot(payload["results"], out / "decomposition.png")
    md = markdown(payload["results"], payload["machine"], args)
    machine_line = payload["machine"]
    (out / "decomposition.md").write_text(md.rstrip() + "\n\n" + machine_md(machine_line) + "\n")
    print(f"wrote {out / 'decomposition.md'}, {out / 'decomposition.png'}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke test: 1 training epoch, one ratio, short timing")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {list(MODELS)}")
    p.add_argument("--ratios", default="0.6,0.45,0.3", help="per-layer MAC ratios for decompose")
    p.add_argument("--epochs", type=int, default=5, help="fine-tuning (distillation) epochs per variant")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--render", metavar="JSON", help="only rewrite the markdown and plot from a results JSON")
    args = p.parse_args(argv)
    if args.render:
        return render(Path(args.render), Path(args.out))
    args.ratios = [float(r) for r in args.ratios.split(",")]
    if args.quick:
        args.ratios, args.epochs, args.rounds, args.runs = [0.45], 1, 2, 20
    models = args.models.split(",")
    unknown = [n for n in models if n not in MODELS]
    if unknown:
        print(f"bench_decomposition: unknown model(s) {unknown}; expected some of {list(MODELS)}", file=sys.stderr)
        return 2
    m = machine()
    results = [run_model(name, args) for name in models]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(results, out / "decomposition.png")
    payload = {"machine": m, "args": {k: v for k, v in vars(args).items()}, "results": results}
    j, md = write_results("decomposition", payload, markdown(results, m, args), out)
    print(md.read_text())
    print(f"wrote {j}, {md}, {out / 'decomposition.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)

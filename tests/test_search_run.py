"""keras_compress.search end to end: a tiny model searched under a budget, on the CPU and for the Edge TPU; the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from keras_compress.search import Plan, apply_plan
from search_helpers import tiny_model

FAST = dict(fine_tune_epochs=1, recovery_steps=0, candidate_steps=0, pareto_points=2, calibration_samples=32)


@pytest.fixture(scope="module")
def searched(tiny, data8, tmp_path_factory):
    from keras_compress.search import search

    out = tmp_path_factory.mktemp("search")
    lines: list[str] = []
    result = search(tiny, data8, budget=["size=50%", "accuracy=-20pt"], methods=("filters", "sparsity"),
                    out_dir=out, progress=lines.append, **FAST)
    return result, out, lines


def test_search_meets_the_budget_as_measured_and_writes_its_outputs(searched):
    result, out, lines = searched
    s = json.loads((out / "summary.json").read_text())
    original, mine = s["original"]["measured"], s["searched"]["measured"]
    assert mine["size"] == (out / "model.tflite").stat().st_size <= 0.5 * original["size"]
    assert s["searched"]["met"] == {"size": True, "accuracy": True}
    assert s["uniform"] is not None and s["uniform"]["measured"]["size"] <= s["limits"]["size"]
    assert len(s["candidates"]) >= 1 and all("accuracy" in c["measured"] for c in s["candidates"])
    assert np.isfinite(s["searched"]["latency_model_error"])  # predicted latency against the measured one
    assert s["machine"]["cpu"] and "measured" in s["latency_source"]
    assert any(line.startswith("search: every budget met as measured") for line in lines)
    html = (out / "report.html").read_text()
    assert "id='pareto'" in html and "Budgets" in html and "searched" in html


def test_plan_file_reapplies_to_the_same_architecture(searched, tiny):
    import keras

    result, out, _ = searched
    plan = Plan.from_json((out / "plan.json").read_text(), str(out / "plan.json"))
    assert plan == result.plan and plan.layers
    again = apply_plan(tiny, plan)  # one-shot: same architecture as the searched model
    saved = keras.saving.load_model(out / "model.keras", compile=False)
    assert [(w.path, tuple(w.shape)) for w in again.weights] == [(w.path, tuple(w.shape)) for w in saved.weights]


def test_edgetpu_target_maps_everything_and_fits_the_cache(tiny, data8):
    from keras_compress.search import search

    result = search(tiny, data8, budget=["macs=50%"], target="edgetpu", methods=("filters",), compare_uniform=False,
                    progress=lambda _m: None, **FAST)
    e = result.summary["edgetpu"]
    assert e["fraction_mapped"] == 1.0 and e["status"] == 0 and e["fits_cache"]
    assert "estimated" in result.summary["latency_source"]
    assert result.summary["searched"]["met"] == {"macs": True, "size": True}  # the cache is a size limit too


# --- CLI ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["missing.keras", "--budget", "size=25%"], ["missing.keras: no such file"]),
        (["model.h5", "--budget", "size=25%"], ["model.h5: expected a .keras model file"]),
        (["model.keras", "--budget", "size=lots"], ["'size=lots'", "unit"]),
        (["model.keras", "--budget", "size=25%", "--methods", "filters,magic"], ["--methods", "filters,magic"]),
        (["model.keras", "--budget", "size=25%", "--epochs", "0"], ["--epochs 0"]),
    ],
)
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(args, words, tmp_path, capsys, monkeypatch):
    from keras_compress.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.keras").write_bytes(b"not read before the arguments are checked")
    (tmp_path / "model.h5").write_bytes(b"")
    status = main(["search", *args, "--data", "digits", "--out", "out"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("keras-compress search: error:")
    for w in words:
        assert w in err[0]
    assert not (tmp_path / "out").exists()


def test_cli_refuses_to_overwrite_the_input_model(tmp_path, capsys):
    from keras_compress.cli import main

    (tmp_path / "model.keras").write_bytes(b"x")
    status = main(["search", str(tmp_path / "model.keras"), "--data", "digits", "--budget", "size=25%", "--out", str(tmp_path)])
    assert status == 2 and "would overwrite the input model" in capsys.readouterr().err
    assert (tmp_path / "model.keras").read_bytes() == b"x"


def _wait_for(proc, path: Path, entries: int, timeout: float = 240) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if path.exists():
            try:
                if len(json.loads(path.read_text())["entries"]) >= entries:
                    return
            except (ValueError, KeyError):
                pass
        if proc.poll() is not None:
            raise AssertionError(f"search ended early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError(f"no {entries} entries in {path} after {timeout} s")


@pytest.mark.slow
def test_ctrl_c_during_sensitivity_then_resume_recomputes_nothing_finished(tmp_path):
    """The CLI's Ctrl-C (SIGINT) stops the analysis with exit 130; the same command resumes from the cache."""
    from keras_compress.datasets import load_digits

    tiny_model((32, 32, 1), load_digits(), epochs=1).save(tmp_path / "tiny.keras")
    cmd = [sys.executable, "-m", "keras_compress.cli", "search", str(tmp_path / "tiny.keras"), "--data", "digits",
           "--budget", "size=50%", "--methods", "sparsity,clusters", "--out", str(tmp_path / "out")]
    cache = tmp_path / "out" / "sensitivity.json"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    first = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    _wait_for(first, cache, 2)
    first.send_signal(signal.SIGINT)
    _, err1 = first.communicate(timeout=120)
    assert first.returncode == 130, err1
    done = set(json.loads(cache.read_text())["entries"])
    second = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    _wait_for(second, cache, len(done) + 2)
    second.send_signal(signal.SIGINT)
    _, err2 = second.communicate(timeout=120)
    assert second.returncode == 130
    resumed = [line for line in err2.splitlines() if "from the cache" in line]
    assert resumed and f"; {len(done)} from the cache" in resumed[0], err2
    computed = [line.split("] ", 1)[1].split(":")[0] for line in err2.splitlines() if line.startswith("sensitivity [")]
    assert computed and not {c.replace(" ", "|") for c in computed} & done

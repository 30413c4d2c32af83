"""`keras-compress`: convert, and every bad-input path of the CLI: one line, exit 2, nothing written; Ctrl-C: 130."""

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

from keras_compress import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, small_cnn):
    p = tmp_path_factory.mktemp("cli") / "small.keras"
    small_cnn.save(p)
    return p


def _one_line(capsys, *expected):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    for e in expected:
        assert e in err[0], err[0]
    return err[0]


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_convert_int8_with_npy_calibration(saved_model, tmp_path, digits, capsys):
    (x, _), _ = digits
    np.save(tmp_path / "calib.npy", x[:32])
    out = tmp_path / "m.tflite"
    assert cli.main(["convert", str(saved_model), str(out), "--mode", "int8", "--data", str(tmp_path / "calib.npy"), "--samples", "16"]) == 0
    assert out.read_bytes()[4:8] == b"TFL3"
    assert "wrote" in capsys.readouterr().out


def test_convert_with_dataset_name(saved_model, tmp_path):
    out = tmp_path / "m.tflite"
    assert cli.main(["convert", str(saved_model), str(out), "--data", "digits", "--samples", "8", "--input-type", "uint8"]) == 0
    assert out.exists()


@pytest.mark.parametrize(
    "argv_tail, expected",
    [
        (["--mode", "int8"], "representative_data"),
        (["--mode", "int8", "--data", "shapes"], "received (5000, 32, 32, 3)"),
        (["--mode", "int8", "--data", "nothere.npy"], "nothere.npy"),
    ],
    ids=["no-data", "wrong-shape", "missing-npy"],
)
def test_convert_bad_input_exits_2_and_writes_nothing(saved_model, tmp_path, argv_tail, expected, capsys):
    out = tmp_path / "m.tflite"
    assert cli.main(["convert", str(saved_model), str(out), *argv_tail]) == 2
    _one_line(capsys, expected)
    assert not out.exists()


def test_convert_missing_or_wrong_model(tmp_path, capsys):
    assert cli.main(["convert", str(tmp_path / "none.keras"), str(tmp_path / "o.tflite")]) == 2
    _one_line(capsys, "no such file")
    bad = tmp_path / "bad.keras"
    bad.write_text("junk")
    assert cli.main(["convert", str(bad), str(tmp_path / "o.tflite"), "--mode", "float32"]) == 2
    _one_line(capsys, "could not load")
    assert not (tmp_path / "o.tflite").exists()


def test_convert_output_that_is_a_folder(saved_model, tmp_path, capsys):
    folder = tmp_path / "out.tflite"
    folder.mkdir()
    assert cli.main(["convert", str(saved_model), str(folder), "--mode", "float32"]) == 2
    _one_line(capsys, "out.tflite: is a folder")
    assert list(folder.iterdir()) == []


def test_convert_output_whose_parent_is_a_file(saved_model, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["convert", str(saved_model), str(blocker / "m.tflite"), "--mode", "float32"]) == 2
    _one_line(capsys, f"{blocker} is a file")
    assert blocker.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_run_bad_recipe_prints_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nvariants: {s: {stages: [build: {}]}}\nconvert: {target: tpu}\n")
    assert cli.main(["run", str(bad)]) == 2
    _one_line(capsys, "convert.target", "'cpu', 'edgetpu'")


def test_run_non_utf8_recipe(tmp_path, capsys):
    bad = tmp_path / "latin.yaml"
    bad.write_bytes("name: d\xe9mo\n".encode("latin-1"))
    assert cli.main(["run", str(bad), "--out", str(tmp_path / "out")]) == 2
    _one_line(capsys, "latin.yaml: not UTF-8 text")
    assert not (tmp_path / "out").exists()


def test_run_unreadable_recipe(tmp_path, capsys, monkeypatch):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: x\n")
    real = Path.read_bytes

    def denied(self):
        if self == recipe:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)  # the tests may run as root, who reads any file
    assert cli.main(["run", str(recipe), "--out", str(tmp_path / "out")]) == 2
    _one_line(capsys, "r.yaml: cannot read the recipe (Permission denied)")
    assert not (tmp_path / "out").exists()


def test_run_out_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    assert cli.main(["run", "demo", "--out", str(target)]) == 2
    _one_line(capsys, "taken: is a file; expected a folder")
    assert target.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_run_output_dir_in_the_recipe_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"name": "r", "output_dir": str(target), "variants": {"s": {"stages": [{"build": {}}]}}}))
    assert cli.main(["run", str(recipe)]) == 2
    _one_line(capsys, "taken: is a file")
    assert target.read_text() == "keep me"


def test_run_name_that_is_a_path_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"name": "../../escape", "variants": {"s": {"stages": [{"build": {}}]}}}))
    assert cli.main(["run", str(recipe)]) == 2
    _one_line(capsys, "name: expected a file name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_run_into_a_folder_of_another_recipe_cleans_it_and_says_so(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "models").mkdir()
    (out / "models" / "old.keras").write_text("an earlier run's model")
    (out / "manifest.json").write_text(json.dumps({"recipe": "other", "files": ["models/old.keras"]}))
    recipe = tmp_path / "r.json"  # valid, but its dataset options fail after the folder is prepared
    recipe.write_text(json.dumps({"name": "r", "dataset": {"name": "digits", "options": {"bogus": 1}},
                                  "variants": {"s": {"stages": [{"build": {}}]}}}))
    assert cli.main(["run", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "[run] removed the 1 file(s) of the earlier run of recipe 'other'" in err
    assert "dataset.options: not accepted" in err.strip().splitlines()[-1]
    assert not (out / "models").exists()
    assert json.loads((out / "manifest.json").read_text())["recipe"] == "r"


def test_ctrl_c_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_report", interrupted)
    assert cli.main(["report", "anywhere"]) == 130
    _one_line(capsys, "interrupted")


def test_ctrl_c_swallowed_on_the_way_still_exits_130(monkeypatch, capsys):
    """A KeyboardInterrupt that a C++ destructor swallows ("Exception ignored in ...") must not end in exit 0."""

    def swallows(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
        except KeyboardInterrupt:
            pass  # what "Exception ignored in UniquePtr.__del__" amounts to
        return 0

    monkeypatch.setattr(cli, "_cmd_report", swallows)
    assert cli.main(["report", "anywhere"]) == 130
    _one_line(capsys, "interrupted")


def _cli(*args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.Popen([sys.executable, "-m", "keras_compress.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.parametrize(
    "when",
    ["before_tensorflow", pytest.param("after_tensorflow", marks=pytest.mark.slow)],  # importing TF: 15-25 s
)
def test_no_tensorflow_chatter_before_the_error_line(tmp_path, when):
    """Fresh processes (TF_CPP_MIN_LOG_LEVEL unset): the error is the only line on stderr, with or without TensorFlow.

    A bad recipe fails before TensorFlow is imported; an output path that is a file fails after (the
    import prints absl and CUDA-probe lines unless the CLI silences them).
    """
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nvariants: {s: {stages: [build: {width: .nan}]}}\n")
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    argv, line = {
        "before_tensorflow": (["run", str(bad)], "keras-compress run: error: bad.yaml: variants.s.stages[0].build.width: "
                                                 "expected a finite number in (0.0, 8.0]; got nan"),
        "after_tensorflow": (["run", "demo", "--out", str(taken)],
                             f"keras-compress run: error: {taken}: is a file; expected a folder for the run's output"),
    }[when]
    proc = _cli(*argv, cwd=tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and err.splitlines() == [line], err
    assert out == ""
    assert taken.read_text() == "keep me"


@pytest.mark.slow
def test_ctrl_c_during_a_run_exits_130_and_leaves_only_recorded_files(tmp_path):
    out = tmp_path / "out"
    proc = _cli("run", "digits_prune_qat", "--out", str(out), cwd=tmp_path)
    lines = []
    for line in proc.stderr:  # wait until training has started
        lines.append(line)
        if line.startswith("[train]"):
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=300)
    assert proc.returncode == 130, "".join(lines) + rest
    assert rest.strip().splitlines()[-1] == "keras-compress run: interrupted"
    recorded = set(json.loads((out / "manifest.json").read_text())["files"])
    present = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert present == recorded and not any(".tmp" in p for p in present)


def test_an_exception_after_ctrl_c_is_the_interrupt(monkeypatch, capsys):
    """A Ctrl-C landing in TensorFlow's C++ may surface as a RuntimeError (pybind11): still exit 130, no traceback."""
    from keras_compress import cli as cli_module

    def fake(args):
        args.interrupts.seen = True
        raise RuntimeError("pybind11::error_already_set: MISMATCH ... REPLACED BY KeyboardInterrupt")

    monkeypatch.setattr(cli_module, "_cmd_report", fake)
    assert cli_module.main(["report", "somewhere"]) == 130
    assert capsys.readouterr().err.strip() == "keras-compress report: interrupted"

    def failing(args):
        raise RuntimeError("a real bug")

    monkeypatch.setattr(cli_module, "_cmd_report", failing)
    with pytest.raises(RuntimeError, match="a real bug"):
        cli_module.main(["report", "somewhere"])

"""`keras-compress convert` and error handling of the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from keras_compress import cli


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, small_cnn):
    p = tmp_path_factory.mktemp("cli") / "small.keras"
    small_cnn.save(p)
    return p


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
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]
    assert not out.exists()


def test_convert_missing_or_wrong_model(tmp_path, capsys):
    assert cli.main(["convert", str(tmp_path / "none.keras"), str(tmp_path / "o.tflite")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.keras"
    bad.write_text("junk")
    assert cli.main(["convert", str(bad), str(tmp_path / "o.tflite"), "--mode", "float32"]) == 2
    assert "could not load" in capsys.readouterr().err
    assert not (tmp_path / "o.tflite").exists()

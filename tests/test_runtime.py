"""edgetpu runtime on the CPU: make_interpreter, run, classify, benchmark, the CLI, bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgetpu
from edgetpu import cli
from edgetpu.errors import EdgeTPUError, InputError, InvalidModelError
from edgetpu.runtime import dequantize, quantize


@pytest.fixture(scope="module")
def int8_path(tmp_path_factory, small_tflite):
    p = tmp_path_factory.mktemp("models") / "small_int8.tflite"
    p.write_bytes(small_tflite["int8"])
    return p


@pytest.fixture(scope="module")
def float_path(tmp_path_factory, small_tflite):
    p = tmp_path_factory.mktemp("models") / "small_float32.tflite"
    p.write_bytes(small_tflite["float32"])
    return p


def test_make_interpreter_from_path_and_bytes(int8_path, small_tflite):
    a = edgetpu.make_interpreter(int8_path)
    b = edgetpu.make_interpreter(small_tflite["int8"], num_threads=1)
    assert a.get_input_details()[0]["dtype"] == np.int8
    assert b.get_input_details()[0]["shape"].tolist() == [1, 32, 32, 1]


def test_run_quantizes_and_dequantizes(int8_path, float_path, digits):
    _, (x_test, y_test) = digits
    x = x_test[:50]
    q = edgetpu.run(edgetpu.make_interpreter(int8_path), x)
    f = edgetpu.run(edgetpu.make_interpreter(float_path), x)
    assert q.dtype == np.float32 and q.shape == (50, 10)
    # The int8 model's dequantized logits track the float model's.
    assert np.mean(q.argmax(1) == f.argmax(1)) >= 0.95
    assert np.abs(q - f).max() < 0.1 * np.abs(f).max()
    assert np.mean(q.argmax(1) == y_test[:50]) > 0.85


def test_run_passes_integer_input_through(int8_path, digits):
    _, (x_test, _) = digits
    interp = edgetpu.make_interpreter(int8_path)
    detail = interp.get_input_details()[0]
    xq = quantize(x_test[:5], detail)
    assert xq.dtype == np.int8
    np.testing.assert_array_equal(edgetpu.run(interp, xq), edgetpu.run(interp, x_test[:5]))
    raw = edgetpu.run(interp, xq, dequantize_outputs=False)
    assert raw.dtype == np.int8
    np.testing.assert_allclose(dequantize(raw, interp.get_output_details()[0]), edgetpu.run(interp, xq))


def test_quantize_uses_scale_zero_point_and_clips():
    detail = {"dtype": np.int8, "quantization": (0.5, -3)}
    q = quantize(np.array([0.0, 1.0, -1.0, 1000.0, -1000.0]), detail)
    assert q.tolist() == [-3, -1, -5, 127, -128]
    assert dequantize(q[:3], detail).tolist() == [0.0, 1.0, -1.0]


def test_run_rejects_wrong_shape_and_dtype(int8_path):
    interp = edgetpu.make_interpreter(int8_path)
    with pytest.raises(InputError, match=r"expects shape \(N, 32, 32, 1\), received \(2, 28, 28, 1\)"):
        edgetpu.run(interp, np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(InputError, match="int16"):
        edgetpu.run(interp, np.zeros((2, 32, 32, 1), np.int16))


def test_classify_top_k(int8_path, digits):
    _, (x_test, y_test) = digits
    interp = edgetpu.make_interpreter(int8_path)
    # The model outputs logits: the default threshold 0.0 keeps only positive scores.
    assert all(c.score >= 0 for c in edgetpu.classify(interp, x_test[0], top_k=10))
    top = edgetpu.classify(interp, x_test[0], top_k=3, threshold=float("-inf"))
    assert len(top) == 3 and all(isinstance(c, edgetpu.Class) for c in top)
    assert top[0].score >= top[1].score >= top[2].score
    assert top[0].id == int(y_test[0])
    batch = edgetpu.classify(interp, x_test[:4], top_k=2, threshold=float("-inf"))
    assert len(batch) == 4 and all(len(r) == 2 for r in batch)
    high = edgetpu.classify(interp, x_test[0], top_k=10, threshold=top[0].score)
    assert [c.id for c in high] == [top[0].id]


def test_benchmark_statistics(int8_path):
    r = edgetpu.benchmark(int8_path, runs=20, warmup=2, num_threads=1)
    for k in ("mean_ms", "median_ms", "p90_ms", "p99_ms", "std_ms"):
        assert r[k] >= 0
    assert r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]
    assert r["runs"] == 20 and r["backend"] == "ai_edge_litert"
    assert (r["num_threads"], r["xnnpack"]) == (1, True)
    r2 = edgetpu.benchmark(int8_path, runs=5, warmup=0, use_xnnpack=False)
    assert (r2["num_threads"], r2["xnnpack"]) == (None, False)
    with pytest.raises(InputError):
        edgetpu.benchmark(int8_path, runs=0)


def test_benchmark_reports_what_the_given_interpreter_was_built_with(int8_path):
    interp = edgetpu.make_interpreter(int8_path, num_threads=2, use_xnnpack=False)
    info = edgetpu.interpreter_info(interp)
    assert (info.model_path, info.num_threads, info.xnnpack, info.backend, info.delegated) == (
        str(int8_path), 2, False, "ai_edge_litert", False)
    r = edgetpu.benchmark(interp, runs=3, warmup=0)
    assert (r["num_threads"], r["xnnpack"], r["backend"]) == (2, False, "ai_edge_litert")
    assert edgetpu.benchmark(interp, runs=3, warmup=0, num_threads=2, use_xnnpack=False)["num_threads"] == 2
    with pytest.raises(InputError, match=r"built with other settings than asked: num_threads=1 \(it has 2\), "
                                         r"use_xnnpack=True \(it has False\)"):
        edgetpu.benchmark(interp, runs=3, num_threads=1, use_xnnpack=True)


def test_benchmark_of_an_interpreter_made_elsewhere(int8_path):
    foreign = edgetpu.interpreter_backend().Interpreter(model_path=str(int8_path), num_threads=1)
    foreign.allocate_tensors()
    assert edgetpu.interpreter_info(foreign) is None
    r = edgetpu.benchmark(foreign, runs=3, warmup=0)
    assert (r["num_threads"], r["xnnpack"], r["backend"]) == (None, None, "ai_edge_litert")  # unknown, not guessed
    with pytest.raises(InputError, match="not made by edgetpu.make_interpreter"):
        edgetpu.benchmark(foreign, runs=3, num_threads=1)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_make_interpreter_rejects_bad_thread_counts(int8_path, bad):
    with pytest.raises(InputError, match="num_threads must be an int >= 1 or None"):
        edgetpu.make_interpreter(int8_path, num_threads=bad)


def test_random_input_is_public_and_follows_the_tensor():
    rng = np.random.default_rng(0)
    a = edgetpu.random_input({"dtype": np.uint8, "shape": np.array([1, 4, 4, 3])}, rng)
    assert a.dtype == np.uint8 and a.shape == (1, 4, 4, 3)
    f = edgetpu.random_input({"dtype": np.float32, "shape": [-1, 5]})
    assert f.dtype == np.float32 and f.shape == (1, 5) and 0 <= f.min() and f.max() < 1
    np.testing.assert_array_equal(edgetpu.random_input({"dtype": np.int8, "shape": [2, 3]}),
                                  edgetpu.random_input({"dtype": np.int8, "shape": [2, 3]}, np.random.default_rng(0)))


def test_load_model_bytes_names_folders_and_missing_files(tmp_path, small_tflite):
    data, path = edgetpu.load_model_bytes(small_tflite["int8"])
    assert data == small_tflite["int8"] and path is None
    with pytest.raises(InvalidModelError, match="is a directory"):
        edgetpu.load_model_bytes(tmp_path)
    with pytest.raises(InvalidModelError, match="no such file"):
        edgetpu.load_model_bytes(tmp_path / "none.tflite")


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "empty file (0 bytes)"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "a PNG image"),
        (bytes(range(256)) * 8, '"TFL3"'),
    ],
    ids=["empty", "png", "random"],
)
def test_invalid_files_name_the_file(tmp_path, content, expected):
    p = tmp_path / "bad.tflite"
    p.write_bytes(content)
    with pytest.raises(InvalidModelError) as e:
        edgetpu.make_interpreter(p)
    assert str(p) in str(e.value) and expected in str(e.value)


def test_truncated_model_is_an_error_not_a_crash(tmp_path, small_tflite):
    p = tmp_path / "truncated.tflite"
    p.write_bytes(small_tflite["int8"][: len(small_tflite["int8"]) // 2])
    with pytest.raises(InvalidModelError) as e:
        edgetpu.make_interpreter(p)
    assert str(p) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(InvalidModelError, match="no such file"):
        edgetpu.make_interpreter(tmp_path / "nope.tflite")


def test_cli_bench_side_by_side(int8_path, float_path, capsys):
    assert cli.main(["bench", str(float_path), str(int8_path), "--runs", "5", "--warmup", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "small_float32.tflite" in out and "small_int8.tflite" in out and "median_ms" in out
    assert cli.main(["bench", str(int8_path), "--runs", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["runs"] == 3 and "p99_ms" in data[0]


def test_cli_run(int8_path, tmp_path, digits, capsys):
    _, (x_test, _) = digits
    npy = tmp_path / "x.npy"
    np.save(npy, x_test[:2])
    assert cli.main(["run", str(int8_path), "--input", str(npy), "--top-k", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and out[0].startswith("0: ")


@pytest.mark.parametrize("sub", ["run", "bench", "check"])
def test_cli_bad_file_exits_2_with_one_line(tmp_path, sub, capsys):
    p = tmp_path / "notamodel.tflite"
    p.write_text("hello")
    assert cli.main([sub, str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(p) in err[0]


def test_errors_are_one_family():
    import edgetpu.errors

    for name in edgetpu.errors.__all__:
        cls = getattr(edgetpu.errors, name)
        assert issubclass(cls, EdgeTPUError) and cls.__module__ == "edgetpu.errors"
    for name in ("InvalidModelError", "InterpreterCrashError", "InputError", "OutputError", "CompilerError",
                 "CompilerNotFoundError", "DelegateError", "InvalidDeviceError", "NoEdgeTPUError"):
        assert getattr(edgetpu, name) is getattr(edgetpu.errors, name)
    assert issubclass(edgetpu.InvalidDeviceError, edgetpu.DelegateError)

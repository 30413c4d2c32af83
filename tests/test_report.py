"""`keras-compress report`: the HTML page renders in headless Chromium with every plot drawn.

The module fixture runs the demo's baseline variant (2 epochs) and adds one
magnitude-pruned int8 variant, so that the sparsity plot has real bars. The
page is rendered twice by Debian's ``chromium``: once with ``--dump-dom`` and
a script (added to a copy of the page) that records where each plot image is
and whether it decoded, then as a screenshot of the whole page, whose plot
regions must hold a drawn figure (non-white pixels, many colours, the series
colours).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

PLOTS = ("plot-size", "plot-latency", "plot-sparsity", "plot-sqnr", "plot-edgetpu")
WIDTH = 1280
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is needed to render the report: install it with "
                "`apt-get update && apt-get install -y chromium` (Debian's chromium package)")


def _run_chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp))
    cmd = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """A demo folder: baseline variant (float32, float16, dynamic, int8) + a 70%-sparse int8 variant."""
    import keras

    from keras_compress.convert import to_tflite
    from keras_compress.datasets import load_digits
    from keras_compress.demo import run_demo
    from keras_compress.summary import measure_tflite, write_summary

    out = tmp_path_factory.mktemp("demo")
    rows = run_demo(out, epochs=2, variants=["baseline"], report=False, verbose=False)
    model = keras.saving.load_model(out / "models" / "baseline.keras", compile=False)
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            w = layer.get_weights()
            k = w[0]
            w[0] = np.where(np.abs(k) >= np.quantile(np.abs(k), 0.7), k, 0.0).astype(k.dtype)
            layer.set_weights(w)
    (x_train, _), (x_test, y_test) = load_digits()
    blob = to_tflite(model, out / "sparse70_int8.tflite", quantization="int8",
                     representative_data=x_train[:100], verbose=False)
    rows.append(measure_tflite("sparse70_int8", blob, x_test, y_test, runs=20, file="sparse70_int8.tflite",
                               mode="int8", sparsity=0.7))
    write_summary(rows, out, meta=json.loads((out / "run.json").read_text()))
    return out


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.external = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        for key in ("src", "href"):
            if a.get(key) and not a[key].startswith(("data:", "#")):
                self.external.append((tag, key, a[key]))
        if tag in ("script", "link", "iframe", "object", "embed"):
            self.external.append((tag, "tag", a))


@pytest.fixture(scope="module")
def report(demo_dir):
    from keras_compress.report import write_report

    path = write_report(demo_dir)
    assert path == demo_dir / "report.html"
    return path


@pytest.mark.slow
def test_report_is_self_contained(report):
    parser = _Images()
    text = report.read_text()
    parser.feed(text)
    assert parser.external == [], f"the report refers to something outside itself: {parser.external}"
    ids = [a.get("id") for a in parser.imgs]
    assert ids == list(PLOTS)
    for a in parser.imgs:
        assert a["src"].startswith("data:image/png;base64,"), a["id"]
    assert "sparse70_int8" in text and "Missing inputs" not in text
    data = json.loads(report.with_suffix(".json").read_text())
    # the pruned variant's file really carries ~70% zeros per layer; the dense int8 one almost none
    sp = {v: [r["sparsity"] for r in recs] for v, recs in data["sparsity"].items()}
    assert all(0.65 <= s <= 0.75 for s in sp["sparse70_int8"]), sp["sparse70_int8"]
    assert all(s < 0.05 for s in sp["int8_ptq"]), sp["int8_ptq"]
    # SQNR: every op of the int8 model matched by name to float32; a trained 2-epoch CNN stays well above 20 dB
    layers = data["sqnr"]["int8_ptq"]["layers"]
    assert data["sqnr"]["int8_ptq"]["reference"] == "float32"
    assert len(layers) == 9 and all(r["matched_by"] == "name" for r in layers)
    assert all(20 < r["sqnr_db"] < 80 for r in layers), [r["sqnr_db"] for r in layers]
    assert data["edgetpu"]["int8_ptq"]["fraction_mapped"] == 1.0


_PROBE = """<script>
window.addEventListener('load', function () {
  var out = [];
  document.querySelectorAll('img.plot-img').forEach(function (im) {
    var r = im.getBoundingClientRect();
    out.push({id: im.id, complete: im.complete, nw: im.naturalWidth, nh: im.naturalHeight,
              x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height});
  });
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({imgs: out, height: document.documentElement.scrollHeight});
  document.body.appendChild(pre);
});
</script>"""


def _layout(report: Path, tmp: Path) -> dict:
    """Image positions and decode state from Chromium (a copy of the page with a probe script)."""
    probe = tmp / "probe.html"
    probe.write_text(report.read_text().replace("</body>", _PROBE + "</body>"))
    proc = _run_chromium([f"--window-size={WIDTH},1000", "--virtual-time-budget=5000", "--dump-dom",
                          probe.as_uri()], tmp)
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the probe script did not run; DOM tail: {proc.stdout[-500:]}"
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.slow
def test_probe_detects_a_broken_plot(report, tmp_path):
    """The layout probe is what the drawing test trusts: it must see an image that does not decode."""
    broken = tmp_path / "broken.html"
    text = report.read_text()
    start = text.index("data:image/png;base64,", text.index("id='plot-sqnr'")) + len("data:image/png;base64,")
    broken.write_text(text[:start] + "AAAA" + text[start + 4000 :])
    imgs = {i["id"]: i for i in _layout(broken, tmp_path)["imgs"]}
    assert imgs["plot-sqnr"]["nw"] == 0
    assert imgs["plot-size"]["nw"] >= 500


def _drawn(region: np.ndarray) -> dict:
    """How much of an RGB region is drawn: non-white fraction, distinct colours, saturated pixels."""
    rgb = region[..., :3].astype(np.int32)
    nonwhite = float(np.mean(rgb.min(-1) < 235))
    colours = len(np.unique(rgb.reshape(-1, 3) // 8, axis=0))
    saturated = int(np.sum(rgb.max(-1) - rgb.min(-1) > 80))
    return {"nonwhite": nonwhite, "colours": colours, "saturated": saturated}


def _near(region: np.ndarray, hex_colour: str, tol: int = 30) -> int:
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int(np.sum(np.abs(region[..., :3].astype(np.int32) - target).max(-1) < tol))


@pytest.mark.slow
def test_report_plots_drawn_in_headless_chromium(report, tmp_path):
    from PIL import Image

    layout = _layout(report, tmp_path)
    imgs = {i["id"]: i for i in layout["imgs"]}
    assert sorted(imgs) == sorted(PLOTS)
    for i in imgs.values():
        assert i["complete"] and i["nw"] >= 500 and i["nh"] >= 200, f"{i['id']} did not decode: {i}"
        assert i["w"] >= 400 and i["h"] >= 150, f"{i['id']} is laid out too small: {i}"
    height = int(layout["height"]) + 20
    shot = tmp_path / "report.png"
    _run_chromium([f"--window-size={WIDTH},{height}", "--hide-scrollbars", f"--screenshot={shot}", report.as_uri()],
                  tmp_path)
    page = np.asarray(Image.open(shot).convert("RGB"))
    assert page.shape[0] >= height - 20 and page.shape[1] == WIDTH, page.shape
    stats = {}
    for pid, i in imgs.items():
        x0, y0 = int(i["x"]) + 2, int(i["y"]) + 2
        region = page[y0 : y0 + int(i["h"]) - 4, x0 : x0 + int(i["w"]) - 4]
        assert region.shape[0] > 100 and region.shape[1] > 300, (pid, region.shape)
        s = stats[pid] = _drawn(region)
        assert 0.03 < s["nonwhite"] < 0.9, (pid, s)
        assert s["colours"] >= 20, (pid, s)
        assert s["saturated"] >= 150, (pid, s)
    # what each plot must show, in its own colours
    def region(pid):
        i = imgs[pid]
        return page[int(i["y"]) : int(i["y"] + i["h"]), int(i["x"]) : int(i["x"] + i["w"])]

    assert _near(region("plot-edgetpu"), "#2ca02c") > 2000, "Edge TPU strip: no mapped (green) ops drawn"
    assert _near(region("plot-sparsity"), "#ff7f0e") > 1500, "sparsity plot: no bars of the 70%-sparse variant"
    assert _near(region("plot-sqnr"), "#1f77b4") > 200, "SQNR plot: no line drawn"
    from keras_compress.report.plots import FRONT_COLOUR

    # gzip panel: the 70%-sparse model is smallest, the dense int8 model most accurate: a 2-point front
    assert _near(region("plot-size"), FRONT_COLOUR, tol=40) > 40, "size plot: no Pareto front line"


@pytest.mark.slow
def test_report_tolerates_missing_inputs(demo_dir, tmp_path):
    from keras_compress.report import write_report

    shutil.copy(demo_dir / "summary.json", tmp_path / "summary.json")
    (tmp_path / "tflite").mkdir()
    shutil.copy(demo_dir / "tflite" / "int8_ptq.tflite", tmp_path / "tflite" / "int8_ptq.tflite")
    path = write_report(tmp_path, tmp_path / "r.html")
    text = path.read_text()
    assert "Missing inputs" in text
    assert "run.json is missing" in text
    assert "float32: model file tflite/float32.tflite not found" in text
    assert "int8_ptq: no float32 .tflite in the folder to compare against" in text
    parser = _Images()
    parser.feed(text)
    assert [a["id"] for a in parser.imgs] == ["plot-size", "plot-latency", "plot-sparsity", "plot-edgetpu"]


def test_report_errors_are_compress_errors(tmp_path, capsys):
    from keras_compress.cli import main
    from keras_compress.errors import CompressError
    from keras_compress.report import write_report

    with pytest.raises(CompressError, match="no such folder"):
        write_report(tmp_path / "nope")
    with pytest.raises(CompressError, match="no summary.json found"):
        write_report(tmp_path)
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(CompressError, match="not readable JSON"):
        write_report(tmp_path)
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and "Traceback" not in err


@pytest.mark.slow
def test_lowbit_outputs_get_a_per_layer_table(tmp_path):
    """A run with int4 and int16x8 outputs: each gets a table (layer, SQNR, weight / activation types) in report.html."""
    from keras_compress.pipeline.run import compress

    recipe = {"name": "lowbit", "seed": 0, "dataset": {"name": "digits", "options": {"image_size": 16}},
              "measure": {"latency_runs": 2, "warmup": 1, "edgetpu": False}, "convert": {"calibration_samples": 20},
              "variants": {"tiny": {"stages": [{"build": {"model": "cnn", "width": 0.25}},
                                               {"train": {"epochs": 1, "batch_size": 64}}],
                                    "outputs": [{"mode": "float32", "name": "f32"}, {"mode": "int8", "name": "i8"},
                                                {"mode": "int4_weights", "name": "i4"},
                                                {"mode": "int16x8", "name": "i16"}]}}}
    compress(recipe, tmp_path / "run", verbose=False)
    text = (tmp_path / "run" / "report.html").read_text()
    tables = dict(re.findall(r"<table class='lowbit' id='lowbit-(\w+)'>(.*?)</table>", text, re.S))
    assert sorted(tables) == ["i16", "i4"]  # the int8 and float32 rows get none
    rows = {v: [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr><td>.*?</tr>", t)] for v, t in tables.items()}
    i4 = {r[0]: r for r in rows["i4"]}
    assert [i4[n][2] for n in ("conv1", "conv2", "conv3", "fc", "logits")] == ["int8", "int4", "int4", "int4", "int8"]
    assert all(r[3] == "float32" for r in rows["i4"])
    assert {r[2] for r in rows["i16"]} == {"int8", "-"} and {r[3] for r in rows["i16"]} == {"int16"}
    for r in rows["i4"] + rows["i16"]:
        assert 5 < float(r[1].removesuffix(" dB")) < 90, r  # a measured SQNR, not a placeholder
    data = json.loads((tmp_path / "run" / "report.json").read_text())
    assert data["sqnr"]["i4"]["reference"] == "f32"
    assert all(r["matched_by"] == "name" for r in data["sqnr"]["i4"]["layers"])


def test_lowbit_table_rendered_for_lowbit_modes_only():
    from keras_compress.report.html import render

    recs = [{"index": 0, "op": "CONV_2D", "layer": "conv1", "sqnr_db": 31.25, "matched_by": "name", "weights": "int4",
             "activations": "float32"},
            {"index": 1, "op": "MAX_POOL_2D", "layer": "conv1", "sqnr_db": 30.0, "matched_by": "name", "weights": None,
             "activations": "float32"},
            {"index": 2, "op": "FULLY_CONNECTED", "layer": "logits", "sqnr_db": float("inf"), "matched_by": "name",
             "weights": "int8", "activations": "float32"}]
    rows = [{"variant": v, "label": v, "mode": m} for v, m in (("f", "float32"), ("q8", "int8"), ("q4 (x)", "int4_int8"))]
    data = {"folder": "x", "rows": rows, "run": None, "models": {}, "sparsity": {}, "edgetpu": {}, "notes": [],
            "sqnr_inputs": "test", "sqnr": {"q8": {"reference": "f", "layers": recs}, "q4 (x)": {"reference": "f", "layers": recs}}}
    page = render(data)
    assert "lowbit-q8" not in page
    table = re.search(r"<table class='lowbit' id='lowbit-q4-x-'>(.*?)</table>", page, re.S).group(1)
    assert "vs f" in table
    assert re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", table) == [
        ("conv1", "30.0 dB", "int4", "float32"), ("logits", "inf dB", "int8", "float32")]

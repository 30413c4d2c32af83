"""edgetpu.delegate: device strings, listing TPUs, loading the delegate, TPU-or-CPU planning."""

from __future__ import annotations

import logging
import platform
from types import SimpleNamespace

import numpy as np
import pytest
from fakes.tflite_builder import compiled_model, conv_chain

from edgetpu.delegate import (
    EDGETPU_SHARED_LIB,
    cpu_model_for,
    list_edge_tpus,
    load_edgetpu_delegate,
    plan,
    scan_system,
    validate_device,
)
from edgetpu.errors import (
    DelegateError,
    InvalidDeviceError,
    InvalidModelError,
    NoEdgeTPUError,
)


@pytest.fixture
def no_library(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGETPU_SHARED_LIB", str(tmp_path / "libedgetpu.so.1"))


@pytest.fixture
def fake_backend(monkeypatch):
    """A stand-in interpreter package (as ai_edge_litert / tflite_runtime expose load_delegate)."""
    calls = []

    def load_delegate(lib, options=None):
        calls.append((lib, dict(options or {})))
        if fake.fail:
            raise ValueError(f"Failed to load delegate from {lib}")
        return SimpleNamespace(lib=lib, options=dict(options or {}))

    fake = SimpleNamespace(name="tflite_runtime", load_delegate=load_delegate, calls=calls, fail=False)
    import edgetpu.backend

    monkeypatch.setattr(edgetpu.backend, "interpreter_backend", lambda name=None: fake)
    return fake


def test_shared_library_name_per_platform():
    expected = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}
    assert EDGETPU_SHARED_LIB == expected.get(platform.system(), "libedgetpu.so.1")


@pytest.mark.parametrize("device, parsed", [(None, None), (":0", (None, 0)), (":3", (None, 3)), ("usb", ("usb", None)),
                                            ("usb:0", ("usb", 0)), ("pci", ("pci", None)), ("pci:1", ("pci", 1))])
def test_valid_device_strings(device, parsed):
    assert validate_device(device) == parsed


@pytest.mark.parametrize("device", ["", "0", "tpu", "usb:", "usb:x", "pcie:0", ":", "USB", " usb", 0])
def test_invalid_device_strings_list_the_allowed_forms(device):
    with pytest.raises(InvalidDeviceError) as e:
        validate_device(device)
    msg = str(e.value)
    assert '"usb:0"' in msg and '"pci:0"' in msg and '":0"' in msg
    assert isinstance(e.value, DelegateError) and isinstance(e.value, ValueError)


def test_missing_library_gives_delegate_error_with_the_real_interpreter_package(no_library):
    with pytest.raises(DelegateError) as e:
        load_edgetpu_delegate("usb")
    msg = str(e.value)
    assert "not installed" in msg and "libedgetpu1-std" in msg and "device usb" in msg
    assert list_edge_tpus() == []


def test_delegate_load_failure_from_the_interpreter_package_is_a_delegate_error(fake_libedgetpu, fake_backend,
                                                                                monkeypatch):
    monkeypatch.setenv("EDGETPU_SHARED_LIB", str(fake_libedgetpu))
    fake_backend.fail = True
    with pytest.raises(DelegateError, match="no Edge TPU answered.*Failed to load delegate"):
        load_edgetpu_delegate(":0")


def test_load_passes_device_and_options(fake_libedgetpu, fake_backend, monkeypatch):
    monkeypatch.setenv("EDGETPU_SHARED_LIB", str(fake_libedgetpu))
    d = load_edgetpu_delegate("pci:0", {"Usb.MaxBulkInQueueLength": 32})
    assert d.lib == str(fake_libedgetpu)
    assert d.options == {"device": "pci:0", "Usb.MaxBulkInQueueLength": "32"}
    load_edgetpu_delegate()
    assert fake_backend.calls[-1][1] == {}
    with pytest.raises(InvalidDeviceError):
        load_edgetpu_delegate("gpu")


def test_list_edge_tpus_through_the_c_api(fake_libedgetpu, monkeypatch):
    monkeypatch.setenv("EDGETPU_SHARED_LIB", str(fake_libedgetpu))
    monkeypatch.setenv("FAKE_EDGETPU_DEVICES", "usb:/sys/bus/usb/devices/2-1,pci:/dev/apex_0")
    assert list_edge_tpus() == [{"type": "usb", "path": "/sys/bus/usb/devices/2-1"}, {"type": "pci", "path": "/dev/apex_0"}]
    monkeypatch.setenv("FAKE_EDGETPU_DEVICES", "")
    assert list_edge_tpus() == []


def test_scan_system_finds_apex_and_coral_usb_ids(tmp_path):
    (tmp_path / "class" / "apex" / "apex_0").mkdir(parents=True)
    for name, vid, pid in [("2-1", "1a6e", "089a"), ("2-2", "18d1", "9302"), ("1-1", "046d", "c52b")]:
        d = tmp_path / "bus" / "usb" / "devices" / name
        d.mkdir(parents=True)
        (d / "idVendor").write_text(vid + "\n")
        (d / "idProduct").write_text(pid + "\n")
    found = scan_system(str(tmp_path))
    assert [(f["type"], f.get("id")) for f in found] == [("pci", None), ("usb", "1a6e:089a"), ("usb", "18d1:9302")]
    assert found[0]["path"] == "/dev/apex_0"
    assert scan_system(str(tmp_path / "none")) == []


def test_cpu_model_for():
    assert str(cpu_model_for("/m/foo_edgetpu.tflite")) == "/m/foo.tflite"
    assert cpu_model_for("/m/foo.tflite") is None
    assert cpu_model_for(None) is None


def test_plan_cpu_model_runs_without_delegate():
    data = conv_chain(1).build()
    out, delegates, note = plan(data, "/x/m.tflite", device="usb")
    assert out is data and delegates == [] and "CPU" in note and "ignored" in note


def test_plan_bad_bytes_and_bad_device():
    with pytest.raises(InvalidModelError):
        plan(b"not a model", None)
    with pytest.raises(InvalidDeviceError):
        plan(conv_chain(1).build(), None, device="tpu0")


def test_plan_compiled_model_without_tpu_uses_the_cpu_model_beside_it(no_library, tmp_path, caplog):
    cpu = conv_chain(1).build()
    (tmp_path / "net.tflite").write_bytes(cpu)
    compiled = tmp_path / "net_edgetpu.tflite"
    compiled.write_bytes(compiled_model())
    with caplog.at_level(logging.WARNING, logger="edgetpu"):
        out, delegates, note = plan(compiled.read_bytes(), str(compiled))
    assert out == cpu and delegates == []
    assert str(tmp_path / "net.tflite") in note and "not installed" in note
    assert any(str(tmp_path / "net.tflite") in r.getMessage() for r in caplog.records)


def test_plan_compiled_model_without_tpu_or_cpu_model_names_the_file_to_use(no_library, tmp_path):
    compiled = tmp_path / "net_edgetpu.tflite"
    compiled.write_bytes(compiled_model())
    with pytest.raises(NoEdgeTPUError) as e:
        plan(compiled.read_bytes(), str(compiled))
    assert str(tmp_path / "net.tflite") in str(e.value) and "libedgetpu.so.1" in str(e.value)
    with pytest.raises(NoEdgeTPUError, match="without _edgetpu"):
        plan(compiled_model(), None)


def test_plan_compiled_model_with_a_tpu_loads_the_delegate(fake_libedgetpu, fake_backend, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGETPU_SHARED_LIB", str(fake_libedgetpu))
    monkeypatch.setenv("FAKE_EDGETPU_DEVICES", "usb:/sys/bus/usb/devices/2-1")
    data = compiled_model()
    out, delegates, note = plan(data, "/m/net_edgetpu.tflite", device="usb:0")
    assert out is data and len(delegates) == 1 and delegates[0].options == {"device": "usb:0"}
    assert "Edge TPU" in note
    # a device string that matches nothing: no TPU for that request
    with pytest.raises(NoEdgeTPUError, match="no Edge TPU matches device 'pci'"):
        plan(data, "/m/net_edgetpu.tflite", device="pci")
    monkeypatch.setenv("FAKE_EDGETPU_DEVICES", "")
    with pytest.raises(NoEdgeTPUError, match="no Edge TPU device is connected"):
        plan(data, "/m/net_edgetpu.tflite")


def test_plan_delegate_failure_falls_back_to_cpu_model_or_raises(fake_libedgetpu, fake_backend, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGETPU_SHARED_LIB", str(fake_libedgetpu))
    monkeypatch.setenv("FAKE_EDGETPU_DEVICES", "pci:/dev/apex_0")
    fake_backend.fail = True
    compiled = tmp_path / "net_edgetpu.tflite"
    compiled.write_bytes(compiled_model())
    with pytest.raises(DelegateError, match="failed to load") as e:
        plan(compiled.read_bytes(), str(compiled))
    assert not isinstance(e.value, NoEdgeTPUError)
    (tmp_path / "net.tflite").write_bytes(conv_chain(1).build())
    _, delegates, note = plan(compiled.read_bytes(), str(compiled))
    assert delegates == [] and "failed to load" in note


def test_fallback_model_runs_on_the_cpu_interpreter(no_library, tmp_path):
    from edgetpu import interpreter_backend

    (tmp_path / "net.tflite").write_bytes(conv_chain(2).build())
    compiled = tmp_path / "net_edgetpu.tflite"
    compiled.write_bytes(compiled_model())
    data, delegates, _ = plan(compiled.read_bytes(), str(compiled))
    interp = interpreter_backend().Interpreter(model_content=data, experimental_delegates=delegates or None)
    interp.allocate_tensors()
    d = interp.get_input_details()[0]
    interp.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
    interp.invoke()
    assert interp.get_output_details()[0]["shape"].tolist() == [1, 8, 8, 4]

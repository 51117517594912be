"""The device rule (auto, cpu, cuda, cuda:N) and MEDNER_PRECISION, the switch for the default
precision of every backend; CUDA is simulated where the test needs it, so these run anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from medner.core import device
from medner.errors import MednerError


@pytest.mark.parametrize(("value", "native", "expected"), [
    (None, True, True), (None, False, False), ("auto", True, True), ("auto", False, False),
    ("fp32", True, False), ("FP32", False, False), ("bf16", False, True), ("", True, True)])
def test_the_switch_overrides_the_cpu(monkeypatch, value, native, expected):
    monkeypatch.setattr(device, "cpu_supports_bf16", lambda: native)
    if value is None:
        monkeypatch.delenv(device.PRECISION_ENV, raising=False)
    else:
        monkeypatch.setenv(device.PRECISION_ENV, value)
    assert device.default_bf16() is expected
    assert device.resolve_bf16(None) is expected
    assert device.resolve_bf16(not expected) is (not expected)  # an explicit choice wins


def test_an_unknown_precision_names_the_variable(monkeypatch):
    monkeypatch.setenv(device.PRECISION_ENV, "fp16")
    with pytest.raises(MednerError, match="MEDNER_PRECISION='fp16': expected one of auto"):
        device.default_bf16()



@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(device, "cuda_available", lambda: False)


@pytest.fixture
def one_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(device, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_auto_is_the_cpu_without_a_gpu(no_gpu):
    assert device.resolve_device() == device.resolve_device("auto") == "cpu"
    assert device.resolve_device(" CPU ") == "cpu"
    assert device.training_device() == "cpu"


def test_auto_is_the_gpu_when_torch_sees_one(one_gpu):
    assert device.resolve_device(None) == device.resolve_device("auto") == "cuda"
    assert device.resolve_device("cuda:0") == "cuda:0"
    assert device.resolve_device("cpu") == "cpu"  # an explicit choice wins


def test_auto_resolves_to_what_this_machine_has():
    import torch

    assert device.resolve_device() == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize(("choice", "message"), [
    ("cuda", "'cuda' asked for, but torch sees no CUDA GPU here"),
    ("cuda:1", "'cuda:1' asked for, but torch sees no CUDA GPU here"),
    ("gpu0", "device 'gpu0': not a device"),
    ("meta", "device 'meta': medner runs on cpu or cuda")])
def test_an_unusable_device_is_a_clear_error(no_gpu, choice, message):
    with pytest.raises(MednerError, match=message):
        device.resolve_device(choice, what="model folder m")


def test_a_gpu_index_past_the_last_names_the_range(one_gpu):
    with pytest.raises(MednerError, match=r"sees 1 CUDA GPU\(s\), cuda:0 to cuda:0"):
        device.resolve_device("cuda:1")


@pytest.mark.parametrize(("where", "capability", "switch", "bf16", "expected"), [
    ("cuda", (9, 0), None, None, "bf16"),     # Hopper, Ampere: native bf16
    ("cuda", (8, 0), None, None, "bf16"),
    ("cuda", (7, 5), None, None, "fp16"),     # Turing: fp16 with loss scaling
    ("cuda", (7, 5), "fp32", None, "fp32"),   # the switch forces fp32 everywhere
    ("cuda", (7, 5), "bf16", None, "bf16"),
    ("cuda", (9, 0), None, False, "fp32"),    # an explicit choice wins
    ("cpu", None, None, None, "bf16"),        # native on this simulated CPU
    ("cpu", None, "fp32", None, "fp32"),
    ("cpu", None, None, True, "bf16")])
def test_training_precision_follows_the_device(monkeypatch, where, capability, switch, bf16,
                                               expected):
    monkeypatch.setattr(device, "cpu_supports_bf16", lambda: True)
    monkeypatch.setattr(device, "cuda_capability", lambda _d: capability)
    if switch is None:
        monkeypatch.delenv(device.PRECISION_ENV, raising=False)
    else:
        monkeypatch.setenv(device.PRECISION_ENV, switch)
    assert device.training_precision(bf16, where) == expected


def test_loading_defaults_follow_the_device(monkeypatch):
    monkeypatch.delenv(device.PRECISION_ENV, raising=False)
    monkeypatch.setattr(device, "cpu_supports_bf16", lambda: False)
    monkeypatch.setattr(device, "cuda_capability", lambda _d: (9, 0))
    assert device.resolve_bf16(None, "cuda:0") is True
    assert device.resolve_bf16(None, "cpu") is False
    assert device.batch_size_for("cuda:0", 16, on_gpu=128) == 128
    assert device.batch_size_for("cpu", 16, on_gpu=128) == 16
    assert device.batch_size_for("cuda", 256, on_gpu=128) == 256  # a larger saved size stays


def test_common_arguments_carry_the_precision():
    from types import SimpleNamespace

    from medner.core.training import RunPrecision, common_arguments

    config = SimpleNamespace(batch_size=2, learning_rate=1e-3, epochs=1, max_steps=None,
                             warmup=0, weight_decay=0.0, report_to=(), seed=1)
    on_old_gpu = common_arguments(config, Path("w"), precision=RunPrecision("cuda", "fp16"),
                                  progress=False, selection=None, eval_steps=None)
    assert (on_old_gpu["fp16"], on_old_gpu["bf16"], on_old_gpu["use_cpu"]) == (True, False, False)
    on_cpu = common_arguments(config, Path("w"), precision=RunPrecision("cpu", "bf16"),
                              progress=False, selection=None, eval_steps=None)
    assert (on_cpu["fp16"], on_cpu["bf16"], on_cpu["use_cpu"]) == (False, True, True)
    assert RunPrecision("cpu", "fp32").record() == {"bf16": False, "precision": "fp32",
                                                    "trained_on": "cpu"}

"""MEDNER_PRECISION: one switch for the default precision of every backend."""

from __future__ import annotations

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


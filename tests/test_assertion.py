"""The assertion classifier: its inputs, a tiny BERT that overfits a handful of negated and
uncertain findings, saves, reloads and predicts the same; the chain runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from medner.assertion import AssertionConfig, AssertionModel, train_assertion
from medner.assertion.inputs import label_phrase, marked_context
from medner.assertion.train import macro_f1, value_order
from medner.backends.encoder.tiny import save_tiny_base
from medner.document import Document, Span
from medner.errors import ConfigError, MednerError
from medner.sentences import sentence_starts


def doc(id_: str, text: str, findings: list[tuple[str, str, str | None]]) -> Document:
    """A document with a span for each (mention, label, assertion) at its first occurrence
    after the previous one."""
    spans, taken = [], 0
    for mention, label, assertion in findings:
        start = text.index(mention, taken)
        taken = start + len(mention)
        attributes = (("assertion", assertion),) if assertion else ()
        spans.append(Span(start, taken, label, mention, attributes=attributes))
    return Document(id_, text, tuple(spans))


DOCS = [
    doc("1", "Patient denies fever. Cough is present.",
        [("fever", "SYMPTOM", "absent"), ("Cough", "SYMPTOM", None)]),
    doc("2", "No cough. Possible pneumonia.",
        [("cough", "SYMPTOM", "absent"), ("pneumonia", "DISEASE", "possible")]),
    doc("3", "Fever and pneumonia. Patient denies cough.",
        [("Fever", "SYMPTOM", None), ("pneumonia", "DISEASE", None),
         ("cough", "SYMPTOM", "absent")]),
    doc("4", "Possible fever. No pneumonia.",
        [("fever", "SYMPTOM", "possible"), ("pneumonia", "DISEASE", "absent")]),
]

TINY = AssertionConfig(epochs=80, batch_size=2, learning_rate=3e-3, warmup=0.0, held_out=0.0,
                       max_length=32, seed=3, threads=1)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # markers and label phrases are in the tiny vocabulary too
    return save_tiny_base(tmp_path_factory.mktemp("base"),
                          [d.text for d in DOCS] + ["[[ ]] symptom disease"])


@pytest.fixture(scope="module")
def trained(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[AssertionModel, Path]:
    from dataclasses import replace

    out = tmp_path_factory.mktemp("models") / "assertion"
    model = train_assertion(DOCS, out=out, config=replace(TINY, base_model=str(tiny_base)),
                            log=lambda _: None)
    return model, out


def assertions(documents: list[Document]) -> list[list[str | None]]:
    return [[s.assertion for s in d.spans] for d in documents]


def gold(documents: list[Document]) -> list[list[str]]:
    return [[s.assertion or "present" for s in d.spans] for d in documents]


def test_overfits_saves_reloads_and_predicts_the_same(trained) -> None:
    model, out = trained
    unlabelled = [d.with_spans(Span(s.start, s.end, s.label, s.text) for s in d.spans)
                  for d in DOCS]
    predicted = model.predict(unlabelled)
    assert assertions(predicted) == gold(DOCS)
    again = AssertionModel.load(out, bf16=False)
    assert again.values == ("present", "absent", "possible")
    assert assertions(again.predict(unlabelled)) == assertions(predicted)
    assert again.record["train_spans"] == 9 and again.record["values"]["absent"] == 4
    assert not Path(str(out) + ".train").exists()  # checkpoints are removed once saved


def test_input_is_the_label_then_the_sentence_with_markers() -> None:
    text = "No fever. Patient denies chest pain and cough. Alert."
    span = Span(text.index("chest"), text.index(" and"), "Sign_symptom", "chest pain")
    context = marked_context(text, span, sentence_starts(text), AssertionConfig())
    assert context == "Patient denies [[ chest pain ]] and cough."
    narrow = marked_context(text, span, sentence_starts(text), AssertionConfig(context_chars=7))
    assert narrow == "denies [[ chest pain ]] and co"
    assert label_phrase("Sign_symptom") == "sign symptom"
    assert label_phrase("BODY_PART") == "body part"


def test_scores_and_value_order() -> None:
    assert value_order(["absent", "possible", "present"]) == ["present", "absent", "possible"]
    assert value_order(["absent"]) == ["present", "absent"]
    scores = macro_f1([0, 0, 1, 2], [0, 1, 1, 2], 3)
    assert scores["accuracy"] == 0.75
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_training_needs_two_values(tiny_base: Path) -> None:
    plain = [d.with_spans(Span(s.start, s.end, s.label, s.text) for s in d.spans) for d in DOCS]
    with pytest.raises(ConfigError, match="all have assertion 'present'"):
        train_assertion(plain, config=AssertionConfig(base_model=str(tiny_base)),
                        log=lambda _: None)


def test_config_and_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="held_out must be in"):
        AssertionConfig(held_out=1.0)
    with pytest.raises(ConfigError, match="unknown field"):
        AssertionConfig.from_dict({"epoch": 3})
    with pytest.raises(MednerError, match="does not exist"):
        AssertionModel.load(tmp_path / "none")
    (tmp_path / "half").mkdir()
    with pytest.raises(MednerError, match="incomplete: missing medner.json"):
        AssertionModel.load(tmp_path / "half")


def test_evaluate_scores_assertions_on_matched_spans_and_end_to_end() -> None:
    from medner.scoring import evaluate

    text = "No fever. Cough. Possible pneumonia. Rash."
    gold = Document("d", text, (
        Span(3, 8, "SYMPTOM", "fever", attributes=(("assertion", "absent"),)),
        Span(10, 15, "SYMPTOM", "Cough"),
        Span(26, 35, "DISEASE", "pneumonia", attributes=(("assertion", "possible"),)),
        Span(37, 41, "SYMPTOM", "Rash")))
    predicted = Document("d", text, (
        Span(3, 8, "SYMPTOM", "fever", attributes=(("assertion", "absent"),)),
        Span(10, 15, "SYMPTOM", "Cough", attributes=(("assertion", "absent"),)),
        Span(26, 35, "DISEASE", "pneumonia", attributes=(("assertion", "possible"),)),
        Span(37, 40, "SYMPTOM", "Ras", attributes=(("assertion", "present"),))))
    report = evaluate([gold], [predicted], bootstrap=0)
    values = report.assertions["assertion"]
    assert (values.micro.tp, values.micro.fp, values.micro.fn) == (2, 1, 1)  # 3 matched spans
    assert values.micro.f1 == pytest.approx(2 / 3)  # the accuracy
    assert {v: (s.tp, s.fp, s.fn) for v, s in values.per_label.items()} == {
        "absent": (1, 1, 0), "present": (0, 0, 1), "possible": (1, 0, 0)}
    assert values.macro.f1 == pytest.approx((2 / 3 + 0 + 1) / 3)
    end_to_end = report.assertions["strict+assertion"]
    assert (end_to_end.micro.tp, end_to_end.micro.fp, end_to_end.micro.fn) == (2, 2, 2)
    assert "## Assertions" in report.to_markdown()
    assert report.to_dict()["assertions"]["assertion"]["micro"]["tp"] == 2
    plain = Document("d", text, tuple(Span(s.start, s.end, s.label, s.text) for s in gold.spans))
    assert evaluate([plain], [predicted], bootstrap=0).assertions == {}  # gold marks nothing
    assert evaluate([gold], [plain], bootstrap=0).assertions == {}  # nothing predicted


class _FindsGoldSpans:
    """A stand-in entity model that finds the fixture's spans (without their assertions)."""

    def predict(self, documents, progress=False, **options):
        by_text = {d.text: d for d in DOCS}
        return [d.with_spans(Span(s.start, s.end, s.label, s.text)
                             for s in by_text[d.text].spans) for d in documents]


def test_the_chain_runs_the_assertion_stage_and_prints_the_status(trained) -> None:
    from medner.cli.extract import render
    from medner.pipeline import Pipeline

    model, _ = trained
    chain = Pipeline(_FindsGoldSpans(), assertion=model)
    assert chain.stages == ["assertion"]
    found = chain.extract([DOCS[0].text])
    assert render(found, "text").splitlines() == [
        "Entity: fever, Label: SYMPTOM, Status: absent",
        "Entity: Cough, Label: SYMPTOM, Status: present"]
    assert found[0].to_dict()["spans"][0]["attributes"] == {"assertion": "absent"}


def test_a_folder_with_assertion_loads_as_a_chain(trained, tmp_path: Path) -> None:
    import shutil

    from medner.pipeline import ASSERTION_FOLDER, Pipeline, with_stages

    _, out = trained
    shutil.copytree(out, tmp_path / ASSERTION_FOLDER)
    entities = _FindsGoldSpans()
    chain = with_stages(entities, tmp_path)
    assert isinstance(chain, Pipeline) and chain.entities is entities
    assert [s.assertion for s in chain.extract(DOCS[1].text)[0].spans] == ["absent", "possible"]


def test_one_config_trains_the_entity_model_and_its_assertion_stage(
        tiny_base: Path, tmp_path: Path, train_with_stage) -> None:
    from typer.testing import CliRunner

    import medner
    from medner.cli import app
    from medner.io import write_corpus

    data = tmp_path / "train.jsonl"
    write_corpus(DOCS, data)
    model = train_with_stage(data, tiny_base, max_steps=2, stage=(
        f'[assertion]\nmax_steps = 2\nheld_out = 0.0\nthreads = 1\n'
        f'base_model = "{tiny_base}"\n'))
    chain = medner.load(model, bf16=False)
    assert chain.stages == ["assertion"]
    assert chain.assertion.record["train_spans"] == 9
    marked = chain.assertion.predict([d.with_spans(Span(s.start, s.end, s.label, s.text)
                                                   for s in d.spans) for d in DOCS])
    assert {s.assertion for d in marked for s in d.spans} <= {"present", "absent", "possible"}
    assert sum(len(d.spans) for d in marked) == 9
    config = tmp_path / "chain.toml"
    config.write_text(config.read_text() + "epoch = 3\n", encoding="utf-8")
    refused = CliRunner().invoke(app, ["train", "-c", str(config), "--train", str(data),
                                       "--out", str(tmp_path / "model2")])
    assert "[assertion]" in str(refused.exception) and "epoch" in str(refused.exception)
    assert not (tmp_path / "model2").exists()  # refused before training


def test_assertion_train_adds_the_stage_to_an_entity_model_folder(tiny_base: Path,
                                                                   tmp_path: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    import medner
    from medner.cli import app
    from medner.io import write_corpus

    model = tmp_path / "model"
    shutil.copytree(Path(__file__).parent / "saved_folders" / "encoder", model)
    data = tmp_path / "train.jsonl"
    write_corpus(DOCS, data)
    config = tmp_path / "assertion.toml"
    config.write_text(f'[assertion]\nmax_steps = 2\nheld_out = 0.0\nthreads = 1\n'
                      f'base_model = "{tiny_base}"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["assertion", "train", str(data), "--out", str(model),
                                      "-c", str(config)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert result.stdout.strip().endswith(str(model / "assertion"))
    chain = medner.load(model, bf16=False)
    assert chain.stages == ["assertion"] and chain.assertion.record["train_spans"] == 9
    config.write_text('[assertion]\nepoch = 3\n', encoding="utf-8")
    refused = CliRunner().invoke(app, ["assertion", "train", str(data), "--out",
                                       str(tmp_path / "other"), "-c", str(config)])
    assert "unknown field(s) epoch" in str(refused.exception)

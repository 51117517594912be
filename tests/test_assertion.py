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

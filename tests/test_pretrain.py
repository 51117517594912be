"""Domain-adaptive pretraining with tiny models built in code: MLM and CLM lower the held-out
loss, exclusion drops evaluation documents, lineage is recorded, and the output trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("datasets")

from typer.testing import CliRunner  # noqa: E402

from medner.backends.encoder.tiny import save_tiny_base  # noqa: E402
from medner.cli import app  # noqa: E402
from medner.document import Document, Span  # noqa: E402
from medner.errors import MednerError  # noqa: E402
from medner.io import write_corpus  # noqa: E402
from medner.pretrain import (  # noqa: E402
    PretrainConfig,
    exclude_documents,
    held_out_split,
    pretrain,
    read_documents,
)

SENTENCES = [
    "cisplatin caused nephrotoxicity in rats",
    "lithium toxicity led to tremor and ataxia",
    "the patient had fever and pain in the hip",
    "amodiaquine was given for malaria with fits",
    "haloperidol induced dyskinesia in the elderly",
    "captopril lowered blood pressure without cough",
]


def corpus_text() -> str:
    # paragraphs are documents; repeating the sentences gives the models something to learn
    return "\n\n".join(f"{a} . {b} ." for a in SENTENCES for b in SENTENCES)


def test_plain_text_paragraphs_are_documents(tmp_path: Path) -> None:
    path = tmp_path / "abstracts.txt"
    path.write_text("first one.\n\nsecond one.\n\n\n  \nthird one.\n", encoding="utf-8")
    docs = read_documents([path])
    assert [d.text for d in docs] == ["first one.", "second one.", "third one."]
    assert [d.id for d in docs] == ["abstracts:1", "abstracts:2", "abstracts:3"]


def test_exclusion_drops_by_id_and_by_normalised_text() -> None:
    docs = [Document("1", "Fever and pain."), Document("2", "Other text."),
            Document("3", "fever  AND pain.")]
    excluded = [Document("2", "different"), Document("x", "FEVER and pain.")]
    kept, counts = exclude_documents(docs, excluded)
    assert kept == [] and counts["excluded"] == 3 and counts["overlap_after_exclusion"] == 0
    kept, counts = exclude_documents(docs, [Document("z", "unrelated")])
    assert kept == docs and counts["excluded"] == 0


TITLE = "Lidocaine-induced cardiac asystole."
ABSTRACT = (
    "Intravenous administration of a single 50-mg bolus of lidocaine in a 67-year-old man "
    "resulted in profound depression of the activity of the sinoatrial and atrioventricular "
    "nodal pacemakers. The patient had no apparent associated conditions which might have "
    "predisposed him to the development of bradyarrhythmias; and, thus, this probably "
    "represented a true idiosyncrasy to lidocaine.")
OTHER = (
    "Haloperidol given to elderly patients with delirium was followed by tardive dyskinesia "
    "in a small number of cases; the movements resolved within weeks of stopping the drug, "
    "and no patient needed further treatment for them in this retrospective series.")


def test_exclusion_drops_an_abstract_whose_title_plus_abstract_is_excluded() -> None:
    # the tutorial's instruction records hold BC5CDR abstracts without their titles, each
    # several times (one record per task)
    docs = [Document("instruct:1", ABSTRACT), Document("instruct:2", OTHER),
            Document("instruct:3", "  " + ABSTRACT.upper())]
    kept, counts = exclude_documents(docs, [Document("227508", f"{TITLE} {ABSTRACT}")])
    assert kept == [docs[1]]
    assert counts["excluded"] == counts["excluded_by_containment"] == 2
    assert counts["excluded_by_id"] == counts["excluded_by_text"] == 0
    assert counts["overlap_after_exclusion"] == 0


def test_exclusion_drops_every_title_plus_abstract_holding_an_excluded_abstract() -> None:
    # the converse, with the holding text twice and an id repeated on an unrelated text:
    # documents are dropped by position, not by id
    titled = f"{TITLE} {ABSTRACT}"
    docs = [Document("a:1", titled), Document("a:1", OTHER), Document("b:1", titled)]
    kept, counts = exclude_documents(docs, [Document("instruct:1", ABSTRACT)])
    assert kept == [docs[1]]
    assert counts["excluded"] == counts["excluded_by_containment"] == 2
    assert counts["overlap_after_exclusion"] == 0


def test_exclusion_drops_a_short_abstract_too() -> None:
    # a whole abstract can be under 200 characters (three BC5CDR dev abstracts are)
    short = ("We report a case of combined levomepromazine-fluvoxamine treatment-induced "
             "seizures in a patient with no history of epilepsy.")
    docs = [Document("instruct:1", short), Document("instruct:2", OTHER)]
    kept, counts = exclude_documents(docs, [Document("8473723", f"{TITLE} {short}")])
    assert len(short) < 200 and kept == [docs[1]] and counts["excluded_by_containment"] == 1


def test_held_out_split_is_by_document_and_seeded() -> None:
    docs = [Document(str(i), f"text {i}") for i in range(20)]
    train, held = held_out_split(docs, 0.1, seed=3)
    assert len(held) == 2 and {d.id for d in train} & {d.id for d in held} == set()
    assert held_out_split(docs, 0.1, seed=3)[1] == held
    with pytest.raises(MednerError, match="at least 2 documents"):
        held_out_split(docs[:1], 0.1, seed=3)


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlm")
    text = root / "medical.txt"
    text.write_text(corpus_text(), encoding="utf-8")
    held_back = root / "dev.jsonl"  # two paragraphs that must never be pretrained on
    paragraphs = corpus_text().split("\n\n")
    write_corpus([Document("d1", paragraphs[0]), Document("d2", paragraphs[7])], held_back,
                 "jsonl")
    base = save_tiny_base(root / "base", SENTENCES)
    config = PretrainConfig(objective="mlm", texts=(str(text),), base_model=str(base),
                            out=str(root / "adapted"), exclude=(str(held_back),),
                            block_size=32, held_out=0.15, max_steps=60, batch_size=8,
                            learning_rate=3e-3, warmup=0, bf16=False, seed=1)
    return root, pretrain(config, log=lambda _m: None, progress=False)


def test_mlm_lowers_held_out_perplexity_and_records_lineage(mlm_run) -> None:
    root, result = mlm_run
    meta = json.loads((result.path / "medner.json").read_text())
    assert meta["kind"] == "pretrained-base" and meta["objective"] == "mlm"
    assert meta["perplexity_after"] < meta["perplexity_before"]
    assert meta["steps"] == 60 and meta["base_model"]["source"] == "folder"
    assert meta["exclusion"]["excluded"] == 2 and meta["exclusion"]["overlap_after_exclusion"] == 0
    assert meta["texts"]["documents"] == 34 and len(meta["texts"]["fingerprint"]) >= 16
    assert not Path(f"{result.path}.checkpoints").exists()


def test_mlm_output_is_a_base_model_for_medner_train(mlm_run) -> None:
    root, result = mlm_run
    text = "amodiaquine was given for malaria with fits"
    start = text.index("malaria")
    data = root / "train.jsonl"
    write_corpus([Document("a", text, (Span(start, start + 7, "DISEASE", "malaria"),))], data,
                 "jsonl")
    out = root / "ner"
    run = CliRunner().invoke(app, [
        "train", "--train", str(data), "--dev", str(data), "--base-model", str(result.path),
        "--out", str(out), "--max-steps", "3", "--max-length", "32", "--predict-max-length",
        "32", "--stride", "4", "--no-bf16", "--batch-size", "2"])
    assert run.exit_code == 0, run.output + repr(run.exception)
    assert json.loads((out / "medner.json").read_text())["backend"] == "encoder"


def test_evaluate_lm_cli_reports_the_adapted_perplexity(mlm_run) -> None:
    root, result = mlm_run
    run = CliRunner().invoke(app, ["evaluate-lm", str(result.path), "--text",
                                   str(root / "medical.txt"), "--block-size", "32", "--json"])
    assert run.exit_code == 0, run.output + repr(run.exception)
    report = json.loads(run.stdout)
    assert report["objective"] == "mlm" and report["perplexity"] > 1


def test_clm_lowers_held_out_perplexity(tmp_path: Path) -> None:
    from test_llm_tiny import save_tiny_llm

    text = tmp_path / "medical.txt"
    text.write_text(corpus_text(), encoding="utf-8")
    base = save_tiny_llm(tmp_path / "base", SENTENCES, init_range=0.02)
    run = CliRunner().invoke(app, [
        "pretrain", "--objective", "clm", "--text", str(text), "--base-model", str(base),
        "--out", str(tmp_path / "clm"), "--block-size", "32", "--held-out", "0.15",
        "--max-steps", "40", "--batch-size", "8", "--learning-rate", "3e-3", "--no-bf16"])
    assert run.exit_code == 0, run.output + repr(run.exception)
    meta = json.loads((tmp_path / "clm" / "medner.json").read_text())
    assert meta["objective"] == "clm" and meta["perplexity_after"] < meta["perplexity_before"]

    # the adapted decoder is a --base-model for the LLM backend
    text = "amodiaquine was given for malaria with fits"
    start = text.index("malaria")
    data = tmp_path / "train.jsonl"
    write_corpus([Document("a", text, (Span(start, start + 7, "DISEASE", "malaria"),))], data,
                 "jsonl")
    run = CliRunner().invoke(app, [
        "train", "--backend", "llm", "--train", str(data), "--dev", str(data), "--base-model",
        str(tmp_path / "clm"), "--out", str(tmp_path / "llm"), "--max-steps", "2",
        "--eval-steps", "2", "--max-new-tokens", "8", "--lora-r", "2", "--no-bf16",
        "--batch-size", "1", "--grad-accum", "1"])
    assert run.exit_code == 0, run.output + repr(run.exception)
    assert json.loads((tmp_path / "llm" / "medner.json").read_text())["backend"] == "llm"


def test_mlm_on_a_decoder_and_bad_objective_are_clear_errors(tmp_path: Path) -> None:
    run = CliRunner().invoke(app, ["pretrain", "--objective", "xlm", "--text", "a.txt",
                                   "--base-model", "minilm-l6", "--out", str(tmp_path / "o")])
    assert run.exit_code != 0 and "mlm or clm" in str(run.exception)


def test_resume_continues_from_the_last_checkpoint(tmp_path: Path, monkeypatch) -> None:
    text = tmp_path / "medical.txt"
    text.write_text(corpus_text(), encoding="utf-8")
    base = save_tiny_base(tmp_path / "base", SENTENCES)
    config = PretrainConfig(objective="mlm", texts=(str(text),), base_model=str(base),
                            out=str(tmp_path / "adapted"), block_size=32, max_steps=4,
                            save_steps=2, batch_size=4, bf16=False, seed=1)

    def crash(*_args, **_kwargs):
        raise KeyboardInterrupt  # the run stops after training, before the folder is written

    monkeypatch.setattr("medner.core.training.atomic_folder", crash)
    with pytest.raises(KeyboardInterrupt):
        pretrain(config, log=lambda _m: None, progress=False)
    assert (tmp_path / "adapted.checkpoints" / "checkpoint-4").is_dir()
    assert not (tmp_path / "adapted").exists()  # nothing that looks finished

    monkeypatch.undo()
    messages: list[str] = []
    resumed = pretrain(PretrainConfig(**{**config.__dict__, "max_steps": 6, "resume": True}),
                       log=messages.append, progress=False)
    assert any("resuming from" in m and "checkpoint-4" in m for m in messages)
    assert resumed.meta["steps"] == 6 and (tmp_path / "adapted" / "medner.json").is_file()

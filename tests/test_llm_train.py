"""Overfit-then-reload with a tiny Llama built in code: LoRA trains, saves, reloads through
``medner.backends.load`` and predicts the same spans; the base weights stay frozen."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("trl")

from test_llm_tiny import save_tiny_llm  # noqa: E402

from medner.backends import load  # noqa: E402
from medner.backends.llm.config import LLMConfig  # noqa: E402
from medner.backends.llm.prompts import prompt_tokens, render_prompt  # noqa: E402
from medner.backends.prompted.prompts import get_template  # noqa: E402
from medner.document import Document, Span  # noqa: E402
from medner.errors import ConfigError, MednerError  # noqa: E402
from medner.io import write_corpus  # noqa: E402
from medner.labels import LabelSchema  # noqa: E402


def doc(id_: str, text: str, *mentions: tuple[str, str]) -> Document:
    spans = []
    for mention, label in mentions:
        start = text.index(mention)
        spans.append(Span(start, start + len(mention), label, mention))
    return Document(id_, text, tuple(spans))


DOCS = [
    doc("a", "Cisplatin caused nephrotoxicity in rats.",
        ("Cisplatin", "Chemical"), ("nephrotoxicity", "Disease")),
    doc("b", "Lithium toxicity led to tremor.", ("Lithium", "Chemical"), ("tremor", "Disease")),
]
SCHEMA = LabelSchema("t", ("Chemical", "Disease"))


class _NoChat:
    chat_template = None


def keys(d: Document) -> set[tuple[int, int, str]]:
    return {s.key() for s in d.spans}


def tiny_config(root: Path, **kw) -> LLMConfig:
    tasks = get_template("entities-json").build_tasks(SCHEMA)
    texts = [render_prompt(_NoChat(), t.user_message(d.text, SCHEMA)) + t.completion(d)
             for d in DOCS for t in tasks]
    base = root / "base"
    if not base.exists():
        save_tiny_llm(base, texts)
    data = root / "train.jsonl"
    write_corpus(DOCS, data, "jsonl")
    values = dict(train=str(data), dev=str(data), base_model=str(base), out=str(root / "model"),
                  template="entities-json", max_steps=40, eval_steps=40, batch_size=2,
                  grad_accum=1, learning_rate=8e-3, warmup=0, scheduler="constant",
                  lora_dropout=0.0, logging_steps=10, max_new_tokens=48, bf16=False, seed=0)
    values.update(kw)
    return LLMConfig(**values)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from medner.backends.llm.train import train

    root = tmp_path_factory.mktemp("llm")
    result = train(tiny_config(root, merge=True), log=lambda _m: None, progress=False)
    return root, result


def test_loss_gets_tiny_and_generation_f1_is_logged(trained):
    _, result = trained
    losses = [e["loss"] for e in result.meta["log_history"] if "loss" in e]
    assert losses[-1] < 0.1 < losses[0]
    evals = [e for e in result.meta["log_history"] if "eval_strict_f1" in e]
    assert evals and "eval_hallucinations" in evals[-1]
    assert any("eval_loss" in e for e in result.meta["log_history"])
    assert result.meta["dev_metrics"]["micro"]["f1"] == 1.0
    assert result.meta["dev_metrics"]["notes"]["llm_hallucinations"] == 0
    # small models train faster without recomputing activations (trl's default is on)
    assert not result.model.get_base_model().is_activation_checkpointing


def test_reload_predicts_the_same_spans(trained):
    root, result = trained
    model = load(result.path)
    assert model.backend == "llm" and model.labels == ("Chemical", "Disease")
    assert model.meta["weights"] == "merged"
    from transformers import AutoModelForCausalLM  # the merged folder is plain transformers

    plain = AutoModelForCausalLM.from_pretrained(str(result.path))
    assert not any("lora" in n for n, _ in plain.named_parameters())
    predicted = model.predict(DOCS)
    for gold, pred in zip(DOCS, predicted, strict=True):
        assert keys(pred) == keys(gold)
        assert pred.metadata["llm"]["hallucinations"] == 0
    assert model.last_notes["llm_hallucinations"] == 0
    extracted = model.extract([DOCS[0].text], ids=["x"])
    assert extracted[0].id == "x" and keys(extracted[0]) == keys(DOCS[0])


def gold_answer_margins(model, documents) -> list[float]:
    """For each token of each gold answer (teacher-forced): its logit minus the best other
    token's logit. Positive everywhere = greedy decoding reproduces the gold answers."""
    import torch

    tokenizer = model.tokenizer
    margins: list[float] = []
    for document in documents:
        for task in model.tasks:
            prompt = tokenizer(render_prompt(tokenizer, task.user_message(document.text,
                                                                          model.schema)))
            answer = tokenizer(task.completion(document), add_special_tokens=False)
            prompt_ids = list(prompt["input_ids"])
            answer_ids = list(answer["input_ids"]) + [tokenizer.eos_token_id]
            with torch.inference_mode():
                logits = model.model(input_ids=torch.tensor([prompt_ids + answer_ids])).logits
            steps = logits[0, len(prompt_ids) - 1:-1].float().clone()
            rows = torch.arange(len(answer_ids))
            gold = steps[rows, torch.tensor(answer_ids)]
            steps[rows, torch.tensor(answer_ids)] = float("-inf")
            margins += (gold - steps.max(dim=-1).values).tolist()
    return margins


def test_greedy_margins_dwarf_bf16_rounding(trained):
    """Why the reload tests hold on any CPU: the fixture's narrowest greedy choice wins by
    several times what bf16 (this CPU's kernels, native or emulated) moves any margin."""
    _, result = trained
    full = gold_answer_margins(load(result.path, bf16=False), DOCS)
    half = gold_answer_margins(load(result.path, bf16=True), DOCS)
    shift = max(abs(a - b) for a, b in zip(full, half, strict=True))
    assert min(full) > 5 * shift, (min(full), shift)


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_reload_predicts_the_same_spans_in_either_precision(trained, bf16):
    import torch

    _, result = trained
    model = load(result.path, bf16=bf16)
    expected = torch.bfloat16 if bf16 else torch.float32
    assert model.bf16 is bf16 and next(model.model.parameters()).dtype == expected
    assert [keys(d) for d in model.predict(DOCS)] == [keys(d) for d in DOCS]


def test_reload_on_a_device(trained):
    import torch

    _, result = trained
    assert load(result.path, device="cpu").model.device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(MednerError, match="no CUDA GPU"):
            load(result.path, device="cuda")


def test_entities_lines_template_trains_to_the_gold_spans(tmp_path):
    from medner.backends.llm.train import train

    result = train(tiny_config(tmp_path, template="entities-lines", gradient_checkpointing=True,
                               group_by_length=False), log=lambda _m: None, progress=False)
    assert result.model.get_base_model().is_activation_checkpointing
    assert result.meta["dev_metrics"]["micro"]["f1"] == 1.0
    assert result.meta["dev_metrics"]["notes"]["llm_hallucinations"] == 0
    predicted = load(result.path).predict(DOCS)
    assert [keys(p) for p in predicted] == [keys(d) for d in DOCS]


def test_adapter_only_folder_loads_through_the_base(trained, tmp_path):
    _, result = trained
    folder = tmp_path / "adapter-only"
    shutil.copytree(result.path, folder)
    (folder / "model.safetensors").unlink()
    (folder / "config.json").unlink()
    meta = json.loads((folder / "medner.json").read_text())
    meta["weights"] = "adapter"
    (folder / "medner.json").write_text(json.dumps(meta))
    model = load(folder)
    assert [keys(d) for d in model.predict(DOCS)] == [keys(d) for d in DOCS]
    # constrained decoding leaves a well-trained model's answers alone
    constrained = load(folder)
    constrained.constrained = True
    assert [keys(d) for d in constrained.predict(DOCS)] == [keys(d) for d in DOCS]
    assert constrained.last_stats.constrained_steps > 0

    meta["base_model"]["name"] = str(tmp_path / "missing-base")
    (folder / "medner.json").write_text(json.dumps(meta))
    with pytest.raises(MednerError, match="retrain with --merge"):
        load(folder)


def test_adapter_changed_and_base_did_not(trained):
    import torch
    from safetensors.torch import load_file

    root, result = trained
    adapter = load_file(str(result.path / "adapter" / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(torch.count_nonzero(v) > 0 for v in lora_b)  # B starts at zero
    base = load_file(str(root / "base" / "model.safetensors"))
    trained_base = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
                    for k, v in result.model.state_dict().items() if "lora_" not in k}
    assert set(base) <= set(trained_base)
    for name, value in base.items():
        assert torch.equal(value, trained_base[name]), name
    merged = load_file(str(result.path / "model.safetensors"))
    assert not torch.equal(merged["model.layers.0.self_attn.q_proj.weight"],
                           base["model.layers.0.self_attn.q_proj.weight"])


def test_folder_describes_itself(trained):
    _, result = trained
    meta = json.loads((result.path / "medner.json").read_text())
    assert meta["backend"] == "llm" and meta["template"] == "entities-json"
    assert meta["schema"]["labels"] == ["Chemical", "Disease"]
    assert meta["training_config"]["lora_r"] == 16
    assert meta["dev_metrics"]["sample"] == {"documents": 2, "of": 2, "seed": 0}
    for name in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                 "model.safetensors", "config.json", "tokenizer.json", "README.md"):
        assert (result.path / name).is_file(), name
    assert not Path(str(result.path) + ".train").exists()


def test_long_documents_are_split_not_truncated(trained):
    _, result = trained
    model = load(result.path)
    template_tokens = prompt_tokens(model.tokenizer, model.tasks, model.schema, "")
    model.max_prompt_tokens = template_tokens + 30  # room for about one sentence
    long = Document("long", " ".join([DOCS[0].text, DOCS[1].text] * 2))
    pred = model.predict([long])[0]
    assert pred.metadata["llm"]["chunks"] > 1
    assert model.last_notes["llm_chunked_documents"] == 1
    for span in pred.spans:
        assert long.text[span.start:span.end] == span.text
    assert {s.text for s in pred.spans} >= {"Cisplatin", "tremor"}
    model.max_prompt_tokens = template_tokens - 1
    with pytest.raises(MednerError, match="raise max_prompt_tokens"):
        model.predict([long])


def test_training_pieces_hold_the_mentions_inside_them(trained):
    from medner.backends.llm.train import piece_documents

    _, result = trained
    model = load(result.path)
    long = doc("long", f"{DOCS[0].text} {DOCS[1].text} Cisplatin and tremor again.",
               ("Cisplatin", "Chemical"), ("nephrotoxicity", "Disease"),
               ("Lithium", "Chemical"), ("tremor", "Disease"))
    crossed = doc("x", long.text, ("rats. Lithium", "Chemical"))
    limit = prompt_tokens(model.tokenizer, model.tasks, model.schema, "") + 30
    pieces, counts = piece_documents([long, crossed, DOCS[1]], model.tasks, model.tokenizer,
                                     model.schema, limit)
    whole = [p for p in pieces if p.metadata["piece_of"] == "long"]
    assert len(whole) > 1 and counts["pieces"] == len(pieces)
    # the mention across a sentence end spoils both pieces; short DOCS[1] gives none
    assert counts["crossed"] == 2 and len(pieces) == 2 * len(whole) - 2
    for piece in whole:
        assert piece.text in long.text and not piece.relations
        for span in piece.spans:
            assert piece.text[span.start:span.end] == span.text
    assert sum(len(p.spans) for p in whole) == len(long.spans)


def test_training_pieces_need_an_entity_template(tmp_path):
    from medner.backends.llm.train import train

    config = tiny_config(tmp_path, template="relations", train_piece_tokens=64)
    with pytest.raises(ConfigError, match="train_piece_tokens"):
        train(config, log=lambda _m: None, progress=False)


def test_qlora_step_on_cpu(tmp_path):
    pytest.importorskip("bitsandbytes")
    from medner.backends.llm.train import train

    result = train(tiny_config(tmp_path, quantize="4bit", max_steps=2, eval_steps=None,
                               dev=None, eval_sample=0, out=str(tmp_path / "q")),
                   log=lambda _m: None, progress=False)
    assert result.meta["quantize"] == "4bit" and result.meta["global_steps"] == 2
    assert any(type(m).__name__ == "Linear4bit" for m in result.model.modules())
    # the two steps trained the adapter (B starts at zero) ...
    import torch
    from safetensors.torch import load_file

    adapter = load_file(str(result.path / "adapter_model.safetensors"))
    settings = json.loads((result.path / "adapter_config.json").read_text())
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    lora_a, lora_b = adapter[f"{prefix}.lora_A.weight"], adapter[f"{prefix}.lora_B.weight"]
    assert torch.count_nonzero(lora_b) > 0
    # ... and the reloaded model is the full-precision base plus exactly that adapter (up to
    # the rounding of the adapter's bf16 weights)
    reloaded = load(result.path, bf16=False)
    base = load_file(str(tmp_path / "base" / "model.safetensors"))
    name = "model.layers.0.self_attn.q_proj.weight"
    delta = reloaded.model.state_dict()[name] - base[name]
    expected = settings["lora_alpha"] / settings["r"] * (lora_b.float() @ lora_a.float())
    assert torch.allclose(delta, expected, atol=0.01 * float(expected.abs().max()))
    (predicted,) = reloaded.predict(DOCS[:1])
    assert predicted.id == "a" and predicted.text == DOCS[0].text
    assert all(predicted.text[s.start:s.end] == s.text for s in predicted.spans)


def test_resume_continues_from_the_last_checkpoint(tmp_path, monkeypatch):
    import medner.backends.llm.train as llm_train

    config = tiny_config(tmp_path, max_steps=2, eval_steps=2, dev=None, eval_sample=0,
                         logging_steps=1)

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt  # killed after the last checkpoint, before the folder

    monkeypatch.setattr("medner.core.training.atomic_folder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        llm_train.train(config, log=lambda _m: None, progress=False)
    work = Path(str(Path(config.out).resolve()) + ".train")
    assert (work / "checkpoint-2").is_dir()
    monkeypatch.undo()

    logs: list[str] = []
    result = llm_train.train(config.override({"resume": True, "max_steps": 4}),
                             log=logs.append, progress=False)
    assert any(m.startswith("resuming from") and m.endswith("checkpoint-2") for m in logs)
    assert result.meta["global_steps"] == 4
    steps_logged = [e["step"] for e in result.meta["log_history"] if "loss" in e]
    assert steps_logged == [1, 2, 3, 4]  # history carried over, steps 1-2 not run again
    assert not work.exists()


def test_cli_trains_the_llm_backend_named_in_the_config_file(tmp_path):
    from typer.testing import CliRunner

    from medner.cli import app

    config = tiny_config(tmp_path, max_steps=4, eval_steps=4)
    file = tmp_path / "llm.toml"
    file.write_text('[train]\nbackend = "llm"\ntemplate = "entities-json"\nmax_steps = 40\n'
                    'batch_size = 2\ngrad_accum = 1\nbf16 = false\n')
    result = CliRunner().invoke(app, [
        "train", "-c", str(file), "--train", config.train, "--dev", config.dev,
        "--base-model", config.base_model, "--out", config.out, "--max-steps", "4",
        "--eval-steps", "4", "--max-new-tokens", "16", "--lora-r", "4"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "dev strict micro F1:" in result.output
    meta = json.loads((Path(config.out) / "medner.json").read_text())
    assert meta["backend"] == "llm" and meta["global_steps"] == 4  # the flag beat the file
    assert meta["training_config"]["lora_r"] == 4
    assert load(config.out).backend == "llm"


def test_cli_refuses_a_flag_of_the_other_backend(tmp_path):
    from typer.testing import CliRunner

    from medner.cli import app

    result = CliRunner().invoke(app, ["train", "--backend", "llm", "--scheme", "BILOU"])
    assert isinstance(result.exception, ConfigError)
    assert "--scheme" in str(result.exception) and "encoder" in str(result.exception)
    result = CliRunner().invoke(app, ["train", "--quantize", "4bit"])  # encoder by default
    assert isinstance(result.exception, ConfigError)
    assert "--quantize" in str(result.exception) and "llm" in str(result.exception)


def test_extract_and_evaluate_cli_take_constrained_for_llm_folders(trained, tmp_path):
    from typer.testing import CliRunner

    from medner.cli import app

    _, result = trained
    out = CliRunner().invoke(app, ["extract", str(result.path), "--constrained", "-f", "jsonl",
                                   "--repeat-patience", "0", DOCS[0].text])
    assert out.exit_code == 0, out.output + repr(out.exception)
    assert keys(Document.from_dict(json.loads(out.stdout))) == keys(DOCS[0])
    gold = tmp_path / "gold.jsonl"
    write_corpus(DOCS, gold, "jsonl")
    out = CliRunner().invoke(app, ["evaluate", str(result.path), "--data", str(gold), "--free",
                                   "--repeat-patience", "5", "--bootstrap", "0",
                                   "--output-format", "json"])
    assert out.exit_code == 0, out.output + repr(out.exception)
    report = json.loads(out.stdout)
    assert report["entities"]["strict"]["micro"]["f1"] == 1.0


def test_extract_and_evaluate_cli_cut_prompts_at_max_prompt_tokens(trained, tmp_path):
    from typer.testing import CliRunner

    from medner.cli import app

    _, result = trained
    model = load(result.path)
    limit = prompt_tokens(model.tokenizer, model.tasks, model.schema, "") + 30
    long = f"{DOCS[0].text} {DOCS[1].text}"
    out = CliRunner().invoke(app, ["extract", str(result.path), "-f", "jsonl",
                                   "--max-prompt-tokens", str(limit), long])
    assert out.exit_code == 0, out.output + repr(out.exception)
    assert Document.from_dict(json.loads(out.stdout)).metadata["llm"]["chunks"] == 2
    gold = tmp_path / "gold.jsonl"
    write_corpus([Document("long", long)], gold, "jsonl")
    out = CliRunner().invoke(app, ["evaluate", str(result.path), "--data", str(gold),
                                   "--max-prompt-tokens", "10", "--bootstrap", "0"])
    assert out.exit_code != 0
    assert "max_prompt_tokens must be at least 32, not 10" in out.output + str(out.exception)


def test_llm_folders_serve_and_batch_like_encoder_folders(trained, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from medner.batch import extract_to_file
    from medner.serve.app import create_app

    _, result = trained
    model = load(result.path)
    with TestClient(create_app(model)) as client:
        info = client.get("/v1/model").json()
        assert info["backend"] == "llm" and info["labels"] == ["Chemical", "Disease"]
        answer = client.post("/v1/extract", json={"texts": [DOCS[0].text]}).json()
    served = {(s["start"], s["end"], s["label"]) for s in answer["documents"][0]["spans"]}
    assert served == keys(DOCS[0])

    source = tmp_path / "in.jsonl"
    write_corpus(DOCS, source, "jsonl")
    out = tmp_path / "out.jsonl"
    run = extract_to_file(model, [source], out, progress=False)
    assert run.documents == 2 and [keys(Document.from_dict(json.loads(line)))
                                   for line in out.read_text().splitlines()] == [keys(d)
                                                                                  for d in DOCS]


def test_an_entities_template_reports_no_relation_score(trained):
    from medner.backends.llm.train import generation_metrics
    from medner.document import Relation

    _, result = trained
    model = load(result.path)
    assert not model.predicts_relations
    first = DOCS[0]
    ids = [s.id or f"T{k}" for k, s in enumerate(first.spans)]
    spans = tuple(replace(s, id=i) for s, i in zip(first.spans, ids, strict=True))
    cid = Relation("CID", ids[0], ids[1], args="span")
    gold = [replace(first, spans=spans, relations=(cid,)), DOCS[1]]
    metrics = generation_metrics(model, gold)
    assert metrics["micro"]["f1"] == 1.0
    assert "relations" not in metrics  # not 0.0: the template never asks for relations


def test_saved_answers_score_again_without_decoding(trained):
    _, result = trained
    model = load(result.path)
    assert model.repeat_patience == result.meta["inference"]["repeat_patience"] == 3
    decoded = model.predict(DOCS)
    answers = list(model.last_answers)
    assert len(answers) == len(DOCS)
    again = model.predict(DOCS, answers=answers)
    assert [keys(d) for d in again] == [keys(d) for d in decoded] == [keys(d) for d in DOCS]
    assert model.last_stats.new_tokens == 0  # nothing was decoded the second time
    # the answers given are the ones used: empty lists give no spans
    assert all(not d.spans for d in model.predict(DOCS, answers=["[]"] * len(DOCS)))
    with pytest.raises(MednerError, match="1 answers given for 2 prompts"):
        model.predict(DOCS, answers=answers[:1])


def test_the_loop_stop_can_be_changed_at_load_time(trained):
    _, result = trained
    assert load(result.path, repeat_patience=0).repeat_patience == 0
    assert load(result.path, repeat_patience=6).repeat_patience == 6
    assert load(result.path).repeat_patience == 3  # as saved
    with pytest.raises(MednerError, match="repeat_patience must be >= 0"):
        load(result.path, repeat_patience=-1)


def test_abbreviations_of_a_grounded_long_form_are_tagged(trained):
    _, result = trained
    text = "Valproic acid (VPA) caused nephrotoxicity; VPA levels rose."
    answer = '[{"text": "Valproic acid", "label": "Chemical"}]'
    doc = Document("v", text)
    plain = load(result.path, abbreviations=False).predict([doc], answers=[answer])[0]
    assert [s.text for s in plain.spans] == ["Valproic acid"]
    assert result.meta["inference"]["abbreviations"] is True  # the training default
    tagged = load(result.path).predict([doc], answers=[answer])[0]
    assert [(s.text, s.label) for s in tagged.spans] == [
        ("Valproic acid", "Chemical"), ("VPA", "Chemical"), ("VPA", "Chemical")]


def test_training_continues_a_saved_adapter(trained, tmp_path):
    import torch
    from safetensors.torch import load_file

    from medner.backends.llm.train import train

    root, result = trained
    # a near-zero learning rate: the continued adapter must still be the trained one (a new
    # adapter starts with B = 0, i.e. the untrained base model, and would lose the spans)
    config = tiny_config(root, out=str(tmp_path / "more"), continue_from=str(result.path),
                         learning_rate=1e-12, max_steps=2, eval_steps=2, lora_r=4, merge=False)
    more = train(config, log=lambda _m: None, progress=False)
    before = load_file(str(result.path / "adapter" / "adapter_model.safetensors"))
    after = load_file(str(more.path / "adapter_model.safetensors"))
    assert before.keys() == after.keys()
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    assert more.meta["continued_from"]["global_steps"] == result.meta["global_steps"]
    assert more.meta["training_config"]["lora_r"] == result.meta["training_config"]["lora_r"]
    assert [keys(d) for d in load(more.path).predict(DOCS)] == [keys(d) for d in DOCS]


def test_continue_from_must_be_an_llm_folder(trained, tmp_path):
    from medner.backends.llm.train import train

    root, result = trained
    with pytest.raises(ConfigError, match="not a trained medner model folder"):
        train(tiny_config(root, continue_from=str(tmp_path)), log=lambda _m: None)
    (tmp_path / "medner.json").write_text(json.dumps({"backend": "encoder"}))
    with pytest.raises(ConfigError, match="encoder model; only an LLM folder"):
        train(tiny_config(root, continue_from=str(tmp_path)), log=lambda _m: None)
    with pytest.raises(ConfigError, match="leave out --base-model"):
        train(tiny_config(root, continue_from=str(result.path), base_model="other"),
              log=lambda _m: None)

"""The encoder's model folder: weights, tokenizer, label map, ``medner.json`` and a model card
(saved atomically through ``medner.core.folder``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medner.core.folder import MEDNER_JSON, read_medner_json
from medner.errors import MednerError

LABELS_JSON = "labels.json"
REQUIRED_FILES = ("medner.json", "config.json", "model.safetensors", "tokenizer.json",
                  "tokenizer_config.json")


def check_folder(path: str | Path) -> dict[str, Any]:
    """Validate a model folder and return its ``medner.json``; errors name the missing file."""
    folder = Path(path)
    if not folder.is_dir():
        raise MednerError(f"model folder {folder} does not exist (train one with "
                          "`medner train`, or pass the folder it wrote with --out)")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise MednerError(f"model folder {folder} is incomplete: missing "
                          f"{', '.join(missing)}. Re-run `medner train` or copy the whole folder.")
    return read_medner_json(folder)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def model_card(meta: dict[str, Any]) -> str:
    """A README with what the model predicts, how it was trained and its dev metrics."""
    schema = meta["schema"]
    cfg = meta["training_config"]
    metrics = meta.get("dev_metrics") or {}
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: token-classification",
        "tags: [medner, ner, medical]",
        "---",
        "",
        f"# medner encoder: {schema['name']}",
        "",
        f"Token classification ({meta['scheme']} tags over words) predicting "
        f"{', '.join(schema['labels'])}, fine-tuned from `{meta['base_model']['name']}` "
        "by [medner](https://github.com/) .",
        "",
        "## Use",
        "",
        "```python",
        "import medner",
        f'model = medner.load("{meta.get("folder_name", "MODEL")}")',
        'docs = model.extract(["she was suffering from Malaria"])',
        "```",
        "",
        "or `medner extract MODEL \"some text\"`. The folder also loads in "
        "`transformers.pipeline(\"token-classification\")` (without medner's word-level "
        "decoding and window merging).",
        "",
        "## Dev metrics (strict span match)",
        "",
    ]
    if metrics:
        lines += ["| label | precision | recall | F1 | support |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for label, m in sorted((metrics.get("per_label") or {}).items()):
            lines.append(f"| {label} | {_pct(m.get('precision'))} | {_pct(m.get('recall'))} | "
                         f"{_pct(m.get('f1'))} | {m.get('tp', 0) + m.get('fn', 0)} |")
        micro = metrics.get("micro") or {}
        support = micro.get("tp", 0) + micro.get("fn", 0)
        lines.append(f"| **micro** | {_pct(micro.get('precision'))} | "
                     f"{_pct(micro.get('recall'))} | **{_pct(micro.get('f1'))}** | {support} |")
    else:
        lines.append("No dev set was given; no metrics.")
    data = meta.get("data", {})
    lines += [
        "",
        "## Training",
        "",
        f"- data: {data.get('train_path')} ({data.get('train_documents')} documents, "
        f"fingerprint `{data.get('train_fingerprint')}`); dev: {data.get('dev_path')} "
        f"({data.get('dev_documents')} documents, fingerprint `{data.get('dev_fingerprint')}`)",
        f"- epochs run: {meta.get('epochs_run')}, best step: {meta.get('best_step')}, "
        f"wall time: {meta.get('train_seconds', 0):.0f} s",
        f"- learning rate {cfg['learning_rate']}, batch {cfg['batch_size']}, windows of "
        f"{cfg['max_length']} tokens (stride {cfg['stride']}), seed {cfg['seed']}",
        f"- span alignment: {meta.get('alignment', {}).get('aligned')} of "
        f"{meta.get('alignment', {}).get('spans')} spans matched token boundaries exactly",
    ]
    if cfg.get("adversarial_epsilon"):
        lines.append(f"- adversarial training (FGM) on the word embeddings, epsilon "
                     f"{cfg['adversarial_epsilon']}")
    ensemble = meta.get("ensemble")
    if ensemble:
        seeds = ", ".join(str(source.get("seed")) for source in ensemble["sources"])
        lines.append(f"- an ensemble of {len(ensemble['sources'])} models trained alike (seeds "
                     f"{seeds}; the line above is the first's): their word probabilities are "
                     "averaged. The plain pipeline runs the first member only.")
    lines += [
        "",
        f"The full training config, label schema and data fingerprints are in `{MEDNER_JSON}`.",
        "",
    ]
    return "\n".join(lines)

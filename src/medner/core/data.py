"""Training data for every backend: read, relabel onto the label schema, split, check leaks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from medner.core.config import TrainingConfig
from medner.document import Document, corpus_fingerprint
from medner.errors import ConfigError, MednerError
from medner.labels import LabelSchema, apply_schema, get_schema, infer_schema

Log = Callable[[str], None]


DEMO_NAME = "demo"


def demo_corpus_path() -> Path:
    """The sample clinical corpus shipped inside the package (``--train demo``)."""
    path = Path(str(resources.files("medner") / "data" / "clinical_demo.jsonl"))
    if not path.is_file():
        raise MednerError(f"the demo corpus is missing from the installed package ({path}); "
                          "reinstall medner")
    return path


def resolve_data_path(value: str) -> Path:
    return demo_corpus_path() if value == DEMO_NAME else Path(value)


@dataclass
class Data:
    train: list[Document]
    dev: list[Document]
    schema: LabelSchema
    info: dict[str, Any] = field(default_factory=dict)


def load_data(config: TrainingConfig, log: Log = print) -> Data:
    """Read, relabel onto the schema and (optionally) split the training data."""
    from medner.io import read_corpus
    from medner.split import check_leak, split_documents

    train_path = resolve_data_path(config.train)
    corpus = read_corpus(train_path, config.format, on_mismatch=config.on_mismatch)
    train_docs = list(corpus.documents)
    notes: dict[str, Any] = {"train_read_report": dict(corpus.report.counts)}
    dev_docs: list[Document] = []
    dev_path: str | None = None
    if config.dev:
        dev_corpus = read_corpus(resolve_data_path(config.dev), config.format,
                                 on_mismatch=config.on_mismatch)
        dev_docs = list(dev_corpus.documents)
        dev_path = str(config.dev)
        notes["dev_read_report"] = dict(dev_corpus.report.counts)
    elif config.split_seed is not None:
        train_docs, dev_docs, test_docs = split_documents(train_docs, (0.8, 0.1, 0.1),
                                                          seed=config.split_seed)
        dev_path = f"{train_path} (split seed {config.split_seed}, 10% dev)"
        notes["split"] = {"seed": config.split_seed, "ratios": [0.8, 0.1, 0.1],
                          "train": len(train_docs), "dev": len(dev_docs),
                          "test": len(test_docs), "test_ids": [d.id for d in test_docs]}
    if dev_docs:
        leak = check_leak(train_docs, dev_docs)
        notes["train_dev_leak"] = {key: value for key, value in leak.to_dict().items()
                                   if key != "examples"}
        if leak.leaks:
            log(f"warning: {len(leak.leaked_ids(side=1))} of {len(dev_docs)} dev documents are "
                "also in the training data (same id or text, or one text inside the other): "
                f"the dev score will overstate; `medner data check-leak {train_path} "
                f"{dev_path}` lists them")
    schema = get_schema(config.labels) if config.labels else infer_schema(train_docs)
    if not schema.labels:
        raise ConfigError(f"{train_path}: no spans in the training data, so no labels to learn")
    train_docs, dropped = apply_schema(train_docs, schema)
    dev_docs, dev_dropped = apply_schema(dev_docs, schema)
    if dropped:
        log(f"labels outside schema {schema.name!r}, dropped from train: {dict(dropped)}")
    notes["dropped_labels"] = {"train": dict(dropped), "dev": dict(dev_dropped)}
    notes.update(train_path=str(train_path), dev_path=dev_path,
                 train_documents=len(train_docs), dev_documents=len(dev_docs),
                 train_fingerprint=corpus_fingerprint(train_docs),
                 dev_fingerprint=corpus_fingerprint(dev_docs) if dev_docs else None)
    return Data(train_docs, dev_docs, schema, notes)



"""The training config: shipped configs load, the file and flags share one definition."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from medner.backends.encoder.config import EncoderConfig, field_help, load_config
from medner.errors import ConfigError
from medner.labels import get_schema


def _backend(path: Path) -> str:
    data = tomllib.loads(path.read_text())
    return data.get("train", data).get("backend", "encoder")


CONFIGS = [p for p in sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))
           if _backend(p) == "encoder"]


def test_every_field_has_help() -> None:
    assert all(text.strip() for text in field_help().values())


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_loads(path: Path) -> None:
    from medner.pipeline import stage_tables

    config = load_config(path)
    assert isinstance(config, EncoderConfig)
    stage_tables(path)  # [link], [relations], [assertion] tables are checked too
    if config.labels:
        get_schema(config.labels)
    assert config.base_model


def test_expected_configs_are_shipped() -> None:
    names = {p.stem for p in CONFIGS}
    assert {"bc5cdr", "ncbi-disease", "maccrobat-clinical4", "demo"} <= names


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[train]\nepochs = 3\nlearning_rate = 1e-4\nreport_to = ["tensorboard"]\n')
    config = load_config(path, {"epochs": 5.0, "learning_rate": None})
    assert config.epochs == 5.0 and config.learning_rate == 1e-4
    assert config.report_to == ("tensorboard",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("epochs = 'many'", "'epochs' expects float"),
        ("learnig_rate = 1e-4", "unknown config field(s) ['learnig_rate']"),
        ("scheme = 'IOB'", "'scheme' must be one of"),
        ("stride = 500", "'stride' must be"),
        ("backend = 'llm'", "backend"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body + "\n")
    with pytest.raises(ConfigError, match="bad.toml") as err:
        load_config(path)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("body", "option", "why"),
    [
        ("crf = true", "'crf' was removed", "p = 0.99"),
        ("crf = false", "'crf' was removed", "85.91"),
        ("teacher = 'runs/ens'", "'teacher' was removed", "p = 0.13"),
        ("teacher = 'runs/ens'\nteacher_weight = 0.7",
         "'teacher' and 'teacher_weight' were removed", "knowledge distillation"),
    ],
)
def test_a_removed_option_is_refused_with_the_reason(tmp_path: Path, body: str, option: str,
                                                     why: str) -> None:
    path = tmp_path / "old.toml"
    path.write_text(f"[train]\nepochs = 2\n{body}\n")
    with pytest.raises(ConfigError, match="old.toml") as err:
        load_config(path)
    assert option in str(err.value) and why in str(err.value)
    assert "unknown config field" not in str(err.value)


def test_missing_config_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_training_data_that_holds_dev_documents_is_reported(tmp_path: Path) -> None:
    from medner.core.data import load_data
    from medner.document import Document, Span
    from medner.io import write_corpus

    abstract = "Aspirin caused gastric bleeding in several elderly patients on warfarin. " * 4
    span = Span(0, 7, "Chemical", "Aspirin")
    titled = Document("42", "Aspirin and bleeding. " + abstract).with_spans(
        [Span(0, 7, "Chemical", "Aspirin")])
    write_corpus([Document("instruct:1", abstract).with_spans([span])], tmp_path / "train.jsonl")
    write_corpus([titled], tmp_path / "dev.jsonl")
    messages: list[str] = []
    data = load_data(EncoderConfig(train=str(tmp_path / "train.jsonl"),
                                   dev=str(tmp_path / "dev.jsonl"), labels="bc5cdr"),
                     log=messages.append)
    assert data.info["train_dev_leak"]["contained_texts"] == 1
    assert any("1 of 1 dev documents are also in the training data" in m for m in messages)

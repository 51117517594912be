"""Encoder backend: token classification over words with a fine-tuned transformer encoder.

config.py       the training config (one dataclass for the TOML file and the CLI flags)
align.py        char spans <-> word tags (BIO/BILOU) through the tokenizer's offsets
windows.py      overlapping windows over long documents, their input ids, merging them back
decode.py       Viterbi decoding restricted to valid tag sequences
predict.py      batched inference shared by training (dev selection) and the loaded model
members.py      reading an ensemble folder: its members' weights, averaging their logits
model.py        ``EncoderModel``: a trained folder loaded for ``extract``/``predict``
ensemble.py     ``medner ensemble``: writing an ensemble folder (imports the model)
onnx.py         export to ONNX (optionally int8) and running it in ONNX Runtime
adversarial.py  FGM adversarial training (a Trainer mixin)
train.py        fine-tuning with transformers' Trainer (``train.train(config)``)
folder.py       the model folder's checks and model card
tiny.py         a tiny BERT built in code, for tests
"""

from __future__ import annotations

from pathlib import Path

from medner.backends.encoder.config import EncoderConfig, load_config


def load(path: str | Path, *, bf16: bool | None = None, batch_size: int | None = None,
         threads: int | None = None, runtime: str | None = None, device: str | None = None,
         abbreviations: bool | None = None):
    """Load a trained encoder folder (an ``EncoderModel``); ``runtime``: "torch" (default) or
    "onnx" (the graph written by ``medner export-onnx``); ``device``: the torch device;
    ``abbreviations``: propagate labels to abbreviations (default: as saved)."""
    from medner.backends.encoder.model import EncoderModel

    return EncoderModel.load(path, bf16=bf16, batch_size=batch_size, threads=threads,
                             runtime=runtime or "torch", device=device,
                             abbreviations=abbreviations)


__all__ = ["EncoderConfig", "load", "load_config"]

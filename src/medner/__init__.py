"""medner: fine-tune, evaluate and serve medical entity and relation extraction models.

    import medner
    model = medner.load("runs/demo")                 # a trained model folder
    docs = model.extract(["she has fever and pain on hip"])
    report = medner.evaluate(gold_docs, docs)
"""

from __future__ import annotations

from typing import Any

from medner.document import Document, Relation, Span
from medner.io import read_corpus, write_corpus
from medner.scoring import evaluate  # the scorer's package is medner.scoring

__version__ = "0.1.0"
__all__ = ["Document", "Relation", "Span", "evaluate", "load", "read_corpus", "write_corpus"]


def load(path: str, **options: Any) -> Any:
    """Load a trained model folder of any backend (see ``medner.backends.load`` for the
    options: ``threads``, ``batch_size``, ``runtime="onnx"``, ``constrained=True``, ...)."""
    from medner.backends import load as load_backend  # imports torch: only when a model is used

    return load_backend(path, **options)

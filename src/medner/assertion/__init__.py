"""Assertion: is each finding present, absent (negated) or possible (uncertain)?

    from medner.assertion import AssertionModel, train_assertion
    model = train_assertion(train_docs, out="models/assertion")  # gold spans, brat POLARITY
    docs = AssertionModel.load("models/assertion").predict(docs)  # span.assertion is set

A small encoder reads each span's label and its sentence with markers around the span
(``inputs``) and classifies it; any entity model's output can go through it. Torch is
imported only when a model is trained or loaded.
"""

from __future__ import annotations

from medner.assertion.config import AssertionConfig
from medner.assertion.model import AssertionModel
from medner.assertion.train import train_assertion

__all__ = ["AssertionConfig", "AssertionModel", "train_assertion"]

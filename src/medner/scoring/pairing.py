"""Pair gold and predicted documents by ``Document.id``."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from medner.document import Document
from medner.errors import MednerError


@dataclass(frozen=True)
class Pairing:
    pairs: list[tuple[Document, Document | None]]
    """Every gold document in gold order, with its prediction or ``None`` if it has none."""
    missing_ids: tuple[str, ...]
    """Gold documents without a prediction; they are scored as predicting nothing."""


def pair_documents(
    gold: Sequence[Document], pred: Sequence[Document], *, side: str = "prediction"
) -> Pairing:
    """Pair documents by id; the k-th gold document with an id takes the k-th prediction
    with that id, so a corpus with a duplicated id (NCBI-disease train) still pairs up.

    A prediction whose id has no gold document left, or whose text differs from its gold
    document, is a ``MednerError``: its offsets cannot be scored against that gold.
    """
    waiting: dict[str, deque[Document]] = defaultdict(deque)
    for doc in pred:
        waiting[doc.id].append(doc)
    pairs: list[tuple[Document, Document | None]] = []
    missing: list[str] = []
    for doc in gold:
        queue = waiting.get(doc.id)
        if not queue:
            pairs.append((doc, None))
            missing.append(doc.id)
            continue
        guess = queue.popleft()
        if guess.text != doc.text:
            where = _first_difference(doc.text, guess.text)
            raise MednerError(
                f"document {doc.id!r}: the {side} text differs from the gold text "
                f"({len(guess.text)} vs {len(doc.text)} characters{where}); "
                "offsets cannot be compared. Predict on the gold text unchanged."
            )
        pairs.append((doc, guess))
    extra = [doc_id for doc_id, queue in waiting.items() for _ in queue]
    if extra:
        known = {doc.id for doc in gold}
        doc_id = extra[0]
        why = "appears more often than in the gold" if doc_id in known else "is not in the gold"
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise MednerError(
            f"{side} document {doc_id!r} {why}{more}; "
            "score predictions against the gold file they were made for."
        )
    return Pairing(pairs=pairs, missing_ids=tuple(missing))


def _first_difference(a: str, b: str) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f", first difference at offset {i}"
    return ""

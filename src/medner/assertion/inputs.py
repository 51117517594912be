"""What the assertion classifier reads for one span: its label, then its sentence with the
span between markers ("symptom" / "Patient denies [[ chest pain ]] ."), the usual input of
a mention-level classifier (as in relation extraction's entity markers)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from medner.assertion.config import AssertionConfig
from medner.document import Document, Span
from medner.sentences import sentence_starts


def label_phrase(label: str) -> str:
    """``BODY_PART`` -> ``body part``, ``Sign_symptom`` -> ``sign symptom``: words the
    encoder's vocabulary knows."""
    return label.replace("_", " ").replace("-", " ").lower()


def marked_context(text: str, span: Span, starts: Sequence[int], config: AssertionConfig
                   ) -> str:
    """The span's sentence (clipped to ``context_chars`` each side) with markers around it."""
    first = starts[bisect_right(starts, span.start) - 1]
    after = bisect_right(starts, span.end - 1)
    last = starts[after] if after < len(starts) else len(text)
    left = max(first, span.start - config.context_chars)
    right = min(last, span.end + config.context_chars)
    opening, closing = config.markers
    return " ".join((text[left:span.start].strip(), opening, text[span.start:span.end].strip(),
                     closing, text[span.end:right].strip())).strip()


def span_inputs(document: Document, config: AssertionConfig) -> list[tuple[str, str]]:
    """(label phrase, marked context) for each span of ``document``, in span order."""
    starts = sentence_starts(document.text)
    return [(label_phrase(s.label), marked_context(document.text, s, starts, config))
            for s in document.spans]


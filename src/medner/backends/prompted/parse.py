"""Parse an answer (generated locally or by a provider) into strings: items and pairs.

Parsing never raises on model output: a line that is not what the template asks for is
counted in ``bad_lines`` and skipped, as are items with a label outside the schema. The
strings carry no offsets yet; ``medner.backends.prompted.answers`` grounds them in the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Parsed:
    entities: list[tuple[str, str]] = field(default_factory=list)
    """(text, label) in answer order."""
    pairs: list[tuple[str, str]] = field(default_factory=list)
    """(head text, tail text) of the task's relation (chemical, disease for CID), in answer
    order."""
    bad_lines: int = 0
    unknown_labels: int = 0


_OBJECT = re.compile(r"\{[^{}]*\}")


def parse_json_lines(output: str, keys: tuple[str, str], *,
                     labels: Sequence[str] | None = None) -> Parsed:
    """Objects with the two string ``keys`` from a JSON list written one object per line.

    The whole answer is tried as JSON first; if that fails (cut off, a stray comma, prose),
    each line is read on its own: brackets and trailing commas are ignored, every other
    line that is not a JSON object with both keys counts as a bad line. With ``labels``,
    the second key is a label and objects with other labels are counted and dropped.
    """
    result = Parsed()
    objects: list[object] = []
    try:
        whole = json.loads(output)
        objects = whole if isinstance(whole, list) else [whole]
        candidates_from_lines = False
    except json.JSONDecodeError:
        candidates_from_lines = True
    if candidates_from_lines:
        for raw in output.splitlines():
            line = raw.strip().rstrip(",").strip()
            if line in ("", "[", "]", "[]"):
                continue
            line = line.lstrip("[").rstrip("]").strip().rstrip(",")
            found = _OBJECT.findall(line)
            if not found:
                result.bad_lines += 1
                continue
            for item in found:
                try:
                    objects.append(json.loads(item))
                except json.JSONDecodeError:
                    result.bad_lines += 1
    first, second = keys
    for obj in objects:
        if not (isinstance(obj, dict) and isinstance(obj.get(first), str)
                and isinstance(obj.get(second), str)):
            result.bad_lines += 1
            continue
        a, b = obj[first].strip(), obj[second].strip()
        if not a or not b:
            result.bad_lines += 1
            continue
        if labels is not None:
            if b not in labels:
                result.unknown_labels += 1
                continue
            result.entities.append((a, b))
        else:
            result.pairs.append((a, b))
    return result


NO_ENTITIES = "None"
"""The ``entities-lines`` answer for a text without entities."""


def parse_labelled_lines(output: str, labels: Sequence[str]) -> Parsed:
    """``Label: text`` lines; ``None`` alone is an empty answer.

    A line without a colon or with nothing after it is a bad line; a label outside
    ``labels`` is counted and its line dropped. The text is everything after the first
    colon, so mentions that contain a colon survive.
    """
    result = Parsed()
    for raw in output.splitlines():
        line = raw.strip()
        if not line or line == NO_ENTITIES:
            continue
        label, colon, item = line.partition(":")
        label, item = label.strip(), item.strip()
        if not colon or not label or not item:
            result.bad_lines += 1
        elif label not in labels:
            result.unknown_labels += 1
        else:
            result.entities.append((item, label))
    return result


def parse_list(output: str, *, label: str | None = None,
               pair_separator: tuple[str, str] | None = None) -> Parsed:
    """``- item`` lines (the tutorial format); ``- `` alone is an empty list.

    With ``pair_separator=(prefix, sep)`` items read ``<prefix>head<sep>tail``.
    """
    result = Parsed()
    for raw in output.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("-"):
            result.bad_lines += 1
            continue
        item = line[1:].strip()
        if not item:
            continue
        if pair_separator is None:
            assert label is not None
            result.entities.append((item, label))
            continue
        prefix, sep = pair_separator
        if not item.startswith(prefix.strip()) or sep.strip() not in item:
            result.bad_lines += 1
            continue
        head, _, tail = item[len(prefix.strip()):].partition(sep.strip())
        if head.strip() and tail.strip():
            result.pairs.append((head.strip(), tail.strip()))
        else:
            result.bad_lines += 1
    return result


__all__ = ["NO_ENTITIES", "Parsed", "parse_json_lines", "parse_labelled_lines", "parse_list"]

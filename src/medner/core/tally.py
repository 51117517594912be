"""Counters that add up field by field."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Self


@dataclass
class Tally:
    """A dataclass of numbers that add up field by field: a piece's counts into its
    document's, a document's into a whole call's. Subclasses declare the fields."""

    def add(self, other: Self) -> None:
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def counts(self) -> dict[str, int | float]:
        """Every field, floats rounded to 2 places (for reports)."""
        return {f.name: round(value, 2) if isinstance(value := getattr(self, f.name), float)
                else value for f in fields(self)}


__all__ = ["Tally"]

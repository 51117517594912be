"""Parquet with ``id`` and ``text`` columns (other columns are ignored). Read only.

Rows are read one record batch at a time, so memory stays flat in the file's size.
pyarrow is imported only here, when a Parquet file is read (it comes with ``medner[ray]``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medner.document import Document
from medner.errors import FormatError, MednerError
from medner.io.base import OnMismatch, ReadReport

COLUMNS = ("id", "text")


def _open(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MednerError(f"{path}: reading Parquet needs pyarrow, which is not installed: "
                          "pip install pyarrow (or 'medner[ray]')") from None
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise FormatError(path, None, f"not a Parquet file ({exc})") from None
    missing = set(COLUMNS) - set(parquet.schema_arrow.names)
    if missing:
        raise FormatError(path, None, f"Parquet input needs the columns id and text; missing "
                          f"{', '.join(sorted(missing))}")
    return parquet


def iter_read(path: Path, *, on_mismatch: OnMismatch = "error",
              report: ReadReport) -> Iterator[Document]:
    """One document per row, in row order; a missing text is ``""``. ``on_mismatch`` is
    unused (no mentions)."""
    parquet = _open(Path(path))
    for batch in parquet.iter_batches(columns=list(COLUMNS)):
        for doc_id, text in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist(),
                                strict=True):
            yield Document(str(doc_id), text or "")


def read(path: Path, *, on_mismatch: OnMismatch = "error", report: ReadReport) -> list[Document]:
    return list(iter_read(path, on_mismatch=on_mismatch, report=report))


def count(path: Path) -> int:
    """The number of rows, from the file's footer."""
    return _open(Path(path)).metadata.num_rows

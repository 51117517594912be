"""Streaming, resumable extraction from corpus files to one output file.

``extract_to_file`` reads its inputs one document at a time, predicts in batches and
appends each batch's results to a JSON Lines *journal*, flushed and fsynced before the next
batch starts. For jsonl output the journal is the output; for pubtator and brat it is
``<output>.journal.jsonl``, converted into the output at the end (a file renamed into place,
or a folder swapped in whole) and then removed. So an interrupted run, even ``kill -9``,
loses at most the batch in flight, and ``resume=True`` finishes it:

- the journal is read; a torn tail (a last line without its newline, or that is not a
  JSON record) is cut off by truncating the file after the last complete record;
- documents whose record key is already in the journal are skipped, the rest are extracted.

Record keys are document ids made unique per run: the n-th repeat of an id becomes
``id#n`` (the next free ``#n``), in input order, so a rerun over the same inputs derives the
same keys. A renamed record keeps its input id in ``metadata["source_id"]``.

Memory stays flat in the number of documents except for the set of record keys.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from medner.document import Document
from medner.errors import FormatError, MednerError
from medner.io import count_documents, first_line, format_from_first_line, resolve_format
from medner.io import iter_documents as stream_documents
from medner.io.base import ReadReport, atomic_write, iter_lines

log = logging.getLogger(__name__)

OUTPUT_FORMATS = ("jsonl", "pubtator", "brat")
SOURCE_ID = "source_id"
_KEEP_METADATA = ("pubtator_title_length",)
"""Input metadata carried into the output: text layout only. Anything else describes the
input's gold annotations (raw PubTator lines, brat event lines) and must not be written back
as if it were predicted."""


@dataclass
class BatchResult:
    output: Path
    format: str
    documents: int
    """Input documents seen, which is also the number of records in the finished output."""
    extracted: int
    """Documents extracted by this run."""
    skipped: int
    """Documents already in the output from an earlier run (``resume=True``)."""
    renamed_ids: int = 0
    """Repeated input ids written under a unique key (``id#2``, ...)."""
    torn_lines: int = 0
    """Incomplete lines cut from the end of the journal before resuming."""
    unknown_records: int = 0
    """Records already in the output whose key no input document produced."""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    """What the caller should tell the user (renames, cut lines, skipped input mentions)."""

    @property
    def docs_per_second(self) -> float:
        return self.extracted / self.seconds if self.seconds > 0 else 0.0


# --- reading inputs ------------------------------------------------------------------------


def iter_documents(path: str | Path, fmt: str | None = None, *,
                   report: ReadReport | None = None) -> Iterator[Document]:
    """The documents of one input as extraction reads them: ``medner.io.iter_documents``
    with plain ``.txt`` files as documents (``fmt="text"``, or a ``.txt`` that is neither
    PubTator nor half of a brat pair) and gold mentions that do not match their text skipped
    and counted in ``report`` (extraction replaces them anyway)."""
    return stream_documents(path, fmt, on_mismatch="skip", report=report, plain_text=True)


class UniqueIds:
    """Record keys for one run: an id's first use keeps it, the n-th repeat becomes ``id#n``."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.repeats: Counter[str] = Counter()
        self.renamed = 0

    def key(self, doc_id: str) -> str:
        self.repeats[doc_id] += 1
        key = doc_id
        n = max(2, self.repeats[doc_id])
        while key in self.used:
            key = f"{doc_id}#{n}"
            n += 1
        if key != doc_id:
            self.renamed += 1
        self.used.add(key)
        return key


# --- the journal ---------------------------------------------------------------------------


def journal_path(output: str | Path, output_format: str) -> Path:
    """Where results are appended while a run is in progress."""
    out = Path(output)
    return out if output_format == "jsonl" else out.with_name(out.name + ".journal.jsonl")


def _record_key(line: bytes) -> str | None:
    """The id of a complete journal line, or ``None`` if the line is not a whole record."""
    if not line.endswith(b"\n"):
        return None
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) \
            or not isinstance(data.get("text"), str):
        return None
    return data["id"]


def recover_journal(handle: IO[bytes], path: Path) -> tuple[set[str], int]:
    """Keys of the complete records in an open journal; cuts everything after the last one.

    Returns (keys, number of lines cut). Appends are whole lines, so only the tail can be
    torn; whatever follows the first bad line is cut too and those documents are redone.
    """
    handle.seek(0)
    keys: set[str] = set()
    good_end = 0
    lineno = 0
    for lineno, line in enumerate(handle, start=1):  # noqa: B007 - lineno is used after the loop
        key = _record_key(line)
        if key is None:
            break
        if key in keys:
            raise MednerError(f"{path}:{lineno}: record {key!r} appears twice; this file was "
                              "not written by one medner run. Use a new output file, or run "
                              "without resume to start over.")
        keys.add(key)
        good_end += len(line)
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    cut = 0
    if size > good_end:
        handle.seek(good_end)
        tail = handle.read()
        if not keys and b"\n" in tail:
            # Not even one record, but whole lines: some other file, not a torn journal.
            raise MednerError(f"{path}:1: not a medner JSON Lines record; refusing to resume "
                              "into this file. Choose another output, or run without resume to "
                              "overwrite it.")
        cut = tail.count(b"\n") + (0 if tail.endswith(b"\n") else 1)
        handle.truncate(good_end)
        handle.flush()
        os.fsync(handle.fileno())
    return keys, cut


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform; the data itself is fsynced
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _lock(handle: IO[bytes], path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; one writer per output is then on the user
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise MednerError(f"{path} is being written by another running extraction; wait for it "
                          "or choose another --output") from None


@contextmanager
def open_journal(path: Path, resume: bool) -> Iterator[tuple[IO[bytes], set[str], int]]:
    """The journal opened for appending and locked, with (handle, keys done, lines cut)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    with path.open("a+b") as handle:
        _lock(handle, path)
        if not existed:
            _fsync_dir(path.parent)
        if resume:
            keys, cut = recover_journal(handle, path)
        else:
            handle.truncate(0)
            keys, cut = set(), 0
        yield handle, keys, cut


def iter_journal(path: Path) -> Iterator[Document]:
    for lineno, line in iter_lines(path, allow_empty=True):
        if line.strip():
            try:
                yield Document.from_dict(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise FormatError(path, lineno, f"bad journal record: {exc}") from None


# --- writing the final output --------------------------------------------------------------


def _brat_stem(doc_id: str, used: set[str]) -> str:
    stem = re.sub(r"[^\w.-]", "_", doc_id).lstrip(".") or "doc"
    candidate, n = stem, 1
    while candidate.lower() in used:  # lower: case-insensitive file systems
        n += 1
        candidate = f"{stem}_{n}"
    used.add(candidate.lower())
    return candidate


def convert_journal(journal: Path, output: Path, output_format: str) -> list[str]:
    """Write the journal's records as ``output_format``, atomically; returns notes."""
    skipped: Counter[str] = Counter()
    if output_format == "pubtator":
        from medner.io.pubtator import format_document

        with atomic_write(output) as handle:
            for doc in iter_journal(journal):
                handle.write(format_document(doc, skipped))
    elif output_format == "brat":
        from medner.core.folder import atomic_folder
        from medner.io.brat import format_ann

        def write(folder: Path) -> None:
            used: set[str] = set()
            for doc in iter_journal(journal):
                stem = _brat_stem(doc.id, used)
                if stem != doc.id:
                    skipped["documents whose file name differs from their id"] += 1
                (folder / f"{stem}.txt").write_text(doc.text, encoding="utf-8", newline="")
                (folder / f"{stem}.ann").write_text(format_ann(doc, skipped), encoding="utf-8",
                                                    newline="")

        if output.exists() and not output.is_dir():
            raise MednerError(f"{output} is a file; brat output is a folder of .txt/.ann files")
        atomic_folder(output, write)
    else:
        raise MednerError(f"cannot convert a journal to {output_format!r}")
    return [f"{output}: {n} {what}" for what, n in skipped.items()]


# --- checking an existing output before resuming -------------------------------------------

FORMAT_NAMES = {"text": "text (Entity/Label lines)", "json": "json (one JSON array)",
                "jsonl": "jsonl", "pubtator": "pubtator", "brat": "brat (a folder)",
                "instruct": "instruct (prompt/completion JSON Lines)"}
_TEXT_LINE = re.compile(r"(Entity: .*, Label: .*|Relation: .*|# .*)")


def output_format_on_disk(path: str | Path) -> str | None:
    """The format an existing ``medner extract`` output was written in, from its content.

    A folder is brat; a file is judged by its first non-empty line: ``[`` json, a JSON record
    jsonl (or instruct), a PubTator title pubtator, ``Entity: X, Label: Y`` or ``# id`` text.
    ``None`` when there is nothing (no file, an empty file) or the line says none of these.
    """
    p = Path(path)
    if p.is_dir():
        return "brat"
    if not p.is_file():
        return None
    line = first_line(p)
    if line.startswith("["):
        return "json"
    if _TEXT_LINE.fullmatch(line):
        return "text"
    return format_from_first_line(line)


def check_resumable(output: Path, output_format: str) -> None:
    """Refuse to resume ``output_format`` results into an output written in another format."""
    journal = journal_path(output, output_format)
    if output_format == "jsonl":
        other_journal = output.with_name(output.name + ".journal.jsonl")
        if other_journal.is_file():
            raise MednerError(
                f"{other_journal} is the journal of an interrupted pubtator or brat run into "
                f"{output}, but this run writes jsonl; refusing to resume into it. Resume with "
                "--format pubtator or --format brat, or run without --resume to start over "
                "(or delete the journal).")
    elif journal.exists():
        return  # the journal is appended to; the output is replaced whole at the end
    found = output_format_on_disk(output)
    if found is None or found == output_format:
        return
    hint = (f"resume with --format {found}" if found in OUTPUT_FORMATS else
            f"{found} output cannot be resumed")
    raise MednerError(
        f"{output} holds {FORMAT_NAMES.get(found, found)} output, but this run writes "
        f"{FORMAT_NAMES[output_format]}; refusing to resume one format into the other. To "
        f"finish that run, {hint}; to start over in {output_format}, run without --resume "
        "(it overwrites the file); or choose another --output.")


# --- the run -------------------------------------------------------------------------------


def _progress(enabled: bool, total: int | None):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("[progress.description]{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    else:
        columns += [TextColumn("{task.completed} docs")]
    columns += [TextColumn("{task.fields[rate]} docs/s"), TimeElapsedColumn()]
    if total is not None:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, console=Console(stderr=True), disable=not enabled)


@lru_cache(maxsize=1)
def _malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows)
        return None


def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc only; elsewhere a no-op).

    Batches of different shapes leave torch's freed buffers in glibc's arenas: measured on
    500 BC5CDR abstracts in batches of 64, RSS climbs to ~950 MB without this and stays at
    ~560 MB with it. The call takes milliseconds per batch of seconds.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def extraction_input(doc: Document, key: str) -> Document:
    """What the model is given for an input document: its text under its record key, with
    only the metadata that describes the text's layout (the input id when renamed)."""
    metadata: dict[str, Any] = {k: doc.metadata[k] for k in _KEEP_METADATA if k in doc.metadata}
    if key != doc.id:
        metadata[SOURCE_ID] = doc.id
    return Document(key, doc.text, metadata=metadata)


def _checked_files(inputs: Sequence[str | Path], output: str | Path, input_format: str | None,
                   output_format: str, resume: bool
                   ) -> tuple[list[Path], list[str], Path, Path]:
    """(input paths, their formats, the output, its journal), or an error that names the
    problem before anything is read or written."""
    if output_format not in OUTPUT_FORMATS:
        raise MednerError(f"output format {output_format!r}: choose one of "
                          f"{', '.join(OUTPUT_FORMATS)}")
    paths = [Path(p) for p in inputs]
    if not paths:
        raise MednerError("no input files given")
    formats = [resolve_format(p, input_format, plain_text=True) for p in paths]
    out = Path(output)
    journal = journal_path(out, output_format)
    if out.resolve() in {p.resolve() for p in paths} or journal.resolve() in \
            {p.resolve() for p in paths}:
        raise MednerError(f"{out}: the output must not be one of the inputs")
    if resume:
        check_resumable(out, output_format)
    if out.is_dir() and output_format != "brat":
        raise MednerError(f"{out} is a folder; {output_format} output is a file (only brat "
                          "output is a folder)")
    return paths, formats, out, journal


# One piece: its ``flush`` shares the open journal, the progress bar and the counters with
# the reading loop, which would otherwise all be passed around.
def extract_to_file(model, inputs: Sequence[str | Path], output: str | Path, *,
                    input_format: str | None = None, output_format: str = "jsonl",
                    resume: bool = False, batch_size: int = 64,
                    progress: bool = True) -> BatchResult:
    """Extract every document of ``inputs`` into ``output`` (see the module docstring).

    ``model`` is a loaded medner model (``medner.load``); ``batch_size`` is the number of
    documents per prediction call and per fsynced append. Without ``resume`` an existing
    output is started over. With ``resume`` the inputs must be the same, in the same order,
    as in the interrupted run (keys of repeated ids depend on the order).
    """
    started = time.perf_counter()
    if batch_size < 1:
        raise MednerError(f"batch size must be at least 1, got {batch_size}")
    paths, formats, out, journal = _checked_files(inputs, output, input_format, output_format,
                                                  resume)
    notes: list[str] = []
    if resume and not journal.exists():
        notes.append(f"{journal}: nothing to resume from; starting from the first document")

    counts = [count_documents(p, f) for p, f in zip(paths, formats, strict=True)]
    total = None if None in counts else sum(c for c in counts if c is not None)
    report = ReadReport()
    ids = UniqueIds()
    seen = extracted = skipped = 0
    with open_journal(journal, resume) as (handle, done, cut), _progress(progress, total) as bar:
        if cut:
            notes.append(f"{journal}: cut {cut} incomplete line(s) at the end left by the "
                         "interrupted run; those documents are extracted again")
        task = bar.add_task("extract", total=total, rate="-")
        batch: list[Document] = []
        t_extract = 0.0

        def flush() -> None:
            nonlocal extracted, t_extract
            if not batch:
                return
            t0 = time.perf_counter()
            predicted = model.predict(batch, progress=False)
            if len(predicted) != len(batch):
                raise MednerError(f"the model returned {len(predicted)} documents for "
                                  f"{len(batch)}")
            data = "".join(json.dumps(d.to_dict(), ensure_ascii=False) + "\n"
                           for d in predicted).encode("utf-8")
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            t_extract += time.perf_counter() - t0
            extracted += len(batch)
            bar.update(task, advance=len(batch), rate=f"{extracted / t_extract:.1f}")
            batch.clear()
            del predicted, data
            _trim_heap()

        for path, fmt in zip(paths, formats, strict=True):
            for doc in iter_documents(path, fmt, report=report):
                seen += 1
                key = ids.key(doc.id)
                if output_format == "pubtator" and any(c in key for c in "|\t\r\n"):
                    # Checked now, not when the journal is converted after all the work.
                    raise MednerError(f"{path}: document id {key!r} cannot be a PubTator PMID "
                                      "(it contains '|', a tab or a line break); write jsonl "
                                      "or brat instead")
                if key in done:
                    skipped += 1
                    bar.update(task, advance=1)
                    continue
                batch.append(extraction_input(doc, key))
                if len(batch) >= batch_size:
                    flush()
        flush()
        unknown = len(done - ids.used)
        if output_format != "jsonl":
            notes.extend(convert_journal(journal, out, output_format))
            journal.unlink()  # under the lock; a crash before this only means a redone conversion

    if ids.renamed:
        notes.append(f"{ids.renamed} repeated input id(s) written under unique keys (id#2, ...;"
                     f" the input id is in metadata.{SOURCE_ID})")
    if unknown:
        notes.append(f"{out}: {unknown} record(s) from the earlier run match no input document "
                     "(were the inputs changed?); they are kept")
    notes.extend(f"input: {n} {kind}" for kind, n in report.counts.items())
    for note in notes:
        log.warning(note)
    return BatchResult(output=out, format=output_format, documents=seen, extracted=extracted,
                       skipped=skipped, renamed_ids=ids.renamed, torn_lines=cut,
                       unknown_records=unknown, seconds=time.perf_counter() - started,
                       notes=notes)


__all__ = ["OUTPUT_FORMATS", "BatchResult", "UniqueIds", "check_resumable",
           "extract_to_file", "extraction_input", "iter_documents", "iter_journal",
           "journal_path", "output_format_on_disk"]

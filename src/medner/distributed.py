"""Batch extraction on a Ray cluster (Ray Data), into a folder of shards and a manifest.

The driver streams the inputs in order, exactly like ``medner.batch.extract_to_file``: the
same readers, the same record keys (the n-th repeat of an id becomes ``id#n``) and the same
record lines. Documents are cut into fixed shards by input position, ``part-000000`` holding
documents ``0 .. shard_size-1`` and so on, so a rerun over the same inputs maps the same
documents to the same shard names. Pending shards go to Ray Data in *waves*
(``ray.data.from_arrow`` + ``map_batches`` over a pool of actors, each loading the model once
per wave); the driver collects each shard's records and writes the shard atomically (a
temporary name, fsync, rename) once all of its documents are back.

Resume (``resume=True``): a shard file under its final name is complete by construction. It
is checked against the inputs (same record keys in the same order) and skipped; every other
shard is extracted again. So an interrupted job, even ``kill -9`` of the driver or a lost
node, ends after the rerun with every input document exactly once.

Why medner writes the shards itself instead of ``Dataset.write_json``: Ray Data's writers
name files by block and task, not by input range, and neither skip finished ranges nor
rename into place, which is what deterministic resume needs.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medner.batch import UniqueIds, extraction_input
from medner.core.folder import read_json
from medner.document import Document
from medner.errors import MednerError
from medner.io import iter_documents, resolve_format
from medner.io.base import ReadReport, atomic_write

SHARD_FORMATS = ("jsonl", "parquet")
MANIFEST = "manifest.json"
MANIFEST_KIND = "medner-ray-extract"
PARQUET = "parquet"
DEFAULT_SHARD_SIZE = 1000
DEFAULT_RAY_BATCH_SIZE = 64
WAVE_DOCUMENTS = 50_000
"""Documents per Ray Data dataset. The driver holds one wave's texts and results, so memory
stays flat in the number of documents; each actor loads the model once per wave, which is
seconds against the minutes a wave of this size takes."""
LOCAL_OBJECT_STORE_BYTES = 512 * 1024**2
"""Object store of a local cluster: texts and records pass through it one wave at a time."""


@dataclass
class RayResult:
    output: Path
    documents: int
    """Input documents seen: the number of records in the finished output."""
    extracted: int
    """Documents extracted by this run."""
    skipped: int
    """Documents in shards already complete from an earlier run (``resume=True``)."""
    shards: int
    shards_written: int
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def docs_per_second(self) -> float:
        return self.extracted / self.seconds if self.seconds > 0 else 0.0


# --- inputs --------------------------------------------------------------------------------


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Paths as given; a pattern that names no file (``'abstracts/*.jsonl'``) is globbed, sorted."""
    paths: list[Path] = []
    for item in inputs:
        text = str(item)
        if not Path(text).exists() and any(c in text for c in "*?["):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise MednerError(f"{text}: the pattern matches no file")
            paths.extend(Path(m) for m in matches)
        else:
            paths.append(Path(text))
    if not paths:
        raise MednerError("no input files given")
    return paths


def iter_input_documents(paths: Sequence[Path], input_format: str | None,
                         report: ReadReport) -> Iterator[Document]:
    """Every input document in order, read as local extraction reads them (any format of
    ``medner.io``, Parquet included; plain ``.txt`` files are documents)."""
    for path in paths:
        yield from iter_documents(path, input_format, on_mismatch="skip", report=report,
                                  plain_text=True)


def _input_description(path: Path, input_format: str | None) -> dict[str, Any]:
    fmt = resolve_format(path, input_format, plain_text=True)
    stat = path.stat()
    return {"path": str(path.resolve()), "format": fmt, "bytes": stat.st_size}


# --- shards --------------------------------------------------------------------------------


def shard_name(index: int, shard_format: str) -> str:
    return f"part-{index:06d}.{shard_format}"


def shard_index(name: str) -> int:
    return int(name.removeprefix("part-").split(".", 1)[0])


def ids_hash(keys: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for key in keys:
        digest.update(key.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


@dataclass
class Shard:
    index: int
    keys: list[str]
    rows: list[dict[str, Any]]
    """Documents to extract: empty when the shard is already complete."""


def iter_shards(documents: Iterator[Document], shard_size: int,
                done: set[int]) -> Iterator[Shard]:
    """Fixed ranges of ``shard_size`` documents with their record keys; texts only for shards
    not in ``done``."""
    ids = UniqueIds()
    index, keys, rows = 0, [], []
    for doc in documents:
        key = ids.key(doc.id)
        keys.append(key)
        if index not in done:
            doc = extraction_input(doc, key)
            rows.append({"shard": index, "position": len(keys) - 1, "id": key,
                         "text": doc.text, "metadata": json.dumps(doc.metadata)})
        if len(keys) == shard_size:
            yield Shard(index, keys, rows)
            index, keys, rows = index + 1, [], []
    if keys:
        yield Shard(index, keys, rows)


def read_shard_keys(path: Path) -> list[str]:
    if path.suffix == f".{PARQUET}":
        import pyarrow.parquet as pq

        return [str(k) for k in pq.read_table(path, columns=["id"]).column("id").to_pylist()]
    with path.open("rb") as handle:
        return [json.loads(line)["id"] for line in handle if line.strip()]


def write_shard(path: Path, records: Sequence[str]) -> None:
    """Write one shard's record lines under a temporary name, then rename it into place."""
    if path.suffix == f".{PARQUET}":
        import pyarrow as pa
        import pyarrow.parquet as pq

        # JSON columns for the nested parts: an empty metadata dict is not a Parquet struct.
        data = [json.loads(r) for r in records]
        table = pa.table({
            "id": [d["id"] for d in data],
            "text": [d["text"] for d in data],
            "spans": [json.dumps(d["spans"], ensure_ascii=False) for d in data],
            "relations": [json.dumps(d.get("relations", []), ensure_ascii=False) for d in data],
            "metadata": [json.dumps(d.get("metadata", {}), ensure_ascii=False) for d in data],
        })
        with atomic_write(path, "wb") as handle:
            pq.write_table(table, handle)
        return
    with atomic_write(path) as handle:
        handle.write("".join(r + "\n" for r in records))


def iter_shard_documents(folder: str | Path) -> Iterator[Document]:
    """The documents of a finished output folder, in input order."""
    for entry in read_manifest(Path(folder))["shards"]:
        path = Path(folder) / entry["name"]
        if path.suffix == f".{PARQUET}":
            import pyarrow.parquet as pq

            for row in pq.read_table(path).to_pylist():
                yield Document.from_dict({"id": row["id"], "text": row["text"],
                                          "spans": json.loads(row["spans"]),
                                          "relations": json.loads(row["relations"]),
                                          "metadata": json.loads(row["metadata"])})
        else:
            with path.open(encoding="utf-8") as handle:
                yield from (Document.from_dict(json.loads(line)) for line in handle if line.strip())


# --- the manifest --------------------------------------------------------------------------


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    manifest = read_json(path, "no manifest; not a medner Ray extraction folder")
    if manifest.get("kind") != MANIFEST_KIND:
        raise MednerError(f"{path}: not a medner Ray extraction manifest")
    return manifest


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    with atomic_write(folder / MANIFEST) as handle:
        json.dump(manifest, handle, ensure_ascii=False, indent=1)
        handle.write("\n")


def model_description(model_path: str | Path) -> dict[str, Any]:
    folder = Path(model_path)
    meta_path = folder / "medner.json"
    if not meta_path.is_file():  # hosted:PROVIDER:MODEL references have no folder
        return {"path": str(model_path), "fingerprint": None}
    raw = meta_path.read_bytes()
    return {"path": str(folder.resolve()), "backend": json.loads(raw).get("backend"),
            "fingerprint": hashlib.sha256(raw).hexdigest()[:16]}


def _check_resumable(folder: Path, previous: dict[str, Any], model: dict[str, Any],
                     shard_size: int, shard_format: str) -> None:
    """Shards of another model or another cut must not be mixed with this run's."""
    if previous.get("model", {}).get("fingerprint") != model["fingerprint"]:
        raise MednerError(f"{folder} was written with another model "
                          f"({previous.get('model', {}).get('path')}); use a new output folder")
    if previous.get("shard_size") != shard_size or previous.get("shard_format") != shard_format:
        raise MednerError(f"{folder} was written with --shard-size "
                          f"{previous.get('shard_size')} and --shard-format "
                          f"{previous.get('shard_format')}; resume with the same values")


def _prepare_folder(folder: Path, resume: bool, shard_format: str) -> dict[str, Any] | None:
    """The previous manifest when resuming (``None`` for a new folder); stray temporary
    files of a killed run are removed."""
    if folder.exists() and not folder.is_dir():
        raise MednerError(f"{folder} is a file; --engine ray writes a folder of shards")
    entries = [p for p in folder.iterdir()] if folder.exists() else []
    if not entries:
        return None
    if not resume:
        raise MednerError(f"{folder} is not empty; give --resume to finish the run that wrote "
                          "it, or choose a new output folder")
    previous = read_manifest(folder)
    for tmp in folder.glob(".part-*.tmp"):
        tmp.unlink()
    for tmp in folder.glob(f".{MANIFEST}.*.tmp"):
        tmp.unlink()
    return previous


# --- Ray -----------------------------------------------------------------------------------


class ShardExtractor:
    """A Ray Data actor: loads the model once, then predicts batches of documents."""

    def __init__(self, model_path: str, load_options: dict[str, Any]) -> None:
        from medner.backends import load

        self.model = load(model_path, **load_options)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        docs = [Document(str(doc_id), str(text), metadata=json.loads(metadata))
                for doc_id, text, metadata in zip(batch["id"], batch["text"], batch["metadata"],
                                                  strict=True)]
        predicted = self.model.predict(docs, progress=False)
        if len(predicted) != len(docs):
            raise MednerError(f"the model returned {len(predicted)} documents for {len(docs)}")
        return {"shard": batch["shard"], "position": batch["position"],
                "record": [json.dumps(d.to_dict(), ensure_ascii=False) for d in predicted]}


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is a separate extra of ray
    except ImportError:
        raise MednerError("--engine ray needs Ray Data, which is not installed: "
                          "pip install 'medner[ray]'") from None
    return ray


def connect(address: str | None) -> bool:
    """Attach to ``address`` (or a running ``ray.init``), else start a local cluster;
    returns whether this call started Ray (and so should shut it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                 include_dashboard=False)
    return True


def actor_load_options(load_options: dict[str, Any] | None, cpus_per_actor: float,
                       gpus_per_actor: float) -> dict[str, Any]:
    """What each actor passes to ``medner.backends.load``: the user's options, with torch
    threads matching the CPUs it reserves and the GPU it reserves as its device."""
    options = dict(load_options or {})
    if options.get("threads") is None and cpus_per_actor >= 1:
        options["threads"] = int(cpus_per_actor)
    if options.get("device") is None and gpus_per_actor > 0:
        options["device"] = "cuda"  # Ray sets each actor's CUDA_VISIBLE_DEVICES to its GPUs
    return options


def _pool_size(num_actors: int | None, cpus_per_actor: float, gpus_per_actor: float) -> int:
    """Actors the cluster can run side by side when not given."""
    if num_actors is not None:
        if num_actors < 1:
            raise MednerError(f"--num-actors must be at least 1, got {num_actors}")
        return num_actors
    import ray

    resources = ray.cluster_resources()
    fits = int(resources.get("CPU", 1) // cpus_per_actor) if cpus_per_actor > 0 else 1
    if gpus_per_actor > 0:
        fits = min(fits, int(resources.get("GPU", 0) // gpus_per_actor))
        if fits < 1:
            raise MednerError(f"--gpus-per-actor {gpus_per_actor}: the cluster has "
                              f"{resources.get('GPU', 0)} GPU(s)")
    return max(1, fits)


def _run_wave(rows: list[dict[str, Any]], *, model_path: str, load_options: dict[str, Any],
              ray_batch_size: int, num_actors: int, cpus_per_actor: float,
              gpus_per_actor: float) -> Iterator[dict[str, Any]]:
    """Predicted rows (shard, position, record) of one wave, in completion order."""
    import pyarrow as pa
    import ray.data

    # One block per batch, so the actors share the wave instead of one taking it all.
    blocks = [pa.Table.from_pylist(rows[i:i + ray_batch_size])
              for i in range(0, len(rows), ray_batch_size)]
    predicted = ray.data.from_arrow(blocks).map_batches(
        ShardExtractor,
        fn_constructor_kwargs={"model_path": model_path, "load_options": load_options},
        batch_size=ray_batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=num_actors),
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor,
    )
    for batch in predicted.iter_batches(batch_size=None, batch_format="numpy"):
        for shard, position, record in zip(batch["shard"], batch["position"], batch["record"],
                                           strict=True):
            yield {"shard": int(shard), "position": int(position), "record": str(record)}


# One piece: the Ray pipeline's stages are closures over the same actor options, shard
# plan and output journal; split apart they would pass all of them around.
def extract_with_ray(model_path: str | Path, inputs: Sequence[str | Path], output: str | Path,
                     *, input_format: str | None = None, shard_format: str = "jsonl",
                     shard_size: int = DEFAULT_SHARD_SIZE,
                     ray_batch_size: int = DEFAULT_RAY_BATCH_SIZE,
                     num_actors: int | None = None, cpus_per_actor: float = 1.0,
                     gpus_per_actor: float = 0.0, address: str | None = None,
                     resume: bool = False, load_options: dict[str, Any] | None = None,
                     progress: bool = True, wave_documents: int = WAVE_DOCUMENTS) -> RayResult:
    """Extract every document of ``inputs`` into the shard folder ``output`` (see the module
    docstring). ``load_options`` go to ``medner.backends.load`` in each actor; unless given,
    its ``threads`` is ``cpus_per_actor``, and its ``device`` is ``cuda`` when actors reserve
    GPUs."""
    started = time.perf_counter()
    import_ray()
    if shard_format not in SHARD_FORMATS:
        raise MednerError(f"shard format {shard_format!r}: choose one of "
                          f"{', '.join(SHARD_FORMATS)}")
    for name, value in (("--shard-size", shard_size), ("--ray-batch-size", ray_batch_size)):
        if value < 1:
            raise MednerError(f"{name} must be at least 1, got {value}")
    if cpus_per_actor < 0 or gpus_per_actor < 0:
        raise MednerError("--cpus-per-actor and --gpus-per-actor cannot be negative")
    paths = expand_inputs(inputs)
    folder = Path(output)
    if folder.resolve() in {p.resolve() for p in paths}:
        raise MednerError(f"{folder}: the output must not be one of the inputs")
    model = model_description(model_path)
    previous = _prepare_folder(folder, resume, shard_format)
    if previous is not None:
        _check_resumable(folder, previous, model, shard_size, shard_format)
    notes: list[str] = []
    if resume and previous is None:
        notes.append(f"{folder}: nothing to resume from; starting from the first document")
    finished = {shard_index(p.name) for p in folder.glob(f"part-*.{shard_format}")} \
        if previous is not None else set()
    options = actor_load_options(load_options, cpus_per_actor, gpus_per_actor)

    manifest: dict[str, Any] = {
        "kind": MANIFEST_KIND, "version": 1, "complete": False,
        "inputs": [_input_description(p, input_format) for p in paths],
        "input_format": input_format, "model": model, "shard_format": shard_format,
        "shard_size": shard_size, "documents": None, "fingerprint": None, "shards": [],
    }
    folder.mkdir(parents=True, exist_ok=True)
    write_manifest(folder, manifest)
    started_ray = connect(address)
    try:
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = progress
        pool = _pool_size(num_actors, cpus_per_actor, gpus_per_actor)
        report = ReadReport()
        fingerprint = hashlib.sha256()
        seen = extracted = skipped = written = 0
        wave: list[Shard] = []

        def documents() -> Iterator[Document]:
            # The run's fingerprint covers every input document, extracted now or before.
            for doc in iter_input_documents(paths, input_format, report):
                fingerprint.update(doc.id.encode() + b"\0" + doc.text.encode() + b"\1")
                yield doc

        def run(shards: list[Shard]) -> None:
            nonlocal extracted, written
            rows = [row for shard in shards for row in shard.rows]
            pending = {shard.index: shard for shard in shards}
            records: dict[int, dict[int, str]] = {index: {} for index in pending}
            for row in _run_wave(rows, model_path=str(model_path), load_options=options,
                                 ray_batch_size=ray_batch_size, num_actors=pool,
                                 cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor):
                got = records[row["shard"]]
                got[row["position"]] = row["record"]
                shard = pending[row["shard"]]
                if len(got) == len(shard.keys):
                    write_shard(folder / shard_name(shard.index, shard_format),
                                [got[i] for i in range(len(shard.keys))])
                    del records[shard.index]
                    extracted += len(shard.keys)
                    written += 1
            if records:
                raise MednerError(f"Ray returned no records for {len(records)} shard(s)")

        for shard in iter_shards(documents(), shard_size, finished):
            seen += len(shard.keys)
            manifest["shards"].append({"name": shard_name(shard.index, shard_format),
                                       "first": shard.index * shard_size,
                                       "documents": len(shard.keys),
                                       "ids_hash": ids_hash(shard.keys)})
            if shard.index in finished:
                path = folder / shard_name(shard.index, shard_format)
                if read_shard_keys(path) != shard.keys:
                    raise MednerError(f"{path} does not hold documents "
                                      f"{shard.index * shard_size}..{seen - 1} of the inputs: "
                                      "were the inputs changed since the interrupted run?")
                skipped += len(shard.keys)
                continue
            wave.append(shard)
            if sum(len(s.keys) for s in wave) >= wave_documents:
                run(wave)
                wave = []
                write_manifest(folder, manifest)
        if wave:
            run(wave)
        unknown = finished - {shard_index(e["name"]) for e in manifest["shards"]}
        if unknown:
            raise MednerError(f"{folder} holds {len(unknown)} shard(s) past the end of the "
                              "inputs: were the inputs changed since the interrupted run?")
        manifest.update(complete=True, documents=seen,
                        fingerprint=fingerprint.hexdigest()[:16],
                        read_report=dict(report.counts))
        write_manifest(folder, manifest)
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    notes.extend(f"input: {n} {kind}" for kind, n in report.counts.items())
    return RayResult(output=folder, documents=seen, extracted=extracted, skipped=skipped,
                     shards=len(manifest["shards"]), shards_written=written,
                     seconds=time.perf_counter() - started, notes=notes)


__all__ = ["MANIFEST", "SHARD_FORMATS", "RayResult", "ShardExtractor", "actor_load_options",
           "expand_inputs",
           "extract_with_ray", "iter_input_documents", "iter_shard_documents", "read_manifest"]

"""``--engine ray``: Ray Data in local mode on a tiny model equals local batch extraction,
and a rerun after a lost shard or an interrupted run leaves every document exactly once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

pytest.importorskip("torch")
ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from medner import distributed  # noqa: E402 - after the skips
from medner.backends import load  # noqa: E402
from medner.backends.encoder.config import load_config  # noqa: E402
from medner.backends.encoder.tiny import save_tiny_base  # noqa: E402
from medner.backends.encoder.train import train  # noqa: E402
from medner.batch import extract_to_file  # noqa: E402
from medner.cli import extract as extract_cli  # noqa: E402
from medner.cli import train as train_cli  # noqa: E402
from medner.document import Document, Span  # noqa: E402
from medner.errors import MednerError  # noqa: E402
from medner.io import write_corpus  # noqa: E402

TEXTS = ["she was suffering from Malaria and fever so she used amodiaquine",
         "pain on hip after a fall", "fever and Malaria again", "amodiaquine for the hip pain"]
MENTIONS = {"Malaria": "DISEASE", "fever": "SYMPTOM", "amodiaquine": "DRUG", "pain": "SYMPTOM",
            "hip": "BODY_PART"}
SHARD_SIZE = 5
DOCUMENTS = 23  # four full shards and a short last one


def annotated(doc_id: str, text: str) -> Document:
    spans = tuple(Span(text.index(m), text.index(m) + len(m), label, m)
                  for m, label in MENTIONS.items() if m in text)
    return Document(doc_id, text, spans)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray-model")
    docs = [annotated(str(i), t) for i, t in enumerate(TEXTS)]
    base = save_tiny_base(root / "base", TEXTS)
    data = root / "train.jsonl"
    write_corpus(docs, data, "jsonl")
    config = load_config(None, {"train": str(data), "base_model": str(base),
                                "out": str(root / "model"), "max_steps": 60, "epochs": 1,
                                "learning_rate": 5e-3, "warmup": 0, "batch_size": 2,
                                "max_length": 32, "predict_max_length": 32, "stride": 4,
                                "bf16": False, "seed": 3, "threads": 1})
    return train(config, log=lambda _: None, progress=False).path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A PubTator-free JSONL input with a repeated id (keys must match local extraction)."""
    path = tmp_path_factory.mktemp("ray-in") / "in.jsonl"
    docs = [Document("dup" if i % 7 == 0 else f"d{i}", TEXTS[i % len(TEXTS)])
            for i in range(DOCUMENTS)]
    write_corpus(docs, path, "jsonl")
    return path


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, object_store_memory=512 * 1024**2, include_dashboard=False,
             log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_records(model_dir: Path, inputs: Path, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("local") / "out.jsonl"
    extract_to_file(load(model_dir, threads=1), [inputs], out, progress=False)
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def app() -> typer.Typer:
    app = typer.Typer()
    extract_cli.register(app)
    train_cli.register(app)  # with one command typer would drop the "extract" name
    return app


def run(model_dir: Path, inputs: Path, out: Path, num_actors: int = 1,
        **options) -> distributed.RayResult:
    """One actor unless asked: each actor start imports torch (seconds of the 2 CI cores)."""
    return distributed.extract_with_ray(model_dir, [inputs], out, shard_size=SHARD_SIZE,
                                        ray_batch_size=4, num_actors=num_actors,
                                        progress=False, **options)


def records_of(folder: Path) -> list[dict]:
    return [d.to_dict() for d in distributed.iter_shard_documents(folder)]


def test_ray_output_equals_local_extraction(ray_local, model_dir, inputs, local_records,
                                            tmp_path) -> None:
    out = tmp_path / "ray"
    result = run(model_dir, inputs, out, num_actors=2)
    assert (result.documents, result.extracted, result.shards) == (DOCUMENTS, DOCUMENTS, 5)
    assert records_of(out) == local_records  # same keys (dup, dup#2, ...), order and spans
    assert any(r["spans"] for r in local_records)  # the comparison is not vacuous
    manifest = distributed.read_manifest(out)
    assert manifest["complete"] and manifest["documents"] == DOCUMENTS
    assert [s["documents"] for s in manifest["shards"]] == [5, 5, 5, 5, 3]
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json", *(f"part-{i:06d}.jsonl" for i in range(5))]

    parquet = tmp_path / "parquet"
    result = CliRunner().invoke(app(), [
        "extract", str(model_dir), "--input", str(inputs), "--output", str(parquet),
        "--engine", "ray", "--shard-format", "parquet", "--shard-size", str(SHARD_SIZE),
        "--ray-batch-size", "4", "--num-actors", "1"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"{DOCUMENTS} documents in 5 shards" in result.output
    assert records_of(parquet) == local_records


def test_parquet_input_equals_local_extraction(ray_local, model_dir, inputs, local_records,
                                              tmp_path) -> None:
    """Parquet (id, text columns) is read through medner.io like every other input."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = [Document.from_dict(json.loads(line))
            for line in inputs.read_text(encoding="utf-8").splitlines()]
    parquet = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [d.id for d in docs], "text": [d.text for d in docs]}),
                   parquet, row_group_size=6)
    out = tmp_path / "ray"
    result = run(model_dir, parquet, out)
    assert result.documents == DOCUMENTS
    assert records_of(out) == local_records
    assert [i["format"] for i in distributed.read_manifest(out)["inputs"]] == ["parquet"]


def test_cli_ray_needs_files_and_an_output_folder(model_dir) -> None:
    result = CliRunner().invoke(app(), ["extract", str(model_dir), "some text", "--engine",
                                        "ray"])
    assert result.exit_code != 0
    assert "--engine ray needs --input" in str(result.exception)


def test_cli_ray_refuses_an_output_format_it_would_ignore(model_dir, tmp_path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("some text")
    result = CliRunner().invoke(app(), ["extract", str(model_dir), "--input", str(source),
                                        "--output", str(tmp_path / "out"), "--engine", "ray",
                                        "--format", "pubtator"])
    assert result.exit_code != 0
    assert "--format pubtator does not apply to --engine ray" in str(result.exception)


def test_resume_redoes_only_missing_shards(ray_local, model_dir, inputs, local_records,
                                          tmp_path) -> None:
    out = tmp_path / "ray"
    run(model_dir, inputs, out)
    (out / "part-000002.jsonl").unlink()
    (out / ".part-000003.jsonl.x1.tmp").write_text('{"id": "torn')  # a killed write
    with pytest.raises(MednerError, match="--resume"):
        run(model_dir, inputs, out)
    result = run(model_dir, inputs, out, resume=True)
    assert (result.extracted, result.skipped, result.shards_written) == (5, 18, 1)
    assert records_of(out) == local_records
    assert not list(out.glob(".*.tmp"))


def test_interrupted_run_resumes_without_loss_or_duplicates(ray_local, model_dir, inputs,
                                                            local_records, tmp_path,
                                                            monkeypatch) -> None:
    out = tmp_path / "ray"
    real_write = distributed.write_shard
    written: list[str] = []

    def dies_after_two_shards(path: Path, records) -> None:
        if len(written) == 2:
            raise KeyboardInterrupt  # the job stops between two shard writes
        real_write(path, records)
        written.append(path.name)

    monkeypatch.setattr(distributed, "write_shard", dies_after_two_shards)
    with pytest.raises(KeyboardInterrupt):
        run(model_dir, inputs, out)
    assert not distributed.read_manifest(out)["complete"]
    monkeypatch.setattr(distributed, "write_shard", real_write)

    result = run(model_dir, inputs, out, resume=True)
    assert result.skipped == 2 * SHARD_SIZE and result.extracted == DOCUMENTS - 2 * SHARD_SIZE
    records = records_of(out)
    assert not [k for k, n in Counter(r["id"] for r in records).items() if n > 1]
    assert records == local_records


def test_resume_refuses_changed_inputs(ray_local, model_dir, inputs, tmp_path) -> None:
    out = tmp_path / "ray"
    run(model_dir, inputs, out)
    changed = tmp_path / "changed.jsonl"
    lines = inputs.read_text(encoding="utf-8").splitlines(keepends=True)
    changed.write_text("".join(lines[1:]), encoding="utf-8")
    with pytest.raises(MednerError, match="inputs changed"):
        run(model_dir, changed, out, resume=True)


def test_actors_use_the_cpus_and_gpus_they_reserve() -> None:
    assert distributed.actor_load_options(None, 2, 0) == {"threads": 2}
    assert distributed.actor_load_options({"batch_size": 8}, 0.5, 1) == {
        "batch_size": 8, "device": "cuda"}
    # the user's own choices win
    assert distributed.actor_load_options({"threads": 4, "device": "cuda:1"}, 1, 1) == {
        "threads": 4, "device": "cuda:1"}

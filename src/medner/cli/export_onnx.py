"""``medner export-onnx MODEL``: write the ONNX graphs that ``--runtime onnx`` runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export_onnx_command(
    model: Annotated[Path, typer.Argument(help="A trained encoder folder (from `medner train`).")],
    int8: Annotated[bool, typer.Option(
        "--int8/--no-int8", help="Also write a dynamically quantized int8 graph (faster than "
        "ONNX fp32; `--runtime onnx` uses it when present).")] = True,
) -> None:
    """Export an encoder to ONNX in MODEL/onnx/, for `medner extract MODEL --runtime onnx`."""
    from medner.backends.encoder.onnx import ONNX_FOLDER, export_onnx

    record = export_onnx(model, int8=int8)
    folder = model / ONNX_FOLDER
    for name in record["files"]:
        typer.echo(f"wrote {folder / name} ({(folder / name).stat().st_size / 1e6:.1f} MB)")
    typer.echo(f"`--runtime onnx` runs {record['runtime_file']} (opset {record['opset']}, "
               f"onnxruntime {record['onnxruntime']})")


def register(app: typer.Typer) -> None:
    app.command("export-onnx")(export_onnx_command)

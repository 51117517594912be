"""A trained encoder as ONNX, run by ONNX Runtime: a CPU runtime without torch's bf16 path.

It beats torch in fp32; on CPUs with native bf16 (AMX, AVX512-BF16) torch's bf16 autocast
is faster (measured in docs/benchmarks.md), so torch stays the default.

``export_onnx(folder)`` writes ``<folder>/onnx/`` (``model.onnx``, optionally the dynamically
quantized ``model.int8.onnx``, and ``export.json`` saying what was written);
``OnnxEncoder.load(folder)`` runs the int8 file if present, else the fp32 one.
"""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from medner.backends.encoder.folder import check_folder
from medner.core.folder import atomic_folder, write_json
from medner.errors import MednerError

ONNX_FOLDER = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
EXPORT_JSON = "export.json"
OPSET = 18
# run_windows feeds exactly these; BERT-like models then use all-zero token_type_ids, in torch
# and in the exported graph alike.
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "logits"
# Largest |logit| difference between torch and the exported fp32 graph that still counts as
# the same model (float32 reordering gives ~1e-6).
MAX_EXPORT_DIFF = 1e-3
QUANTIZATION = {"weights": "int8", "activations": "dynamic uint8", "op_types": ["MatMul"],
                "per_channel": True}


def export_onnx(path: str | Path, *, int8: bool = True) -> dict[str, Any]:
    """Export the folder's model to ``<folder>/onnx/`` (replaced atomically); returns
    ``export.json``'s content."""
    folder = Path(path)
    meta = check_folder(folder)
    if meta.get("backend") != "encoder":
        raise MednerError(f"{folder}: export-onnx needs an encoder model folder, this one is "
                          f"{meta.get('backend')!r}")
    if meta.get("ensemble"):
        raise MednerError(f"{folder} is an ensemble; export-onnx exports single models "
                          "(ensembles run in torch)")
    try:
        import onnxruntime
        import onnxscript  # noqa: F401 - torch's ONNX exporter needs it; fail here, clearly
        import torch
        from transformers import AutoModelForTokenClassification
    except ImportError as exc:
        raise MednerError(f"export-onnx needs {exc.name!r}: pip install 'medner[onnx]'") from None

    # Eager attention exports as plain MatMul/Softmax ops: no SDPA mask handling to translate.
    model = AutoModelForTokenClassification.from_pretrained(str(folder),
                                                            attn_implementation="eager")
    model.eval()
    example = example_inputs(model.config)

    def write(tmp: Path) -> None:
        batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
        axes = {name: {0: batch, 1: sequence} for name in INPUT_NAMES}
        # The exporter warns about torch internals nobody here can act on; the graph is
        # checked against the torch model below instead.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (), str(tmp / FP32_FILE),
                              kwargs={name: torch.from_numpy(x) for name, x in example.items()},
                              input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                              dynamic_shapes=axes, opset_version=OPSET, dynamo=True,
                              external_data=False, verbose=False)
        with torch.inference_mode():
            expected = model(**{n: torch.from_numpy(x) for n, x in example.items()}).logits
        diff = float(np.abs(run_file(tmp / FP32_FILE, example) - expected.numpy()).max())
        if not diff <= MAX_EXPORT_DIFF:
            raise MednerError(f"{folder}: the exported ONNX graph disagrees with the torch model "
                              f"(max logit difference {diff:.2g}); not writing {ONNX_FOLDER}/")
        if int8:
            quantize_int8(tmp / FP32_FILE, tmp / INT8_FILE)
        record = {
            "files": sorted([*(p.name for p in tmp.iterdir()), EXPORT_JSON]),
            "runtime_file": INT8_FILE if int8 else FP32_FILE,
            "int8": int8,
            "quantization": QUANTIZATION if int8 else None,
            "inputs": list(INPUT_NAMES),
            "output": OUTPUT_NAME,
            "opset": OPSET,
            "exporter": "torch.onnx.export (dynamo)",
            "fp32_max_logit_diff": diff,
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json(tmp / EXPORT_JSON, record)

    out = atomic_folder(folder / ONNX_FOLDER, write)
    return json.loads((out / EXPORT_JSON).read_text(encoding="utf-8"))


def example_inputs(config) -> dict[str, np.ndarray]:
    """Two rows of in-vocabulary ids, the second padded, so the mask path is exercised."""
    rng = np.random.default_rng(0)
    input_ids = rng.integers(0, config.vocab_size, size=(2, 16), dtype=np.int64)
    attention_mask = np.ones_like(input_ids)
    attention_mask[1, 9:] = 0
    input_ids[1, 9:] = config.pad_token_id or 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the weight matrices (activations quantized per batch)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(source, target, op_types_to_quantize=QUANTIZATION["op_types"],
                     per_channel=QUANTIZATION["per_channel"], weight_type=QuantType.QInt8,
                     extra_options={"MatMulConstBOnly": True})


def new_session(file: Path, threads: int | None = None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default (physical cores)
    options.inter_op_num_threads = 1  # one sequential graph: a second pool only competes
    return onnxruntime.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])


def run_file(file: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    return new_session(file).run([OUTPUT_NAME], inputs)[0]


class OnnxEncoder:
    """An exported encoder under ONNX Runtime, called like ``predict.torch_logits``'s function.

    ``config`` is the transformers config, so callers read sizes as from the torch model.
    """

    def __init__(self, session, config, file: Path) -> None:
        self.session = session
        self.config = config
        self.file = file

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None) -> OnnxEncoder:
        folder = Path(path)
        onnx_folder = folder / ONNX_FOLDER
        files = [onnx_folder / INT8_FILE, onnx_folder / FP32_FILE]
        file = next((f for f in files if f.is_file()), None)
        if file is None:
            raise MednerError(f"{folder}: no ONNX export in {onnx_folder}; run "
                              f"`medner export-onnx {folder}` first")
        try:
            import onnxruntime  # noqa: F401 - checked here for a clear message
        except ImportError:
            raise MednerError("runtime 'onnx' needs onnxruntime: pip install 'medner[onnx]'"
                              ) from None
        from transformers import AutoConfig

        try:
            session = new_session(file, threads)
        except Exception as exc:  # onnxruntime raises its own (non-OSError) types
            raise MednerError(f"{file}: onnxruntime cannot load it ({exc}); re-run "
                              f"`medner export-onnx {folder}`") from None
        return cls(session, AutoConfig.from_pretrained(str(folder)), file)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {"input_ids": input_ids,
                                                "attention_mask": attention_mask})[0]

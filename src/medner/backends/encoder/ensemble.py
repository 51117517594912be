"""Several encoders trained alike (other seeds of one recipe) saved as one model folder.

Their word probabilities are averaged before decoding. The folder is the first member's
folder, so it still loads in a plain ``transformers.pipeline`` (as that member), plus
``members/1``, ``members/2``, ... holding the other members' weights. ``medner.json``
lists them under ``ensemble``; ``EncoderModel.load`` reads them (through ``members.py``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from medner.backends.encoder.folder import check_folder, model_card
from medner.backends.encoder.members import MEMBER_FILES, MEMBERS_FOLDER
from medner.backends.encoder.model import EncoderModel
from medner.core.folder import MEDNER_JSON, atomic_folder, write_json
from medner.document import Document, corpus_fingerprint
from medner.errors import MednerError
from medner.scoring import score_spans

# what must agree for the members' word probabilities to be averaged
_SAME = ("scheme", "tags")


def build_ensemble(members: Sequence[str | Path], out: str | Path, *,
                   dev: Sequence[Document] | None = None, dev_path: str | None = None,
                   log: Callable[[str], None] = print) -> Path:
    """Write an ensemble folder of the encoder folders ``members`` to ``out`` (atomically).

    With ``dev`` documents, the ensemble's own dev metrics replace the first member's in
    ``medner.json`` and the model card; each member's are kept under ``ensemble.sources``.
    """
    if len(members) < 2:
        raise MednerError("an ensemble needs at least two encoder folders")
    folders = [Path(m) for m in members]
    metas = [check_folder(f) for f in folders]
    first_tokenizer = (folders[0] / "tokenizer.json").read_bytes()
    for folder, meta in zip(folders, metas, strict=True):
        if meta.get("backend") != "encoder":
            raise MednerError(f"{folder / MEDNER_JSON}: backend is {meta.get('backend')!r}; "
                              "only encoder folders can be averaged")
        if meta.get("ensemble"):
            raise MednerError(f"{folder} is already an ensemble; list its members instead")
        if (meta.get("inference") or {}).get("transitions"):
            raise MednerError(f"{folder} was trained with the (since removed) CRF option; its "
                              "transition scores are its own, so it cannot be averaged with "
                              "other models")
        for key in _SAME:
            if meta.get(key) != metas[0].get(key):
                raise MednerError(f"{folder}: {key} {meta.get(key)!r} differs from "
                                  f"{folders[0]}'s {metas[0].get(key)!r}")
        if (folder / "tokenizer.json").read_bytes() != first_tokenizer:
            raise MednerError(f"{folder}: its tokenizer differs from {folders[0]}'s; members "
                              "must share a base model")
    sources = [{"path": str(f.resolve()), "seed": m.get("training_config", {}).get("seed"),
                "train_seconds": m.get("train_seconds"), "dev_metrics": m.get("dev_metrics")}
               for f, m in zip(folders, metas, strict=True)]

    def write(folder: Path) -> None:
        shutil.copytree(folders[0], folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("onnx", MEMBERS_FOLDER))
        rels = []
        for k, source in enumerate(folders[1:], start=1):
            rel = f"{MEMBERS_FOLDER}/{k}"
            (folder / rel).mkdir(parents=True)
            for name in MEMBER_FILES:
                shutil.copy2(source / name, folder / rel / name)
            rels.append(rel)
        meta = dict(metas[0])
        meta["folder_name"] = Path(out).name
        meta["ensemble"] = {"members": rels, "sources": sources}
        if dev is not None:
            write_json(folder / MEDNER_JSON, meta)  # the members, for loading
            predicted = EncoderModel.load(folder).predict(dev, progress=True)
            meta["dev_metrics"] = score_spans(list(dev), predicted, mode="strict")
            meta["data"] = {**meta.get("data", {}), "dev_path": dev_path,
                            "dev_documents": len(dev), "dev_fingerprint": corpus_fingerprint(dev)}
            log(f"ensemble of {len(folders)}: dev strict micro F1 "
                f"{100 * meta['dev_metrics']['micro']['f1']:.2f}")
        write_json(folder / MEDNER_JSON, meta)
        (folder / "README.md").write_text(model_card(meta), encoding="utf-8")

    return atomic_folder(out, write)


__all__ = ["build_ensemble"]

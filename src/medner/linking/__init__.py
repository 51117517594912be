"""Concept linking (entity normalization): predicted spans -> concept IDs such as MeSH.

``medner kb build`` gathers names from annotated corpora, MeSH XML and TSV vocabularies into
a ``ConceptIndex`` folder; a ``Linker`` over it links any backend's predicted spans. A model
folder holding ``linker/`` links everything it extracts (see ``medner.pipeline``).
"""

from medner.linking.index import ConceptIndex, build_index
from medner.linking.linker import Linker
from medner.linking.sources import ConceptName, names_from_corpus, read_mesh_xml, read_tsv

__all__ = ["ConceptIndex", "ConceptName", "Linker", "build_index", "names_from_corpus",
           "read_mesh_xml", "read_tsv"]

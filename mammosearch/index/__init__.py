"""The case index: SQLite case store + FAISS vectors, search, fusion and density voting.

The index takes vectors, never images or models: the pipeline embeds and hands vectors in.
"""

from __future__ import annotations

from mammosearch.index.case_index import (
    FORMAT_VERSION,
    CaseIndex,
    EmbedderInfo,
    IndexManifest,
    IndexWriter,
    SearchFilters,
    load_manifest,
    verify_index,
)
from mammosearch.index.store import CaseRow, CaseStore
from mammosearch.index.vectors import VectorIndex
from mammosearch.index.vote import VoteParams, fit_vote, vote_density

__all__ = [
    "FORMAT_VERSION",
    "CaseIndex",
    "CaseRow",
    "CaseStore",
    "EmbedderInfo",
    "IndexManifest",
    "IndexWriter",
    "SearchFilters",
    "VectorIndex",
    "VoteParams",
    "fit_vote",
    "load_manifest",
    "verify_index",
    "vote_density",
]

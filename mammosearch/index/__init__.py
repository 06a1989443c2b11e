"""The case index: SQLite case store + FAISS vectors, search, fusion and density voting.

The index takes vectors, never images or models: the pipeline embeds and hands vectors in.

Modules: :mod:`~mammosearch.index.layout` (the files of an index directory),
:mod:`~mammosearch.index.manifest` (the manifest and the checksums of the files),
:mod:`~mammosearch.index.reader` (an index opened for queries, and its full check; the rows
of its hits and their cache are in ``_hits``),
:mod:`~mammosearch.index.writer` (atomic builds and updates; writers' locks and the repair of
interrupted writes are in ``_recovery``), :mod:`~mammosearch.index.store` (the case rows),
:mod:`~mammosearch.index.vectors` (FAISS) and :mod:`~mammosearch.index.vote` (density votes).
"""

from __future__ import annotations

from mammosearch.index.layout import THUMBS
from mammosearch.index.manifest import (
    FORMAT_VERSION,
    EmbedderInfo,
    IndexManifest,
    load_manifest,
    map_checked,
    read_checked,
)
from mammosearch.index.reader import CaseIndex, SearchFilters, verify_index
from mammosearch.index.store import CaseRow, CaseStore, redact_url
from mammosearch.index.vectors import VectorIndex, merge_top_k, shard_names
from mammosearch.index.vote import VoteParams, fit_vote, vote_density
from mammosearch.index.writer import IndexWriter

__all__ = [
    "FORMAT_VERSION",
    "THUMBS",
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
    "map_checked",
    "merge_top_k",
    "read_checked",
    "redact_url",
    "shard_names",
    "verify_index",
    "vote_density",
]

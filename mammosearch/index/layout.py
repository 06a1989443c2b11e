"""The files of a case index directory.

Layout (DESIGN.md)::

    DIR/manifest.json     format, embedder (name, model id, weights hash, dims, statistics),
                          counts, labels and their order, vote parameters, vector index
                          parameters, SHA-256 of every other file, creation time, version
    DIR/cases.sqlite      one row per image; the row id is its FAISS id (the SQLite store;
                          a PostgreSQL store lives in its server, named by the manifest)
    DIR/image.faiss       image vectors (with N shards: image.shard-00-of-NN.faiss, ...)
    DIR/text.faiss        report-text vectors (when any report was indexed), sharded likewise
    DIR/thumbs/<id>.png   a small display image of each preprocessed image
"""

from __future__ import annotations

__all__ = ["MANIFEST", "MODALITIES", "STORE", "THUMBS"]

MANIFEST = "manifest.json"
STORE = "cases.sqlite"
THUMBS = "thumbs"
MODALITIES = ("image", "text")

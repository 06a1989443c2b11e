"""The case store (SQLite) and FAISS vector indexes: search, fusion and density voting.

Arrives with the case-index issue; nothing is exported yet.
"""

__all__: list[str] = []

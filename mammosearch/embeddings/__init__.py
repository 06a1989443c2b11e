"""Pixels or text → L2-normalised float32 vectors (BiomedCLIP, weight-free baseline, ConvNeXt).

Arrives with the imaging and embeddings issue; nothing is exported yet.
"""

__all__: list[str] = []

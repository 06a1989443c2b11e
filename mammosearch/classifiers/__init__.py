"""ConvNeXt density model, heads on embeddings and clinical metrics.

Arrives with the density-classification issue; nothing is exported yet.
"""

__all__: list[str] = []

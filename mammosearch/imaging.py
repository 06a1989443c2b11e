"""DICOM/PNG/JPEG → arrays: the only module that imports pydicom.

Arrives with the imaging and embeddings issue; nothing is exported yet.
"""

__all__: list[str] = []

"""The Gradio search UI: presentation only, over the public API.

Arrives with the UI issue; nothing is exported yet.
"""

__all__: list[str] = []

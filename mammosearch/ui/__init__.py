"""The Gradio search UI: presentation only, over the public API.

:func:`build_app` makes the Blocks app over an opened
:class:`~mammosearch.pipeline.CaseEngine`; :func:`serve` launches it with safe defaults.
Gradio is imported only when an app is built.
"""

from mammosearch.ui.app import build_app, parse_auth, report_entities, serve

__all__ = ["build_app", "parse_auth", "report_entities", "serve"]

"""The Gradio search UI: presentation only, over the public API.

:func:`build_app` makes the Blocks app over an opened
:class:`~mammosearch.pipeline.CaseService`; :func:`serve` launches it with safe defaults;
:func:`demo_check` runs one query round trip through it.
Gradio is imported only when an app is built.
"""

from mammosearch.ui.app import build_app, parse_auth, report_entities, serve
from mammosearch.ui.check import demo_check

__all__ = ["build_app", "demo_check", "parse_auth", "report_entities", "serve"]

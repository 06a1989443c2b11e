"""spaCy finds the report components and the tokenizer through entry points: a pipeline saved
with ``nlp.to_disk`` loads with ``spacy.load`` in a process that never imported mammosearch.

The entry points live in the installed package's metadata (``pip install -e .`` writes them
from ``pyproject.toml``); after a change to them, reinstall the package.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tomllib
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import spacy

import mammosearch
from mammosearch.nlp import build_pipeline
from mammosearch.nlp.components import PIPE_NAMES

ROOT = Path(mammosearch.__file__).parent.parent
GROUPS = ("spacy_factories", "spacy_tokenizers")
TEXTS = [
    "HALLAZGOS:\nMamas heterogéneamente densas (ACR tipo c). Microcalcificaciones agrupadas en "
    "CSE de mama izquierda.\n\nCONCLUSIÓN: BI-RADS 4A. Se recomienda biopsia.",
    "<p>IMPRESSION: Extremely dense breasts. No suspicious mass. <b>BI-RADS 1</b></p>",
]

# Run in a fresh interpreter: loads the saved pipeline (argv[1]) without importing mammosearch
# first, then prints what each text gives.
_FRESH = """
import json, sys
import spacy
assert not any(m.split(".")[0] == "mammosearch" for m in sys.modules), "imported too early"
nlp = spacy.load(sys.argv[1])
texts = json.loads(sys.stdin.read())
print(json.dumps({"pipes": nlp.pipe_names, "tokenizer": type(nlp.tokenizer).__name__,
                  "docs": [__OUTPUTS__(nlp(t)) for t in texts]}))
"""
_OUTPUTS = """
def outputs(doc):
    return {
        "tokens": [t.text for t in doc],
        "sents": [s.text for s in doc.sents],
        "spans": {k: [(s.start_char, s.end_char, s.label_) for s in v] for k, v in doc.spans.items()},
        "report": doc._.mammo_report.to_dict(),
    }
"""


def _outputs(doc: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(_OUTPUTS, namespace)  # the same function as the fresh process runs
    result: dict[str, Any] = namespace["outputs"](doc)
    return result


def _declared() -> dict[str, dict[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {group: dict(project["entry-points"][group]) for group in GROUPS}


def test_every_factory_and_the_tokenizer_have_an_entry_point() -> None:
    """pyproject.toml names each component factory and the tokenizer, and each entry point
    resolves to the function spaCy has registered under that name."""
    declared = _declared()
    assert sorted(declared["spacy_factories"]) == sorted(PIPE_NAMES)
    for name, target in declared["spacy_factories"].items():
        module, attr = target.split(":")
        assert spacy.registry.factories.get(name) is getattr(importlib.import_module(module), attr)
    for name, target in declared["spacy_tokenizers"].items():
        module, attr = target.split(":")
        assert spacy.registry.tokenizers.get(name) is getattr(importlib.import_module(module), attr)
    assert list(declared["spacy_tokenizers"]) == ["mammosearch.Tokenizer.v1"]


def test_the_installed_package_carries_the_entry_points() -> None:
    installed = {
        group: {ep.name: ep.value for ep in distribution("mammosearch").entry_points
                if ep.group == group}
        for group in GROUPS
    }  # fmt: skip
    assert installed == _declared(), (
        "the installed mammosearch's entry points differ from pyproject.toml: reinstall it "
        "(pip install -e .)"
    )


def test_a_saved_pipeline_loads_in_a_fresh_process(tmp_path: Path) -> None:
    nlp = build_pipeline("es")
    nlp.to_disk(tmp_path / "pipe")
    expected = [_outputs(nlp(text)) for text in TEXTS]
    assert expected[0]["spans"]["birads"] and expected[0]["report"]["findings"]  # not vacuous
    code = _OUTPUTS + _FRESH.replace("__OUTPUTS__", "outputs")
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "pipe")], input=json.dumps(TEXTS),
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout)
    assert loaded["pipes"] == list(PIPE_NAMES)
    assert loaded["tokenizer"] == "MammoTokenizer"
    assert loaded["docs"] == json.loads(json.dumps(expected))  # tuples become lists in JSON

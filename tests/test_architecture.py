"""The layers of docs/ARCHITECTURE.md hold: no import cycle anywhere, imports flow one way, and
the module list of ARCHITECTURE.md is the tree."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import mammosearch
from tests.architecture import cycles, forbidden_imports

M = "mammosearch"
FOUR = tuple(f"{M}.{name}" for name in ("nlp", "embeddings", "index", "classifiers"))
JOBS = tuple(
    f"{M}.pipeline.{name}"
    for name in ("assess", "build", "density", "demo", "deid", "engines", "evaluate",
                 "normalize", "search", "service")
)  # fmt: skip
CORE_AND_FOUR = (*FOUR, f"{M}.records", f"{M}.config", f"{M}.errors", f"{M}.registry", f"{M}.accel",
                 f"{M}.imaging", f"{M}.deid", f"{M}.samples")  # fmt: skip
RULES = [
    # the four never import each other, nor anything above them
    *[((p,), (*(q for q in FOUR if q != p), f"{M}.pipeline", f"{M}.distributed", f"{M}.ui",
              f"{M}.cli"), ()) for p in FOUR],
    # the core imports none of the floors above it
    ((f"{M}.records", f"{M}.config", f"{M}.errors", f"{M}.registry", f"{M}.imaging", f"{M}.accel",
      f"{M}.deid"), (*FOUR, f"{M}.pipeline", f"{M}.distributed", f"{M}.ui", f"{M}.cli"), ()),
    # the Ray engine runs the pipeline's stages and records, never its jobs or its public API
    ((f"{M}.distributed",), (*JOBS, f"{M}.ui", f"{M}.cli"), ()),
    # the pipeline never imports its presenters
    ((f"{M}.pipeline",), (f"{M}.ui", f"{M}.cli"), ()),
    # ui reaches the rest only through the pipeline's public API
    ((f"{M}.ui",), (*CORE_AND_FOUR, f"{M}.distributed", f"{M}.pipeline", f"{M}.cli"),
     (f"{M}.config", f"{M}.errors")),
    # cli: the public APIs of pipeline and ui, plus config and errors
    ((f"{M}.cli",), (*CORE_AND_FOUR, f"{M}.distributed", f"{M}.pipeline", f"{M}.ui"),
     (f"{M}.config", f"{M}.errors")),
]  # fmt: skip


def _public_only(broken: list[str]) -> list[str]:
    """``ui`` and ``cli`` may import ``mammosearch.pipeline`` and ``mammosearch.ui`` themselves
    (their ``__init__``: the public APIs), not their modules; ui's own modules import each
    other freely."""
    allowed = {f"{M}.pipeline", f"{M}.ui"}
    return [b for b in broken if b.split(" imports ")[1] not in allowed]


def test_no_import_cycle() -> None:
    assert cycles(M) == []


def test_imports_flow_one_way() -> None:
    assert _public_only(forbidden_imports(M, RULES)) == []


def test_the_contracts_catch_a_planted_cycle_and_a_forbidden_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "planted"
    (package / "nlp").mkdir(parents=True)
    (package / "index").mkdir()
    (package / "__init__.py").write_text("")
    (package / "nlp" / "__init__.py").write_text("")
    (package / "index" / "__init__.py").write_text("")
    (package / "nlp" / "a.py").write_text("def f():\n    from planted.nlp import b\n")
    (package / "nlp" / "b.py").write_text("from planted.nlp import a\n")
    (package / "index" / "c.py").write_text("from planted.nlp import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cycles("planted") == [["planted.nlp.a", "planted.nlp.b"]]
    rule = (("planted.index",), ("planted.nlp",), ())
    assert forbidden_imports("planted", [rule]) == ["planted.index.c imports planted.nlp.a"]
    sys.modules.pop("planted", None)


def test_architecture_lists_every_module() -> None:
    """docs/ARCHITECTURE.md names each module of the package once, and no module that is not
    there."""
    text = (Path(mammosearch.__file__).parent.parent / "docs" / "ARCHITECTURE.md").read_text(
        encoding="utf-8"
    )
    listed = set(re.findall(r"`(mammosearch/[\w/]+\.py)`", text))
    root = Path(mammosearch.__file__).parent.parent
    tree = {
        p.relative_to(root).as_posix()
        for p in (root / "mammosearch").rglob("*.py")
        if "migrations" not in p.parts
    }
    assert sorted(tree - listed) == [] and sorted(listed - tree) == []

"""Every Python and shell block of the README, CONTRIBUTING, SECURITY and ``docs/*.md`` runs as
written.

Each fenced block names its language. ``python`` and ``bash``/``sh``/``shell`` blocks run: a
Python block as a script (so ``if __name__ == "__main__":`` guards work as in a user's file),
a shell block with ``bash -euo pipefail``, each in its own process whose working directory
mirrors the repository root (a scratch folder of links to the root's entries: relative paths
resolve as from the root, and the files an example writes stay out of the checkout). The
environment puts this interpreter's ``bin`` first on ``PATH`` (``python``, ``mammosearch``),
a scratch cache (``MAMMOSEARCH_CACHE_DIR``, shared by the blocks) and ``HF_HUB_OFFLINE=1``.

A block that must not run here (it needs ``../shared/data``, model weights, a GPU, the network
or a running server, or it takes minutes) is marked on the line before its fence with
``<!-- no-run: REASON -->``; it is reported as skipped with its reason (``-ra`` sums them up
by reason). ``text``, ``json`` and ``mermaid`` blocks are shown, never run. Any other
language, a fence without one, or a marker with no reason or no runnable block after it fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import mammosearch

ROOT = Path(mammosearch.__file__).parent.parent
DOCUMENTS = ["README.md", "CONTRIBUTING.md", "SECURITY.md", *(
    p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "docs").glob("*.md"))
)]  # fmt: skip
RUNS = {"python": "python", "bash": "shell", "sh": "shell", "shell": "shell"}
SHOWN = {"text", "json", "mermaid"}
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
MARK = re.compile(r"^<!--\s*no-run:(.*?)-->\s*$")
TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    """One fenced block of a document."""

    document: str
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    no_run: str | None  # the reason of its no-run marker, if any

    @property
    def name(self) -> str:
        return f"{self.document}:{self.line}"


def parse(document: str) -> tuple[list[Block], list[str]]:
    """The blocks of a document, and what is wrong with its markers or fences."""
    lines = (ROOT / document).read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    problems: list[str] = []
    marker: tuple[int, str] | None = None
    i = 0
    while i < len(lines):
        text = lines[i].strip()
        mark = MARK.match(text)
        fence = FENCE.match(lines[i])
        if mark:
            if marker:
                problems.append(f"{document}:{marker[0]}: a no-run marker with no block after it")
            marker = (i + 1, mark.group(1).strip())
            if not marker[1]:
                problems.append(f"{document}:{i + 1}: a no-run marker must give its reason")
        elif fence:
            indent, ticks, language = fence.groups()
            end = i + 1
            while end < len(lines) and not lines[end].strip().startswith(ticks):
                end += 1
            code = "\n".join(line.removeprefix(indent) for line in lines[i + 1 : end]) + "\n"
            reason = marker[1] if marker else None
            if not language:
                problems.append(f"{document}:{i + 1}: a fence without a language")
            elif language not in RUNS and language not in SHOWN:
                problems.append(f"{document}:{i + 1}: unknown block language {language!r}")
            elif language in SHOWN and marker:
                problems.append(f"{document}:{i + 1}: a no-run marker on a {language} block")
            blocks.append(Block(document, i + 1, language, code, reason))
            marker = None
            i = end
        elif text and marker:
            problems.append(f"{document}:{marker[0]}: a no-run marker not right before a fence")
            marker = None
        i += 1
    if marker:
        problems.append(f"{document}:{marker[0]}: a no-run marker with no block after it")
    return blocks, problems


def _runnable() -> list[Block]:
    return [b for d in DOCUMENTS for b in parse(d)[0] if b.language in RUNS]


def test_every_block_is_runnable_shown_or_marked() -> None:
    problems = [p for d in DOCUMENTS for p in parse(d)[1]]
    assert problems == []
    runnable = _runnable()
    assert [b for b in runnable if b.no_run is None], "no block runs at all"
    assert any(b.language == "python" and b.no_run is None for b in runnable)


def test_the_parser_finds_markers_and_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks above catch what they should, on a planted document."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "planted.md").write_text(
        "<!-- no-run: needs the moon -->\n```bash\nmoon\n```\n\n```python\nprint(1)\n```\n"
        "```\nbare\n```\n<!-- no-run: -->\n```python\npass\n```\n<!-- no-run: dangling -->\n"
        "text\n```rust\nfn main() {}\n```\n",
        encoding="utf-8",
    )
    blocks, problems = parse("planted.md")
    assert [(b.line, b.language, b.no_run) for b in blocks] == [
        (2, "bash", "needs the moon"), (6, "python", None), (9, "", None), (13, "python", ""),
        (18, "rust", None),
    ]  # fmt: skip
    assert problems == [
        "planted.md:9: a fence without a language",
        "planted.md:12: a no-run marker must give its reason",
        "planted.md:16: a no-run marker not right before a fence",
        "planted.md:18: unknown block language 'rust'",
    ]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that looks like the repository root: a link to each of its entries."""
    folder = tmp_path_factory.mktemp("docs-root")
    for entry in ROOT.iterdir():
        if entry.name != ".git":
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "MAMMOSEARCH_CACHE_DIR": str(tmp_path_factory.mktemp("docs-cache")),
        "HF_HUB_OFFLINE": "1",
        "MPLBACKEND": "Agg",
    }


def _checkout() -> set[str]:
    """The files of the checkout (not its caches or the virtual environment), to see that a
    block wrote none there."""
    skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
            "test-artifacts", "node_modules"}  # fmt: skip
    found = set()
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip]
        found |= {os.path.relpath(os.path.join(folder, f), ROOT) for f in files}
    return {f for f in found if not os.path.basename(f).startswith(".coverage")}


@pytest.mark.parametrize("block", _runnable(), ids=lambda b: b.name)
def test_block_runs(block: Block, scratch: Path, environment: dict[str, str]) -> None:
    if block.no_run is not None:
        pytest.skip(f"no-run: {block.no_run}")
    before = _checkout()
    if RUNS[block.language] == "python":
        script = scratch / f"_docs_{block.document.replace('/', '_')}_{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        command = [sys.executable, str(script)]
    else:
        command = ["bash", "-euo", "pipefail", "-c", block.code]
    done = subprocess.run(
        command, cwd=scratch, env=environment, capture_output=True, text=True,
        timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (
        f"{block.name} exited {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n"
        f"--- stderr\n{done.stderr[-5000:]}"
    )
    assert _checkout() == before, f"{block.name} wrote into the checkout"

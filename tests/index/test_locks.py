"""Writers' turns through :mod:`filelock`: exclusive between processes, released by the OS when
a writer fails or is killed (a lock file left behind never blocks), and no OS-specific locking
in the package, so the index imports on every OS."""

from __future__ import annotations

import ast
import contextlib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import mammosearch
from mammosearch.errors import IndexIntegrityError
from mammosearch.index import EmbedderInfo, IndexWriter, verify_index
from mammosearch.index._recovery import _file_lock
from tests.index.test_case_index import INFO, commit, unit, write

# A writer in another process: it opens the index for writing (taking the lock), says so, and
# holds it until a line arrives on its standard input (or it is killed).
_HOLDER = """
import sys
from pathlib import Path
from mammosearch.index import EmbedderInfo, IndexWriter
info = EmbedderInfo(name="fake.v1", model_id="fake", image_dim=16, text_dim=16, cross_modal=True)
with IndexWriter(Path(sys.argv[1]), info):
    print("holding", flush=True)
    sys.stdin.readline()
"""


@contextlib.contextmanager
def _holder(directory: Path) -> Iterator[subprocess.Popen[str]]:
    """A writer in another process that holds the lock of ``directory`` until told or killed."""
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(directory)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None and process.stdout.readline().strip() == "holding"
            yield process
        finally:
            process.kill()


def _start(fn: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as e:  # handed to the test
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def test_writers_of_two_processes_take_turns(tmp_path: Path) -> None:
    directory = tmp_path / "idx"
    with _holder(directory) as holder:
        thread, errors = _start(lambda: write(directory, unit(np.random.default_rng(0), 8)))
        thread.join(timeout=3)
        assert thread.is_alive()  # waits while the other process holds the lock
        assert not (directory / "manifest.json").exists()
        assert holder.stdin is not None
        holder.stdin.write("done\n")
        holder.stdin.flush()
        assert holder.wait(timeout=60) == 0
        thread.join(timeout=120)
        assert not thread.is_alive() and errors == []
    assert verify_index(directory).counts["images"] == 8


@pytest.mark.parametrize("published", [False, True])
def test_a_killed_writer_leaves_no_lock_that_blocks(tmp_path: Path, published: bool) -> None:
    """A first build or an update killed while it held the lock (SIGKILL on POSIX: no clean-up
    code of its own ran): the next writer goes on at once."""
    directory = tmp_path / "idx"
    if published:
        write(directory, unit(np.random.default_rng(0), 8))
    with _holder(directory) as holder:
        holder.kill()
        holder.wait(timeout=60)
    assert (tmp_path / ".idx.lock").exists()  # the name stays; the OS lock went with its holder

    def next_writer() -> None:
        if not published:
            write(directory, unit(np.random.default_rng(1), 4))
            return
        with IndexWriter(directory, INFO) as writer:
            writer.remove_case("case0")
            commit(writer)

    thread, errors = _start(next_writer)
    thread.join(timeout=60)
    assert not thread.is_alive() and errors == []
    assert verify_index(directory).counts["images"] == (6 if published else 4)


def test_a_failed_writer_releases_its_lock(tmp_path: Path) -> None:
    directory = tmp_path / "idx"
    write(directory, unit(np.random.default_rng(0), 8))
    other = EmbedderInfo(name="other.v1", model_id="other", image_dim=8, text_dim=8,
                         cross_modal=False)  # fmt: skip
    with pytest.raises(IndexIntegrityError, match="built by fake.v1"):
        IndexWriter(directory, other)
    with pytest.raises(RuntimeError, match="boom"), IndexWriter(directory, INFO):
        raise RuntimeError("boom")

    def take() -> None:
        with _file_lock(directory):
            pass

    thread, errors = _start(take)
    thread.join(timeout=30)
    assert not thread.is_alive() and errors == []
    assert not list(tmp_path.glob(".idx.new-*"))  # no work directory left either
    assert verify_index(directory).counts["images"] == 8


def test_a_thread_waits_for_another_threads_writer(tmp_path: Path) -> None:
    directory = tmp_path / "idx"
    with _file_lock(directory):
        thread, errors = _start(lambda: write(directory, unit(np.random.default_rng(0), 4)))
        thread.join(timeout=2)
        assert thread.is_alive()
    thread.join(timeout=120)
    assert not thread.is_alive() and errors == []


def test_the_index_imports_without_fcntl() -> None:
    """Where ``fcntl`` does not exist (Windows), the index package still imports."""
    code = (
        "import sys\n"
        "sys.modules['fcntl'] = None\n"  # any `import fcntl` now fails, as on Windows
        "import mammosearch.index, mammosearch.index.writer, mammosearch.index.reader\n"
        "import mammosearch.index._recovery\n"
        "print('imported')"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "imported"


def test_no_os_specific_locking_in_the_package() -> None:
    root = Path(mammosearch.__file__).parent
    found = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.relative_to(root)}: {n}" for n in names
                      if n.split(".")[0] in {"fcntl", "msvcrt"}]  # fmt: skip
    assert found == []

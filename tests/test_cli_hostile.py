"""Every command against ordinary mistakes and bad inputs, as a new user makes them.

Each case runs the real CLI and asserts the documented exit code (0 ok, 1 user error, 2 usage
error, 3 integrity failure), a message that says what was wrong, no traceback, no patient text
echoed, no partial output, lock or journal left behind, and an existing index unchanged and
still verifying.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from mammosearch.cli import EXIT_INTEGRITY, EXIT_USAGE, EXIT_USER, app
from tests.conftest import PHI_CANARY, write_manifest
from tests.test_cases import breast_png

runner = CliRunner()


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], env=env)


def clean(result: Result, code: int, *needles: str) -> None:
    """The documented exit code, the message's needles, no traceback and no patient text."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    assert PHI_CANARY not in result.output and "QUIXOTEVANS" not in result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def leftovers(out: Path) -> list[str]:
    """What a failed build into ``out`` left in its folder (nothing, for a clean failure)."""
    return sorted(
        p.name for p in out.parent.iterdir() if p.name.startswith((out.name, f".{out.name}"))
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "img").mkdir()
    rows = []
    for i in range(8):
        breast_png(folder / "img" / f"{i}.png", 0.1 + 0.25 * (i % 4), i)
        rows.append({"image": f"img/{i}.png", "case_id": f"c{i // 2}", "patient_id": f"p{i // 2}",
                     "laterality": "LR"[i % 2], "view": "CC",
                     "report": f"Patient {PHI_CANARY}. ACR {'ABCD'[i % 4]}. BI-RADS 2.",
                     "density": "ABCD"[i % 4]})  # fmt: skip
    write_manifest(folder / "manifest.csv", rows)
    return folder


@pytest.fixture(scope="module")
def index(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A good index; every test that uses it must leave it byte for byte as it was."""
    out = tmp_path_factory.mktemp("idx") / "index"
    built = run("index", "build", corpus / "manifest.csv", "-o", out, "--embedder", "radiomics.v1",
                "--no-progress")  # fmt: skip
    clean(built, 0, "indexed 8 of 8 rows")
    before = tree_digest(out)
    yield out
    assert tree_digest(out) == before
    clean(run("index", "verify", out), 0, "ok: 8 images")


def rows_of(corpus: Path) -> list[dict[str, str]]:
    import csv

    with (corpus / "manifest.csv").open(encoding="utf-8") as handle:
        return [{**r, "image": str(corpus / r["image"])} for r in csv.DictReader(handle)]


def test_a_repeated_row_is_refused_by_number_before_any_work(corpus: Path, tmp_path: Path) -> None:
    rows = rows_of(corpus)
    manifest = write_manifest(tmp_path / "dup.csv", [*rows, rows[2]])
    out = tmp_path / "new"
    result = run("index", "build", manifest, "-o", out, "--embedder", "radiomics.v1")
    clean(result, EXIT_USER, "row 9 repeats row 3", "--keep-first")
    assert "c1" not in result.output  # ids are PHI: rows are named by number
    assert leftovers(out) == []
    kept = run("index", "build", manifest, "-o", out, "--embedder", "radiomics.v1", "--keep-first")
    clean(kept, 0, "indexed 8 of 8 rows")


def test_a_bad_report_costs_its_report_not_the_build(corpus: Path, tmp_path: Path) -> None:
    rows = rows_of(corpus)
    rows[1]["report"] = "ACR B. " + "x" * 5_000
    rows[2]["report"] = ""
    rows[2]["report_path"] = str(tmp_path / "missing-report.txt")
    for r in rows:
        r.setdefault("report_path", "")
    rows[4]["report"] = "BINARY-CELL"
    manifest = write_manifest(tmp_path / "long.csv", rows)
    # row 5's report cell: the bytes of a JPEG pasted into the table (not text in any encoding)
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x00\x00"
    manifest.write_bytes(manifest.read_bytes().replace(b"BINARY-CELL", jpeg))
    out = tmp_path / "idx"
    result = run("index", "build", manifest, "-o", out, "--embedder", "radiomics.v1",
                 env={"MAMMOSEARCH_MAX_REPORT_CHARS": "1000"})  # fmt: skip
    clean(result, 0, "indexed 8 of 8 rows", "3 reports dropped", "E022", "E020", "E023")
    report = json.loads((out / "build_report.json").read_text(encoding="utf-8"))
    assert report["reports_dropped"] == 3 and report["with_report"] == 5
    assert [d["row"] for d in report["dropped_reports"]] == [2, 3, 5]
    assert report["dropped_reports"][2]["error"].startswith("E023: the report of manifest row 5")


def test_a_build_that_indexes_nothing_publishes_nothing(corpus: Path, tmp_path: Path) -> None:
    rows = [{**r, "image": str(tmp_path / f"gone-{n}.png")} for n, r in enumerate(rows_of(corpus))]
    manifest = write_manifest(tmp_path / "gone.csv", rows)
    out = tmp_path / "empty"
    result = run("index", "build", manifest, "-o", out, "--embedder", "radiomics.v1")
    clean(result, EXIT_USER, "no image could be indexed", "8 of 8 rows skipped", "E021 × 8",
          "nothing was published")  # fmt: skip
    assert leftovers(out) == []


def test_an_empty_manifest_is_refused_by_every_command(tmp_path: Path, index: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("image,case_id,patient_id\n", encoding="utf-8")
    for args in (
        ("index", "build", empty, "-o", tmp_path / "x", "--embedder", "radiomics.v1"),
        ("evaluate", "retrieval", empty, "--embedder", "radiomics.v1"),
        ("assess", index, "--manifest", empty),
        ("train-density", empty, "-o", tmp_path / "model"),
    ):
        clean(run(*args), EXIT_USER, "has no rows")
    assert leftovers(tmp_path / "x") == [] and not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    ("args", "code", "needles"),
    [
        (("--laterality", "X"), EXIT_USAGE, ("--laterality", "use L, R or B")),
        (("--view", "XYZ"), EXIT_USAGE, ("--view", "unknown view")),
        (("-k", "0"), EXIT_USAGE, ("-k",)),
        (("-k", "100000"), EXIT_USAGE, ("-k",)),
        (("--fusion", "max"), EXIT_USAGE, ("--fusion", "weighted")),
        (("--label", "Z"), EXIT_USER, ("label filter 'Z'", "A, B, C, D")),
        (("--image-weight", "2"), EXIT_USAGE, ("--image-weight",)),
    ],
)
def test_search_options_out_of_their_range(
    index: Path, corpus: Path, args: tuple[str, ...], code: int, needles: tuple[str, ...]
) -> None:
    clean(run("search", index, "--image", corpus / "img" / "1.png", *args), code, *needles)


def test_usage_mistakes_point_to_the_commands_own_help(index: Path, corpus: Path) -> None:
    clean(run("assess", index), EXIT_USAGE, "give --image", "mammosearch assess --help")
    clean(run("assess", index, "--image", corpus / "img" / "1.png", "--manifest",
              corpus / "manifest.csv"), EXIT_USAGE, "not both")  # fmt: skip
    clean(run("normalize"), EXIT_USAGE, "give INPUT", "normalize --help")
    clean(run("assess", index, "--image", corpus / "img" / "1.png", "--method", "magic"),
          EXIT_USAGE, "--method", "vote")  # fmt: skip
    clean(run("index", "build", corpus / "manifest.csv", "-o", "x", "--engine", "spark"),
          EXIT_USAGE, "--engine", "local")  # fmt: skip
    clean(run("normalize", "--sample", "-o", "x.jsonl", "--work-dir", "parts"), EXIT_USAGE,
          "need --engine ray")  # fmt: skip


def test_missing_inputs_are_named_as_given(tmp_path: Path, index: Path) -> None:
    given = str(tmp_path / "nowhere" / "report.txt")
    clean(run("normalize", given, "-o", tmp_path / "o.jsonl"), EXIT_USER, given)
    clean(run("index", "build", tmp_path / "m.csv", "-o", tmp_path / "i"), EXIT_USER,
          str(tmp_path / "m.csv"))  # fmt: skip
    clean(run("search", tmp_path / "no-index", "--text", "ACR B"), EXIT_USER)
    clean(run("assess", index, "--image", tmp_path / "none.png"), EXIT_USER, "E021")


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_output_is_refused_before_any_work(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    clean(run("normalize", "--sample", "-o", locked / "out.jsonl"), EXIT_USER, "cannot be written")


def test_normalize_output_paths(tmp_path: Path) -> None:
    clean(run("normalize", "--sample", "-o", tmp_path), EXIT_USER, "is a directory")
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    under_a_file = tmp_path / "file" / "out.jsonl"
    clean(run("normalize", "--sample", "-o", under_a_file), EXIT_USER, "is a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    made = tmp_path / "new" / "folder" / "out.jsonl"  # folders that can be made are made
    clean(run("normalize", "--sample", "-o", made, "--no-progress"), 0)
    assert made.is_file()


def test_an_integrity_failure_exits_3(index: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(index, copy)
    (copy / "cases.sqlite").write_bytes(b"tampered")
    clean(run("index", "verify", copy), EXIT_INTEGRITY, "checksum")
    clean(run("search", copy, "--text", "ACR B"), EXIT_INTEGRITY)


def test_a_report_density_on_another_label_scale_is_not_used(corpus: Path, tmp_path: Path) -> None:
    rows = [{**r, "density": "FGDD"["ABCD".index(r["density"])], "report": ""}
            for r in rows_of(corpus)]  # fmt: skip
    out = tmp_path / "mias-like"
    manifest = write_manifest(tmp_path / "fgd.csv", rows)
    clean(run("index", "build", manifest, "-o", out, "--embedder", "radiomics.v1"), 0)
    result = run("assess", out, "--image", corpus / "img" / "1.png", "--report", "ACR d.",
                 "--json")  # fmt: skip
    clean(result, 0)
    data = json.loads(result.output)
    assert data["density"]["method"] != "report"
    assert any("another scale" in w for w in data["warnings"])
    stated = run("assess", out, "--image", corpus / "img" / "1.png", "--report", "ACR d.",
                 "--method", "vote", "--json")  # fmt: skip
    assert json.loads(stated.output)["density"]["method"] == "vote"


def test_nothing_of_the_index_changes_when_commands_fail(index: Path, corpus: Path) -> None:
    before = tree_digest(index)
    clean(run("index", "build", corpus / "manifest.csv", "-o", index), EXIT_USER,
          "already exists", "--update")  # fmt: skip
    clean(run("index", "remove", index, "--case", "no-such-case"), EXIT_USER)
    clean(run("index", "build", corpus / "manifest.csv", "-o", index, "--update", "--embedder",
              "radiomics.v1", "--keep-report-text"), EXIT_USER, "scrubbed")  # fmt: skip
    assert tree_digest(index) == before
    assert not list(index.parent.glob(f".{index.name}.journal*"))


@pytest.mark.parametrize(
    "command",
    [
        ("normalize", "{p}", "-o", "{t}/o.jsonl"),
        ("index", "build", "{p}", "-o", "{t}/i"),
        ("index", "verify", "{p}"),
        ("index", "remove", "{p}", "--case", "c1"),
        ("index", "migrate", "{p}"),
        ("search", "{p}", "--text", "ACR B."),
        ("assess", "{p}", "--image", "{t}/x.png"),
        ("evaluate", "reports", "{p}", "{t}"),
        ("evaluate", "retrieval", "{p}", "--embedder", "radiomics.v1"),
        ("evaluate", "density", "{p}"),
        ("train-density", "{p}", "-o", "{t}/m"),
        ("deid", "{p}", "{t}/out"),
        ("serve", "{p}"),
    ],
)
def test_every_command_names_a_missing_input_as_given(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    given = str(tmp_path / "not-there")
    args = [part.format(p=given, t=tmp_path) for part in command]
    clean(run(*args), EXIT_USER, given)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_manifest_of_unreadable_or_unlabelled_images_says_which(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [
        {"image": "gone.png", "case_id": "c", "patient_id": "p", "density": "A"},
        {"image": "gone2.png", "case_id": "c", "patient_id": "p", "density": ""},
    ])  # fmt: skip
    for args in (("evaluate", "probe", manifest, "--embedder", "radiomics.v1"),
                 ("train-density", manifest, "-o", tmp_path / "model")):  # fmt: skip
        clean(run(*args), EXIT_USER, "1 rows without a density label, 1 unreadable: E021 × 1")


def test_report_files_in_other_encodings_or_not_text(
    index: Path, corpus: Path, tmp_path: Path
) -> None:
    image = corpus / "img" / "1.png"
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes("Mamografía: densidad ACR C. BI-RADS 2.".encode("utf-16"))
    read = run("assess", index, "--image", image, "--report-file", utf16, "--json")
    clean(read, 0)
    assert json.loads(read.output)["density"] == {**json.loads(read.output)["density"],
                                                  "label": "C", "method": "report"}  # fmt: skip
    binary = tmp_path / "scan.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    clean(run("assess", index, "--image", image, "--report-file", binary), EXIT_USER, "E023")

"""Package-level contracts: exported names, cheap import, typing marker."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import mammosearch

EXPECTED_EXPORTS = {
    "mammosearch": {"__version__"},
    "mammosearch.nlp": {
        "SUPPORTED_LANGUAGES",
        "Normalizer",
        "ReportInput",
        "build_pipeline",
        "decode_report_bytes",
        "detect_language",
        "normalize",
        "normalize_many",
        "report_id",
    },
    "mammosearch.embeddings": {
        "AUTO",
        "PREPARED_SIZE",
        "WEIGHT_FREE",
        "Embedder",
        "FittedEmbedder",
        "create_embedder",
        "l2_normalize",
        "list_embedders",
        "open_embedder",
        "parse_model_source",
    },
    "mammosearch.index": {
        "FORMAT_VERSION",
        "THUMBS",
        "CaseIndex",
        "CaseRow",
        "CaseStore",
        "EmbedderInfo",
        "IndexManifest",
        "IndexWriter",
        "SearchFilters",
        "VectorIndex",
        "VoteParams",
        "fit_vote",
        "load_manifest",
        "map_checked",
        "merge_top_k",
        "read_checked",
        "redact_url",
        "shard_names",
        "verify_index",
        "vote_density",
    },
    "mammosearch.classifiers": {
        "ConvNeXtDensity",
        "DensityClassifier",
        "LinearProbe",
        "TrainConfig",
        "ZeroShotDensity",
        "create_classifier",
        "cross_fitted",
        "decide",
        "density_metrics",
        "density_prompts",
        "list_classifiers",
        "load_density_model",
        "plot_confusion",
        "train_convnext",
        "choose_policy",
        "nested_scores",
    },
    "mammosearch.ui": {"build_app", "demo_check", "parse_auth", "report_entities", "serve"},
    "mammosearch.pipeline": {
        "ASSESS_METHODS",
        "Assessment",
        "BuildOptions",
        "BuildReport",
        "CaseService",
        "DensityDecision",
        "DensityModel",
        "ENGINES",
        "FINDING_COLUMNS",
        "REPORT_COLUMNS",
        "ExamAssessment",
        "Laterality",
        "ManifestRow",
        "ModelOpinion",
        "NormalizeSummary",
        "PreparedImage",
        "PreparedRow",
        "QueryResult",
        "QueryView",
        "REPORT_INPUT_SUFFIXES",
        "RayOptions",
        "SearchFilters",
        "SideDensity",
        "TrainConfig",
        "View",
        "assess_image",
        "assessment_columns",
        "build_index",
        "check_engine",
        "check_inputs",
        "deidentify",
        "demo_index",
        "evaluate_density",
        "evaluate_probe",
        "evaluate_reports",
        "evaluate_retrieval",
        "evaluate_zero_shot",
        "exam_columns",
        "exam_density",
        "export_fhir",
        "format_scores",
        "iter_assessments",
        "iter_exam_assessments",
        "iter_report_inputs",
        "migrate_index",
        "normalize_reports",
        "open_density_model",
        "open_index",
        "plot_confusion",
        "read_gold",
        "read_manifest",
        "read_report_file",
        "remove_cases",
        "report_bundle",
        "sample_reports_dir",
        "search_cases",
        "table_format",
        "train_density",
        "verify_index",
        "write_assessment_table",
        "write_exam_table",
        "write_report_tables",
    },
    "mammosearch.distributed": {
        "ENGINES",
        "Cluster",
        "RayOptions",
        "RaySharded",
        "ShardRun",
        "check_engine",
        "index_entries_on_ray",
        "normalize_on_ray",
        "ray_session",
        "require_ray",
    },
}


@pytest.mark.parametrize("module", sorted(EXPECTED_EXPORTS))
def test_exported_names(module: str) -> None:
    mod = importlib.import_module(module)
    assert set(mod.__all__) == EXPECTED_EXPORTS[module]
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is declared but missing"


def test_every_module_declares_all() -> None:
    root = Path(mammosearch.__file__).parent
    for path in root.rglob("*.py"):
        if "migrations" in path.parts:  # Alembic scripts, run by Alembic, not imported
            continue
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        mod = importlib.import_module(module)
        assert hasattr(mod, "__all__"), f"{module} has no __all__"


def test_import_is_cheap() -> None:
    code = (
        "import sys, mammosearch, mammosearch.records, mammosearch.config, mammosearch.errors, "
        "mammosearch.registry, mammosearch.nlp, mammosearch.classifiers, mammosearch.ui, "
        "mammosearch.distributed\n"
        "heavy = {'torch', 'faiss', 'spacy', 'gradio', 'open_clip', 'timm', 'lingua', 'ray', "
        "'pyarrow'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_py_typed_is_shipped() -> None:
    assert (Path(mammosearch.__file__).parent / "py.typed").is_file()


def test_the_four_subpackages_never_import_each_other() -> None:
    """DESIGN.md: ui, cli → pipeline → {nlp, embeddings, index, classifiers} → core."""
    import ast

    four = {"nlp", "embeddings", "index", "classifiers"}
    root = Path(mammosearch.__file__).parent
    crossings = []
    for package in four:
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                for name in names:
                    parts = name.split(".")
                    if (
                        parts[0] == "mammosearch"
                        and len(parts) > 1
                        and parts[1] in four - {package}
                    ):
                        crossings.append(f"{path.relative_to(root)} imports {name}")
    assert crossings == []


# What every module has without declaring it: not part of any API.
_MODULE_ATTRIBUTES = {"__all__", "__builtins__", "__cached__", "__doc__", "__file__",
                      "__loader__", "__name__", "__package__", "__path__", "__spec__"}  # fmt: skip


def test_the_top_level_namespace_is_its_all() -> None:
    """``import mammosearch`` shows the names of ``__all__`` and its subpackages, nothing else
    (no import helper, no ``annotations`` from ``__future__``)."""
    code = (
        "import json, types, mammosearch as m\n"
        "print(json.dumps([n for n in dir(m) if not isinstance(getattr(m, n), types.ModuleType)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names = set(json.loads(out.stdout))
    assert names - _MODULE_ATTRIBUTES == set(mammosearch.__all__)


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_python_dash_m_runs_the_cli(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mammosearch", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    if args == ["--version"]:
        assert done.stdout.strip() == f"mammosearch {mammosearch.__version__}"
    else:
        assert done.stdout.startswith("Usage: python -m mammosearch [OPTIONS] COMMAND")
        assert "normalize" in done.stdout and "index" in done.stdout

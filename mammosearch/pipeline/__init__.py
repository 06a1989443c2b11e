"""The public API of mammosearch: the jobs, the opened-index service, and their records.

What ``cli``, ``ui``, the benchmarks and users import. Each job is a module named by what it
does; they compose the stages of :mod:`.stages` and run on an engine of :mod:`.engines`:

- reports: :func:`normalize_reports` (``normalize``; JSON Lines, or the flat tables of
  :func:`write_report_tables`), :func:`export_fhir` (FHIR R4 Bundles, :func:`report_bundle`),
  :func:`evaluate_reports` (its scores as text: :func:`format_scores`);
- the case index: :func:`build_index`, :func:`remove_cases`, :func:`migrate_index`,
  :func:`verify_index`, :func:`search_cases`, :func:`assess_image`, :func:`iter_assessments`,
  :func:`iter_exam_assessments`, :func:`exam_density`, :func:`evaluate_retrieval`;
- density models: :func:`train_density`, :func:`open_density_model`, :func:`evaluate_density`,
  :func:`evaluate_probe`, :func:`evaluate_zero_shot`;
- :class:`CaseService` (an index opened once for many queries: the UI) and
  :func:`demo_index` (the demo's cached index); :func:`deidentify` (DICOM de-identification).

Example:
    >>> from mammosearch.pipeline import BuildOptions
    >>> BuildOptions(embedder="radiomics.v1").engine
    'local'
"""

from __future__ import annotations

from mammosearch.classifiers import TrainConfig, plot_confusion
from mammosearch.distributed._options import ENGINES, RayOptions, check_engine
from mammosearch.index import SearchFilters, verify_index
from mammosearch.nlp.evaluation import format_scores
from mammosearch.pipeline._tables import table_format
from mammosearch.pipeline.assess import (
    ASSESS_METHODS,
    DensityModel,
    assess_image,
    exam_density,
    iter_assessments,
    iter_exam_assessments,
    open_density_model,
)
from mammosearch.pipeline.assessment import (
    Assessment,
    DensityDecision,
    ExamAssessment,
    ModelOpinion,
    SideDensity,
)
from mammosearch.pipeline.assessment_table import (
    assessment_columns,
    exam_columns,
    write_assessment_table,
    write_exam_table,
)
from mammosearch.pipeline.build import build_index, migrate_index, remove_cases
from mammosearch.pipeline.deid import deidentify
from mammosearch.pipeline.demo import check_inputs, demo_index
from mammosearch.pipeline.density import evaluate_density, train_density
from mammosearch.pipeline.evaluate import (
    evaluate_probe,
    evaluate_reports,
    evaluate_retrieval,
    evaluate_zero_shot,
)
from mammosearch.pipeline.fhir import export_fhir, report_bundle
from mammosearch.pipeline.manifest import read_manifest
from mammosearch.pipeline.normalize import normalize_reports
from mammosearch.pipeline.records import (
    BuildOptions,
    BuildReport,
    ManifestRow,
    NormalizeSummary,
    PreparedRow,
)
from mammosearch.pipeline.reports import (
    REPORT_INPUT_SUFFIXES,
    iter_report_inputs,
    read_gold,
    read_report_file,
    sample_reports_dir,
)
from mammosearch.pipeline.search import open_index, search_cases
from mammosearch.pipeline.service import CaseService, PreparedImage, QueryResult, QueryView
from mammosearch.pipeline.tables import FINDING_COLUMNS, REPORT_COLUMNS, write_report_tables
from mammosearch.records import Laterality, View

__all__ = [
    "ASSESS_METHODS",
    "ENGINES",
    "FINDING_COLUMNS",
    "REPORT_COLUMNS",
    "REPORT_INPUT_SUFFIXES",
    "Assessment",
    "BuildOptions",
    "BuildReport",
    "CaseService",
    "DensityDecision",
    "DensityModel",
    "ExamAssessment",
    "Laterality",
    "ManifestRow",
    "ModelOpinion",
    "NormalizeSummary",
    "PreparedImage",
    "PreparedRow",
    "QueryResult",
    "QueryView",
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
]

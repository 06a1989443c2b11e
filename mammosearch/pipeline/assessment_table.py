"""The tables of ``assess --manifest -o OUT.parquet`` (or ``.csv``): one row per manifest row
(the assessments table), or with ``--exams`` one row per exam (the exams table), with the
probabilities of the model's density labels as columns.

The label columns follow the labels of the index and density model (data, not an Enum), so
the columns are :func:`assessment_columns` of those labels; the writer takes them from the
first assessment that has a density unless they are given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from mammosearch.errors import InputError
from mammosearch.pipeline._tables import Column, TableWriter, check_table_format, commit_tables
from mammosearch.pipeline.assessment import MODEL_PATHS, Assessment, ExamAssessment
from mammosearch.pipeline.outputs import check_output_file

__all__ = [
    "assessment_columns",
    "exam_columns",
    "flatten_assessment",
    "flatten_exam",
    "write_assessment_table",
    "write_exam_table",
]

# the paths whose weights an ensemble decision states
_WEIGHT_PATHS = ("vote", *MODEL_PATHS)
# an exam's breasts (ExamAssessment.by_side): left, right, views of unknown side
_SIDES = ("L", "R", "unknown")


def assessment_columns(labels: Sequence[str]) -> tuple[Column, ...]:
    """The columns of the assessments table for a model's density labels (in their order).

    ``p_<label>`` is the decision's probability of each label; ``vote_p_<label>``,
    ``convnext_p_<label>`` and ``probe_p_<label>`` each path's own.
    """
    columns: list[Column] = [
        ("case_id", "string"), ("row", "int64"), ("laterality", "string"), ("error", "string"),
        ("density", "string"), ("density_method", "string"), ("density_confidence", "float64"),
        *((f"p_{label}", "float64") for label in labels),
        *((f"weight_{path}", "float64") for path in _WEIGHT_PATHS),
        ("vote", "string"), ("vote_margin", "float64"), ("vote_abstain", "bool"),
        ("vote_reason", "string"), *((f"vote_p_{label}", "float64") for label in labels),
    ]  # fmt: skip
    for path in MODEL_PATHS:
        columns.append((path, "string"))
        columns.extend((f"{path}_p_{label}", "float64") for label in labels)
    columns += [("n_neighbours", "int32"), ("warnings", "list<string>")]
    return tuple(columns)


def flatten_assessment(record: Assessment, labels: Sequence[str]) -> dict[str, Any]:
    """One assessment → its assessments-table row (:func:`assessment_columns` of ``labels``)."""
    row: dict[str, Any] = dict.fromkeys(name for name, _ in assessment_columns(labels))
    data = record.to_dict()
    row |= {"case_id": data.get("case_id"), "row": data.get("row"), "error": data.get("error"),
            "laterality": data.get("laterality"), "warnings": list(data.get("warnings") or ()),
            "n_neighbours": len(data.get("neighbours") or ())}  # fmt: skip
    density = data.get("density")
    if density:
        row |= {"density": density["label"], "density_method": density["method"],
                "density_confidence": density["confidence"]}  # fmt: skip
        row |= _probabilities("p_", density["probabilities"], labels)
        for path, weight in (density.get("weights") or {}).items():
            _known(f"weight_{path}", row)
            row[f"weight_{path}"] = weight
    vote = data.get("vote")
    if vote:
        row |= {"vote": vote["label"], "vote_margin": vote["margin"],
                "vote_abstain": vote["abstain"], "vote_reason": vote["reason"]}  # fmt: skip
        row |= _probabilities("vote_p_", vote["probabilities"], labels)
    for path in MODEL_PATHS:
        opinion = data.get(path)
        if opinion:
            row[path] = opinion["label"]
            row |= _probabilities(f"{path}_p_", opinion["probabilities"], labels)
    return row


def _probabilities(
    prefix: str, values: Mapping[str, float], labels: Sequence[str]
) -> dict[str, Any]:
    extra = set(values) - set(labels)
    if extra:
        raise InputError(
            f"an assessment has density labels outside the table's ({', '.join(labels)}): "
            f"{', '.join(sorted(extra))}",
            fix="assess with one density model and index per table",
        )
    return {f"{prefix}{label}": values.get(label) for label in labels}


def _known(name: str, row: Mapping[str, Any]) -> None:
    if name not in row:
        raise ValueError(f"the assessments table has no column {name!r}")


def exam_columns(labels: Sequence[str]) -> tuple[Column, ...]:
    """The columns of the exams table (``assess --manifest --exams -o``) for a model's density
    labels: the exam's label, how many views were used and failed and which path decided them
    (the report, the vote, or a density model's path), and per breast (``L_``, ``R_``,
    ``unknown_``) its label, views and mean probability of each label."""
    columns: list[Column] = [
        ("case_id", "string"), ("density", "string"), ("views", "int32"), ("failed", "int32"),
        ("views_report", "int32"), ("views_vote", "int32"), ("views_model", "int32"),
    ]  # fmt: skip
    for side in _SIDES:
        columns += [(f"{side}_density", "string"), (f"{side}_views", "int32")]
        columns.extend((f"{side}_p_{label}", "float64") for label in labels)
    return tuple(columns)


def flatten_exam(record: ExamAssessment, labels: Sequence[str]) -> dict[str, Any]:
    """One exam's assessment → its exams-table row (:func:`exam_columns` of ``labels``)."""
    row: dict[str, Any] = dict.fromkeys(name for name, _ in exam_columns(labels))
    methods = dict(record.view_methods)
    row |= {"case_id": record.case_id, "density": record.label, "views": record.views,
            "failed": record.failed, "views_report": methods.pop("report", 0),
            "views_vote": methods.pop("vote", 0), "views_model": sum(methods.values())}  # fmt: skip
    for side, density in record.by_side.items():
        _known(f"{side}_density", row)
        row |= {f"{side}_density": density.label, f"{side}_views": density.views}
        row |= _probabilities(f"{side}_p_", density.probabilities, labels)
    return row


def _exam_labels(record: ExamAssessment) -> list[str] | None:
    side = next(iter(record.by_side.values()), None)
    return list(side.probabilities) if side is not None else None


def _assessment_labels(record: Assessment) -> list[str] | None:
    return list(record.density.probabilities) if record.density is not None else None


def write_assessment_table(
    records: Iterable[Assessment], output_path: Path, *, labels: Sequence[str] | None = None
) -> int:
    """Write ``assess --manifest``'s assessments as one table (Parquet or CSV), streamed.

    Args:
        records: The assessments (:func:`~.assess.iter_assessments`).
        output_path: ``OUT.parquet`` or ``OUT.csv``.
        labels: The density labels, in order, whose probabilities become columns; by default
            those of the first assessment that has a density (failed rows before it wait).

    Returns:
        The rows written.

    Raises:
        InputError: The output is not ``.parquet`` or ``.csv``, pyarrow is missing for
            Parquet, or an assessment has a label outside ``labels``.
    """
    return _write(records, output_path, labels, assessment_columns, flatten_assessment,
                  _assessment_labels)  # fmt: skip


def write_exam_table(
    records: Iterable[ExamAssessment], output_path: Path, *, labels: Sequence[str] | None = None
) -> int:
    """Write ``assess --manifest --exams``' exam assessments as one table, streamed; as
    :func:`write_assessment_table` (the labels by default those of the first exam that has a
    breast assessed)."""
    return _write(records, output_path, labels, exam_columns, flatten_exam, _exam_labels)


def _write(
    records: Iterable[Any],
    output_path: Path,
    labels: Sequence[str] | None,
    columns: Callable[[Sequence[str]], tuple[Column, ...]],
    flatten: Callable[[Any, Sequence[str]], dict[str, Any]],
    labels_of: Callable[[Any], list[str] | None],
) -> int:
    fmt = check_table_format(output_path)
    check_output_file(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    waiting: list[Any] = []
    writer: TableWriter | None = None

    def open_writer(chosen: Sequence[str]) -> TableWriter:
        made = TableWriter(output_path, columns(chosen), fmt)
        stack.callback(made.discard)
        for record in waiting:
            made.write(flatten(record, chosen))
        return made

    with ExitStack() as stack:
        for record in records:
            if writer is None:
                waiting.append(record)
                labels = labels if labels is not None else labels_of(record)
                if labels is not None:
                    writer = open_writer(labels)
            else:
                writer.write(flatten(record, labels or ()))
        if writer is None:
            writer = open_writer(labels or ())
        commit_tables((writer,))
    return writer.count

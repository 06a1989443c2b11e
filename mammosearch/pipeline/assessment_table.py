"""The assessments table of ``assess --manifest -o OUT.parquet`` (or ``.csv``): one row per
manifest row, with the probabilities of the model's density labels as columns.

The label columns follow the labels of the index and density model (data, not an Enum), so
the columns are :func:`assessment_columns` of those labels; the writer takes them from the
first assessment that has a density unless they are given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from mammosearch.errors import InputError
from mammosearch.pipeline._tables import Column, TableWriter, check_table_format, commit_tables
from mammosearch.pipeline.assessment import MODEL_PATHS, Assessment
from mammosearch.pipeline.outputs import check_output_file

__all__ = ["assessment_columns", "flatten_assessment", "write_assessment_table"]

# the paths whose weights an ensemble decision states
_WEIGHT_PATHS = ("vote", *MODEL_PATHS)


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


def _open_assessments(
    stack: ExitStack, path: Path, labels: Sequence[str], fmt: str, waiting: list[Assessment]
) -> TableWriter:
    writer = TableWriter(path, assessment_columns(labels), fmt)
    stack.callback(writer.discard)
    for record in waiting:
        writer.write(flatten_assessment(record, labels))
    return writer


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
    fmt = check_table_format(output_path)
    check_output_file(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    waiting: list[Assessment] = []
    writer: TableWriter | None = None
    with ExitStack() as stack:
        for record in records:
            if writer is None:
                waiting.append(record)
                if labels is None and record.density is None:
                    continue
                labels = list(labels if labels is not None else record.density.probabilities)  # type: ignore[union-attr]
                writer = _open_assessments(stack, output_path, labels, fmt, waiting)
            else:
                writer.write(flatten_assessment(record, labels or ()))
        if writer is None:
            writer = _open_assessments(stack, output_path, labels or (), fmt, waiting)
        commit_tables((writer,))
    return writer.count

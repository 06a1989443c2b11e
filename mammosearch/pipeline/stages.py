"""The stages every job composes: *prepare* (read, check, crop, make the model's input),
*normalize* a report, *embed* images and texts, and *fit the vote*.

One place for each piece of work: ``index build`` (both engines: the Ray engine's tasks and
actors call these same functions), ``search``, ``assess``, density training and evaluation,
and the opened-index service all go through them. Nothing here names an embedder: what differs
between embedders is read from their capabilities (:class:`~mammosearch.embeddings.Embedder`,
:class:`~mammosearch.embeddings.FittedEmbedder`).
"""

from __future__ import annotations

import functools
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch.accel import parallel_map
from mammosearch.embeddings import Embedder, FittedEmbedder
from mammosearch.errors import InputError, InvalidDicomError, PHILeakError, ReportParseError
from mammosearch.imaging import MammoImage, prepare_image, quarantine_reason, read_image
from mammosearch.index import EmbedderInfo, VectorIndex, VoteParams, fit_vote
from mammosearch.nlp import Normalizer
from mammosearch.nlp.scrub import scrub
from mammosearch.pipeline.records import ManifestRow, PreparedRow
from mammosearch.pipeline.reports import read_report_file, table_text
from mammosearch.records import NormalizedReport

__all__ = [
    "EMBED_BATCH",
    "THUMB_SIZE",
    "embed_images",
    "embed_inputs",
    "embed_texts",
    "embedder_info",
    "fit_vote_by_patient",
    "image_inputs",
    "normalize_row_report",
    "prepare_query",
    "prepare_row",
    "row_report_text",
    "thumbnail",
]

logger = logging.getLogger(__name__)

THUMB_SIZE = 256
EMBED_BATCH = 16
_FIT_LIMIT = 20_000  # labelled images used to fit the vote (leave one patient out)

# why an image is quarantined, as build reports say it (imaging.quarantine_reason)
_QUARANTINED = {
    "burned-in annotation": (
        "the image declares burned-in annotation (its pixels may show who it is)",
        "clean its pixels and set Burned In Annotation NO, or leave it out",
    ),
    "secondary capture": (
        "the image is a secondary capture of a screen (it may show anything that was on it)",
        "pass --allow-secondary-capture for digitised film archived that way",
    ),
    "not a mammogram": ("the image is not a mammogram", "pass mammography images only"),
}


# --- prepare -------------------------------------------------------------------------------


def thumbnail(prepared: NDArray[np.float32]) -> bytes:
    """The display thumbnail of a prepared image (PNG bytes, :data:`THUMB_SIZE` square)."""
    from PIL import Image

    image = Image.fromarray((np.clip(prepared, 0, 1) * 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BILINEAR).save(buffer, format="PNG")
    return buffer.getvalue()


def row_report_text(row: ManifestRow) -> str | None:
    """A manifest row's report text: its ``report`` column (decoded here, not when the
    manifest is read: a cell that is not text costs its row's report only), else its
    ``report_path`` file.

    Raises:
        InputError: The report file cannot be read, or the cell or file is not text.
    """
    if row.report is not None:
        return table_text(row.report, what=f"report of manifest row {row.number}")
    if row.report_path is not None:
        return read_report_file(row.report_path)
    return None


def prepare_query(image: Path | bytes, size: int) -> tuple[MammoImage, NDArray[np.float32]]:
    """A query image read and breast-cropped like indexed ones: ``(decoded, prepared)``.

    Raises:
        InvalidDicomError: The image cannot be read.
    """
    decoded = read_image(image)
    return decoded, prepare_image(decoded, size)


def prepare_row(
    row: ManifestRow,
    *,
    size: int,
    keep_report_text: bool,
    allow_secondary_capture: bool,
    normalizer: Normalizer | None = None,
    embedder: Embedder | None = None,
    max_chars: int | None = None,
) -> PreparedRow:
    """Read, check and prepare one manifest row; never raises for a bad row.

    The image is read, quarantined when it may show who it is, breast-cropped to ``size`` and
    thumbnailed; the report text is read and scrubbed of PHI unless kept. With a
    ``normalizer`` the report is normalized too; with an ``embedder`` the image becomes that
    embedder's input (:func:`image_inputs`), else it stays the prepared image.

    A report that cannot be read or parsed, or is longer than ``max_chars`` (the normalizer's
    limit, checked before scrubbing), does not cost the image: the row keeps its image, drops
    the report and says why in ``report_error``.

    Returns:
        The prepared row, or the row with its error code and message (no patient data).
    """
    try:
        image = read_image(row.image)
        reason = quarantine_reason(
            burned_in_annotation=image.extra.get("burned_in_annotation"),
            modality=image.modality,
            screen_capture=bool(image.extra.get("screen_capture")),
            allow_secondary_capture=allow_secondary_capture,
        )
        if reason is not None:
            what, fix = _QUARANTINED[reason]
            raise PHILeakError(f"{what}; quarantined, not indexed", fix=fix)
        prepared = prepare_image(image, size)
    except (InvalidDicomError, InputError, PHILeakError) as e:
        return PreparedRow(row, error_code=e.code, error=str(e))
    text: str | None = None
    report: NormalizedReport | None = None
    report_error = None
    try:
        text = row_report_text(row)
        limit = normalizer.max_chars if normalizer is not None else max_chars
        if text and limit is not None and len(text) > limit:
            raise ReportParseError(
                f"the report has {len(text)} characters; the limit is {limit}",
                fix="split the document or raise max_report_chars in the settings",
            )
        if text and not keep_report_text:
            text = scrub(text).text
        report = normalizer.normalize(text, id=row.case_id) if normalizer and text else None
    except InputError as e:  # a report file unreadable or undecodable, a report too long
        text, report, report_error = None, None, str(e)
    oriented = row.oriented(image.laterality, image.view)
    image_input = image_inputs(embedder, [prepared])[0] if embedder is not None else prepared
    return PreparedRow(oriented, thumb=thumbnail(prepared), text=text or None, report=report,
                       image_input=image_input, report_error=report_error)  # fmt: skip


def normalize_row_report(normalizer: Normalizer, case_id: str, text: str) -> tuple[str, str]:
    """The normalized report of a row's (prepared) text as JSON, ``""`` without one, and why
    it was dropped (``""`` when it was not): the Ray engine's report stage."""
    try:
        normalized = normalizer.normalize(text, id=case_id) if text else None
    except InputError as e:
        return "", str(e)
    return (json.dumps(normalized.to_dict(), ensure_ascii=False) if normalized else ""), ""


# --- embed ---------------------------------------------------------------------------------


def embedder_info(embedder: Embedder, stats: dict[str, list[float]] | None = None) -> EmbedderInfo:
    """What an index records of its embedder (queries must use the same)."""
    return EmbedderInfo(
        name=embedder.name,
        model_id=embedder.model_id,
        weights_sha256=embedder.weights_sha256,
        image_dim=embedder.dim,
        text_dim=embedder.text_dim,
        cross_modal=embedder.supports_cross_modal,
        stats=stats,
    )


def image_inputs(
    embedder: Embedder, images: Sequence[NDArray[np.float32]], workers: int = 1
) -> list[NDArray[Any]]:
    """What :func:`embed_inputs` takes for prepared images: the features of an embedder fitted
    on its index (the costly part, done once per image; by ``workers`` processes), else the
    images themselves."""
    if isinstance(embedder, FittedEmbedder):
        one = functools.partial(_features_of_one, embedder)
        return list(parallel_map(one, images, workers=workers))
    return list(images)


def _features_of_one(embedder: FittedEmbedder, image: NDArray[np.float32]) -> NDArray[Any]:
    row: NDArray[Any] = embedder.features([image])[0]
    return row


def embed_inputs(embedder: Embedder, inputs: Sequence[NDArray[Any]]) -> NDArray[np.float32]:
    """Image vectors (``n×dim``) of :func:`image_inputs`, in batches of :data:`EMBED_BATCH`."""
    if not inputs:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    if isinstance(embedder, FittedEmbedder):
        return embedder.embed_features(np.stack(inputs))
    out = [embedder.embed_images(list(inputs[i : i + EMBED_BATCH]))
           for i in range(0, len(inputs), EMBED_BATCH)]  # fmt: skip
    return np.concatenate(out)


def embed_images(embedder: Embedder, images: Sequence[NDArray[np.float32]]) -> NDArray[np.float32]:
    """Image vectors (``n×dim``) of prepared images."""
    return embed_inputs(embedder, image_inputs(embedder, images))


def embed_texts(embedder: Embedder, texts: Sequence[str]) -> NDArray[np.float32]:
    """Vectors of canonical report texts (``n×text_dim``), in batches."""
    if not texts:
        return np.zeros((0, embedder.text_dim), dtype=np.float32)
    return np.concatenate([embedder.embed_texts(list(texts[i : i + EMBED_BATCH]))
                           for i in range(0, len(texts), EMBED_BATCH)])  # fmt: skip


def report_vectors(
    embedder: Embedder, reports: Sequence[NormalizedReport | None]
) -> dict[int, NDArray[np.float32]]:
    """The vectors of the reports' canonical texts, by position (positions without a report
    are left out)."""
    todo = [(n, r.standardized_text) for n, r in enumerate(reports) if r is not None]
    embedded = embed_texts(embedder, [t for _, t in todo])
    return {n: embedded[j] for j, (n, _) in enumerate(todo)}


# --- vote ----------------------------------------------------------------------------------


def fit_vote_by_patient(
    vectors: VectorIndex,
    rows: Sequence[tuple[int, str, str | None]],
    labels: Sequence[str],
) -> tuple[VoteParams, dict[str, float]]:
    """The neighbour vote fitted leave-one-patient-out: each labelled image (up to 20,000)
    votes from the labelled images of other patients.

    Args:
        vectors: The image vectors, under the rows' ids.
        rows: ``(id, patient, label or None)`` of every image in ``vectors``.
        labels: The label set in its order.

    Returns:
        The vote's parameters and its leave-one-patient-out figures.
    """
    labelled = [r for r in rows if r[2] is not None][:_FIT_LIMIT]
    if len(labelled) < 2:
        return VoteParams(), {}
    by_patient: dict[str, list[int]] = {}
    for row_id, patient, _ in rows:
        by_patient.setdefault(patient, []).append(row_id)
    label_of = {row_id: label for row_id, _, label in rows}
    k = VoteParams().k
    sims = np.zeros((len(labelled), k), dtype=np.float32)
    neighbour_labels: list[list[str]] = []
    for n, (row_id, patient, _) in enumerate(labelled):
        query = vectors.vector(row_id).reshape(1, -1)
        scores, ids = vectors.search(query, k * 3, exclude=by_patient[patient])
        got = [(float(s), label_of.get(int(i))) for s, i in zip(scores[0], ids[0], strict=True)
               if i >= 0 and label_of.get(int(i)) is not None][:k]  # fmt: skip
        sims[n, : len(got)] = [s for s, _ in got]
        neighbour_labels.append([str(lab) for _, lab in got])
    return fit_vote(sims, neighbour_labels, [str(r[2]) for r in labelled], labels, k=k)

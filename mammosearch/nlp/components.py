"""spaCy integration: the cleaning tokenizer and the report components.

The pipeline is ``spacy.blank("en"|"es")`` with :class:`MammoTokenizer` (which cleans HL7,
HTML, markdown and mojibake before tokenizing, and keeps the map back to the input offsets) and
these components, registered with :meth:`spacy.language.Language.factory`:

=================  ==========================================================================
``mammo_language``  report language (EN/ES) → ``doc.user_data["mammosearch.language"]``
``mammo_sections``  sections, side headers and sentences → ``token.is_sent_start``
``mammo_density``   breast-composition statements → ``doc.spans["density"]``
``mammo_birads``    BI-RADS statements → ``doc.spans["birads"]``
``mammo_report``    the resolved :class:`~mammosearch.records.NormalizedReport` →
                    ``doc._.mammo_report``
=================  ==========================================================================

Everything a component stores in ``doc.user_data`` is plain data, so docs serialise with
``Doc.to_bytes`` and cross processes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy
import srsly
from spacy.attrs import SENT_START
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import registry
from spacy.vocab import Vocab

from mammosearch.nlp._text import PreparedText, fold, prepare
from mammosearch.nlp.assessment import BiradsExtractor, resolve_birads
from mammosearch.nlp.consistency import ConsistencyCheck
from mammosearch.nlp.context import ContextRules, Status
from mammosearch.nlp.density import DensityExtractor, resolve_density
from mammosearch.nlp.language import detect_language
from mammosearch.nlp.mentions import CategoryMention
from mammosearch.nlp.render import render_standardized
from mammosearch.nlp.sections import Segmentation, Segmenter, Sentence
from mammosearch.records import (
    BiradsAssessment,
    BiradsCategory,
    DensityAssessment,
    DensityCategory,
    NormalizedReport,
)
from mammosearch.records import (
    Span as EvidenceSpan,
)

__all__ = [
    "BIRADS_KEY",
    "DENSITY_KEY",
    "LANGUAGE_KEY",
    "PIPE_NAMES",
    "REPORT_KEY",
    "SENTENCES_KEY",
    "MammoTokenizer",
    "build_pipeline",
    "prepared_of",
    "segmentation_of",
]

PREPARED_KEY = "mammosearch.prepared"
LANGUAGE_KEY = "mammosearch.language"
SENTENCES_KEY = "mammosearch.sentences"
HEADERS_KEY = "mammosearch.headers"
DENSITY_KEY = "mammosearch.density"
BIRADS_KEY = "mammosearch.birads"
REPORT_KEY = "mammosearch.report"
WARNINGS_KEY = "mammosearch.warnings"
PIPE_NAMES = ("mammo_language", "mammo_sections", "mammo_density", "mammo_birads", "mammo_report")


# A partition of the text: blank runs, words (inner hyphens/apostrophes), numbers, other marks.
_PIECE = re.compile(r"\s+|[^\W\d_]+(?:[-'\u2019][^\W\d_]+)*|\d+(?:[.,]\d+)*|\S")


class MammoTokenizer:
    """Tokenizer that cleans report text, then splits words, numbers and punctuation.

    ``doc.text`` is the cleaned analysis text; :func:`prepared_of` gives the map back to the
    text passed in. The split is a single regular expression (words with inner hyphens or
    apostrophes, numbers with decimals, any other non-blank character), several times faster
    than the languages' rule-based tokenizers on report text, and the same for EN and ES.

    Args:
        vocab: The pipeline's vocabulary.
    """

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab

    def __call__(self, text: str) -> Doc:
        prepared = prepare(text)
        clean = prepared.text
        words: list[str] = []
        spaces: list[bool] = []
        for piece in _PIECE.findall(clean):
            if piece == " " and words and not spaces[-1] and not words[-1].isspace():
                spaces[-1] = True
            else:
                words.append(piece)
                spaces.append(False)
        doc = Doc(self.vocab, words=words, spaces=spaces)
        doc.user_data[PREPARED_KEY] = {
            "original": prepared.original if prepared.starts is not None else None,
            "text": clean,
            "folded": prepared.folded,
            "starts": list(prepared.starts) if prepared.starts is not None else None,
            "ends": list(prepared.ends) if prepared.ends is not None else None,
        }
        return doc

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[Doc]:
        """Tokenize a stream of texts."""
        for text in texts:
            yield self(text)

    def to_bytes(self, **kwargs: Any) -> bytes:
        """The tokenizer is stateless: nothing to serialise beyond its name."""
        return b"mammosearch.Tokenizer.v1"

    def from_bytes(self, data: bytes, **kwargs: Any) -> MammoTokenizer:
        """Stateless: accept what :meth:`to_bytes` wrote."""
        return self

    def to_disk(self, path: str | Path, **kwargs: Any) -> None:
        """Stateless: write a marker file so the folder is self-describing."""
        Path(path).write_bytes(self.to_bytes())

    def from_disk(self, path: str | Path, **kwargs: Any) -> MammoTokenizer:
        """Stateless: nothing to read."""
        return self


def create_tokenizer() -> Callable[[Language], MammoTokenizer]:
    """Tokenizer factory, registered as ``mammosearch.Tokenizer.v1`` for spaCy configs."""

    def make(nlp: Language) -> MammoTokenizer:
        return MammoTokenizer(nlp.vocab)

    return make


registry.tokenizers.register("mammosearch.Tokenizer.v1", func=create_tokenizer)


def prepared_of(doc: Doc) -> PreparedText:
    """The prepared text behind a doc (identity when another tokenizer made it)."""
    data = doc.user_data.get(PREPARED_KEY)
    if data is None:
        text = doc.text
        return PreparedText(text, text, fold(text), None, None)
    text = data["text"]
    original = data["original"] if data["original"] is not None else text
    return PreparedText(original, text, data["folded"], data["starts"], data["ends"])


def segmentation_of(doc: Doc) -> Segmentation:
    """The sentences ``mammo_sections`` found."""
    rows = doc.user_data.get(SENTENCES_KEY)
    if rows is None:
        raise ValueError("the doc has no sections: add 'mammo_sections' before this component")
    headers = tuple(doc.user_data.get(HEADERS_KEY, ()))
    return Segmentation(tuple(Sentence.from_list(r) for r in rows), headers)


def _mentions_of(doc: Doc, key: str) -> list[CategoryMention]:
    return [CategoryMention.from_list(r) for r in doc.user_data.get(key, [])]


class _DataComponent:
    """A component whose state is one JSON rule file."""

    filename = ""

    def __init__(self, name: str, data: dict[str, Any] | None) -> None:
        self.name = name
        self._build(data)

    def _build(self, data: dict[str, Any] | None) -> None:
        raise NotImplementedError

    @property
    def data(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        """Write the component's rule data to ``path/<file>``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        srsly.write_json(folder / self.filename, self.data)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> _DataComponent:
        """Read the rule data written by :meth:`to_disk`."""
        self._build(srsly.read_json(Path(path) / self.filename))
        return self


class LanguageComponent:
    """Detect the report language (kept when the caller already set it)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, doc: Doc) -> Doc:
        if LANGUAGE_KEY not in doc.user_data:
            doc.user_data[LANGUAGE_KEY] = detect_language(prepared_of(doc).text)
        return doc


class SectionsComponent(_DataComponent):
    """Split the report into sentences tagged with section and side."""

    filename = "sections.json"

    def _build(self, data: dict[str, Any] | None) -> None:
        self.segmenter = Segmenter(data)

    @property
    def data(self) -> dict[str, Any]:
        return self.segmenter.data

    def __call__(self, doc: Doc) -> Doc:
        prepared = prepared_of(doc)
        seg = self.segmenter(prepared.text, prepared.folded)
        doc.user_data[SENTENCES_KEY] = [s.to_list() for s in seg.sentences]
        doc.user_data[HEADERS_KEY] = list(seg.headers)
        if len(doc):
            flags = numpy.full((len(doc), 1), -1, dtype="int64")
            flags[0, 0] = 1
            for start in [s.start for s in seg.sentences] + list(seg.headers):
                span = doc.char_span(start, start + 1, alignment_mode="expand")
                if span is not None:
                    flags[span.start, 0] = 1
            doc.from_array([SENT_START], cast(Any, flags.astype("uint64")))
        return doc


class _MentionComponent(_DataComponent):
    key = ""
    group = ""

    def _extract(self, prepared: PreparedText, seg: Segmentation) -> list[CategoryMention]:
        raise NotImplementedError

    def __call__(self, doc: Doc) -> Doc:
        prepared = prepared_of(doc)
        mentions = self._extract(prepared, segmentation_of(doc))
        doc.user_data[self.key] = [m.to_list() for m in mentions]
        spans = []
        for m in mentions:
            if m.status is Status.CURRENT and m.value:
                span = doc.char_span(m.start, m.end, label=m.value, alignment_mode="expand")
                if span is not None:
                    spans.append(span)
        doc.spans[self.group] = spans
        return doc


class DensityComponent(_MentionComponent):
    """Find breast-composition statements."""

    filename = "density.json"
    key = DENSITY_KEY
    group = "density"

    def _build(self, data: dict[str, Any] | None) -> None:
        self.extractor = DensityExtractor(data, ContextRules())

    @property
    def data(self) -> dict[str, Any]:
        return self.extractor.data

    def _extract(self, prepared: PreparedText, seg: Segmentation) -> list[CategoryMention]:
        return self.extractor(prepared.text, prepared.folded, seg)


class BiradsComponent(_MentionComponent):
    """Find BI-RADS assessment statements."""

    filename = "birads.json"
    key = BIRADS_KEY
    group = "birads"

    def _build(self, data: dict[str, Any] | None) -> None:
        self.extractor = BiradsExtractor(data, ContextRules())

    @property
    def data(self) -> dict[str, Any]:
        return self.extractor.data

    def _extract(self, prepared: PreparedText, seg: Segmentation) -> list[CategoryMention]:
        return self.extractor(prepared.text, prepared.folded, seg)


class ReportComponent:
    """Resolve the statements into the report's current terms."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.consistency = ConsistencyCheck()

    def build(self, doc: Doc, id: str = "") -> NormalizedReport:
        """The normalized report of a processed doc."""
        prepared = prepared_of(doc)

        def evidence(m: CategoryMention) -> EvidenceSpan:
            start, end = prepared.to_original(m.start, m.end)
            return EvidenceSpan(prepared.original[start:end], start, end)

        d = resolve_density(_mentions_of(doc, DENSITY_KEY))
        b = resolve_birads(_mentions_of(doc, BIRADS_KEY))
        density = None
        if d.overall is not None:
            density = DensityAssessment(
                DensityCategory(d.overall.value), evidence(d.overall), d.overall.side
            )
        birads = None
        if b.overall is not None:
            birads = BiradsAssessment(BiradsCategory(b.overall.value), evidence(b.overall))
        density_by_side = {k: DensityCategory(v) for k, v in d.by_side.items()}
        birads_by_side = {k: BiradsCategory(v) for k, v in b.by_side.items()}
        warnings = list(doc.user_data.get(WARNINGS_KEY, [])) + list(d.warnings + b.warnings)
        warnings += self.consistency.warnings(
            prepared.folded, segmentation_of(doc), b.overall.value if b.overall else None
        )
        if not prepared.text.strip():
            warnings.append("W002: the report is empty")
        return NormalizedReport(
            id=id,
            language=doc.user_data.get(LANGUAGE_KEY),
            density=density,
            density_by_side=density_by_side,
            birads=birads,
            birads_by_side=birads_by_side,
            standardized_text=render_standardized(density, density_by_side, birads, birads_by_side),
            warnings=tuple(warnings),
        )

    def __call__(self, doc: Doc) -> Doc:
        doc.user_data[REPORT_KEY] = self.build(doc).to_dict()
        return doc


if not Doc.has_extension("mammo_report"):
    Doc.set_extension(
        "mammo_report",
        getter=lambda doc: (
            NormalizedReport.from_dict(doc.user_data[REPORT_KEY])
            if REPORT_KEY in doc.user_data
            else None
        ),
    )
if not Span.has_extension("mammo_category"):
    Span.set_extension("mammo_category", getter=lambda span: span.label_ or None)


@Language.factory("mammo_language", assigns=["doc.user_data"])
def make_language(nlp: Language, name: str) -> LanguageComponent:
    """Factory of :class:`LanguageComponent`."""
    return LanguageComponent(name)


@Language.factory("mammo_sections", assigns=["token.is_sent_start"], default_config={"data": None})
def make_sections(nlp: Language, name: str, *, data: dict[str, Any] | None) -> SectionsComponent:
    """Factory of :class:`SectionsComponent`; ``data`` overrides ``sections.json``."""
    return SectionsComponent(name, data)


@Language.factory(
    "mammo_density",
    assigns=["doc.spans"],
    requires=["token.is_sent_start"],
    default_config={"data": None},
)
def make_density(nlp: Language, name: str, *, data: dict[str, Any] | None) -> DensityComponent:
    """Factory of :class:`DensityComponent`; ``data`` overrides ``density.json``."""
    return DensityComponent(name, data)


@Language.factory(
    "mammo_birads",
    assigns=["doc.spans"],
    requires=["token.is_sent_start"],
    default_config={"data": None},
)
def make_birads(nlp: Language, name: str, *, data: dict[str, Any] | None) -> BiradsComponent:
    """Factory of :class:`BiradsComponent`; ``data`` overrides ``birads.json``."""
    return BiradsComponent(name, data)


@Language.factory("mammo_report", assigns=["doc._.mammo_report"])
def make_report(nlp: Language, name: str) -> ReportComponent:
    """Factory of :class:`ReportComponent`."""
    return ReportComponent(name)


def build_pipeline(lang: str = "en") -> Language:
    """A blank spaCy pipeline for ``lang`` with the mammosearch tokenizer and components.

    Example:
        >>> nlp = build_pipeline("es")
        >>> nlp("Mamas heterogéneamente densas. BI-RADS 2.")._.mammo_report.birads.category.value
        '2'
    """
    import spacy

    nlp = spacy.blank(
        lang, config={"nlp": {"tokenizer": {"@tokenizers": "mammosearch.Tokenizer.v1"}}}
    )
    for name in PIPE_NAMES:
        nlp.add_pipe(name)
    return nlp

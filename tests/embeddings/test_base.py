"""The helpers every embedder shares: L2 normalisation and model-source parsing."""

from __future__ import annotations

import numpy as np
import pytest

from mammosearch.embeddings.base import l2_normalize, parse_model_source
from mammosearch.errors import ConfigError


def test_l2_normalize_scales_rows_to_unit_length_and_keeps_zero_rows() -> None:
    vectors = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0], [0.3, 0.4]], dtype=np.float64)
    out = l2_normalize(vectors)
    assert out.dtype == np.float32 and out.shape == (4, 2)
    expected = np.array([[0.6, 0.8], [0, 0], [0, -1], [0.6, 0.8]], np.float32)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert not np.shares_memory(out, vectors)


def test_l2_normalize_takes_one_vector_as_one_row() -> None:
    out = l2_normalize(np.array([0.0, 5.0, 0.0], dtype=np.float32))
    np.testing.assert_array_equal(out, [[0.0, 1.0, 0.0]])


@pytest.mark.parametrize(
    ("source", "parsed"),
    [
        ("hf-hub:org/name", ("hf-hub", "org/name")),
        ("local-dir:/models/clip", ("local-dir", "/models/clip")),
        ("local-dir:  /models/with space ", ("local-dir", "/models/with space")),
    ],
)
def test_parse_model_source(source: str, parsed: tuple[str, str]) -> None:
    assert parse_model_source(source) == parsed


@pytest.mark.parametrize("source", ["org/name", "hf-hub:", "local-dir:   ", "HF-HUB:org/name",
                                    "/models/local-dir:x"])  # fmt: skip
def test_parse_model_source_rejects_an_ambiguous_or_empty_source(source: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_model_source(source)
    assert (
        raised.value.message == f"model source {source!r} has no 'hf-hub:' or 'local-dir:' prefix"
    )
    assert raised.value.fix == (
        "write hf-hub:ORG/NAME for the Hugging Face Hub or local-dir:PATH for a folder"
    )

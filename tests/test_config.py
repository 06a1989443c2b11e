from __future__ import annotations

import json
from pathlib import Path

import pytest

from mammosearch.config import Settings, load_settings
from mammosearch.errors import ConfigError


def test_defaults_are_safe() -> None:
    s = load_settings()
    assert s.log_phi is False
    assert s.workers == 1
    assert isinstance(s, Settings)


def test_precedence_flags_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ms.toml"
    config.write_text("[mammosearch]\nworkers = 3\nmax_report_chars = 5000\n", encoding="utf-8")
    assert load_settings(config).workers == 3
    monkeypatch.setenv("MAMMOSEARCH_WORKERS", "5")
    s = load_settings(config)
    assert (s.workers, s.max_report_chars) == (5, 5000)
    assert load_settings(config, workers=7).workers == 7
    assert load_settings(config, workers=None).workers == 5  # an unset flag overrides nothing


def test_json_file_and_top_level_table(tmp_path: Path) -> None:
    config = tmp_path / "ms.json"
    config.write_text(json.dumps({"workers": 2}), encoding="utf-8")
    assert load_settings(config).workers == 2


def test_file_values_do_not_leak_between_builds(tmp_path: Path) -> None:
    config = tmp_path / "ms.toml"
    config.write_text("workers = 4\n", encoding="utf-8")
    assert load_settings(config).workers == 4
    assert load_settings().workers == 1


@pytest.mark.parametrize(
    ("content", "suffix", "match"),
    [
        ("workers = [", ".toml", "not valid toml"),
        ("{", ".json", "not valid json"),
        ("[1, 2]", ".json", "must hold a table"),
        ("workers = 0\n", ".toml", "workers"),
        ("unknown_key = 1\n", ".toml", "unknown_key"),
        ("mammosearch = 3\n", ".toml", "must be a table"),
    ],
)
def test_bad_files_raise_config_error(
    tmp_path: Path, content: str, suffix: str, match: str
) -> None:
    config = tmp_path / f"ms{suffix}"
    config.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_settings(config)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_bad_env_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMMOSEARCH_WORKERS", "many")
    with pytest.raises(ConfigError, match="workers"):
        load_settings()

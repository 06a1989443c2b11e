"""The single typed settings object.

:class:`Settings` is built once at an entry point (the CLI, the UI, a script) with
:func:`load_settings` and passed down explicitly; no other module reads the environment.
Sources, highest priority first: explicit overrides (CLI flags), ``MAMMOSEARCH_*``
environment variables, the ``--config`` file (TOML or JSON), then the defaults. Every default
is the safe one.
"""

from __future__ import annotations

import json
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from mammosearch.errors import ConfigError

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Resolved configuration of one mammosearch run.

    Attributes:
        cache_dir: Where built artefacts (demo index, downloaded models) are cached.
        workers: Worker processes for batch jobs.
        max_report_chars: Longest report accepted, in characters; longer ones are rejected
            with a clear error instead of exhausting memory.
        log_phi: Allow report text in debug logs. Off; never turn on outside a secure enclave.
        density_model: The ConvNeXt density model ``assess`` uses when none is passed.
        deid_key: The secret that keeps ``deid`` pseudonyms consistent across runs (set it in the
            environment or a config file readable only by its owner; never on a command line).
        store: Where ``index build`` keeps a new index's case store: ``None`` for SQLite inside
            the index directory, or ``postgresql://USER@HOST:PORT/DATABASE`` (the password from
            libpq's ``PGPASSWORD`` or ``~/.pgpass``; manifests record the URL without it).
    """

    model_config = SettingsConfigDict(env_prefix="MAMMOSEARCH_", extra="forbid", frozen=True)

    cache_dir: Path = Field(default_factory=lambda: platformdirs.user_cache_path("mammosearch"))
    workers: int = Field(default=1, ge=1, le=256)
    max_report_chars: int = Field(default=200_000, ge=1_000)
    log_phi: bool = False
    density_model: Path | None = None
    deid_key: SecretStr | None = None
    store: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Overrides, then the environment, then the config file (passed as ``_file``)."""
        file_settings = InitSettingsSource(settings_cls, init_kwargs=dict(_FILE_VALUES.get() or {}))
        return (init_settings, env_settings, file_settings)


# The parsed config file of the build in progress (a context variable, so concurrent builds
# in threads or tasks never see each other's file).
_FILE_VALUES: ContextVar[dict[str, Any] | None] = ContextVar(
    "mammosearch_config_file", default=None
)


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(
            f"config file not found: {path.name}", fix="pass an existing .toml or .json file"
        )
    try:
        raw = path.read_bytes()
        if path.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"config file {path.name} is not valid {path.suffix.lstrip('.') or 'TOML'}: {e}",
            fix="check the file's syntax",
        ) from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path.name} must hold a table of settings")
    section = data.get("mammosearch", data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path.name}: [mammosearch] must be a table")
    return section


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings of one run.

    Args:
        config_file: Optional TOML (``[mammosearch]`` table or top level) or JSON file.
        **overrides: Explicit values (CLI flags); ``None`` values are ignored.

    Returns:
        The frozen, validated settings.

    Raises:
        ConfigError: The file is missing or malformed, or a value is invalid.

    Example:
        >>> load_settings(workers=2).workers
        2
    """
    token = _FILE_VALUES.set(_read_config_file(config_file) if config_file else {})
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"invalid settings: {problems}", fix="correct these values") from e
    finally:
        _FILE_VALUES.reset(token)

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mammosearch.errors import RegistryError
from mammosearch.registry import Registry, classifiers, embedders


def test_register_create_and_list() -> None:
    reg: Registry[Callable[..., Any]] = Registry("widget")

    @reg.register("tiny.v1")
    def make(size: int = 1) -> dict[str, int]:
        return {"size": size}

    assert reg.create("tiny.v1", size=3) == {"size": 3}
    assert reg.names() == ["tiny.v1"]
    assert "tiny.v1" in reg
    assert reg.get("tiny.v1") is make


def test_duplicate_is_an_error() -> None:
    reg: Registry[Callable[..., Any]] = Registry("widget")
    reg.register("a.v1")(lambda: 1)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a.v1")(lambda: 2)


def test_unknown_lists_available_names() -> None:
    reg: Registry[Callable[..., Any]] = Registry("embedder")
    reg.register("beta.v1")(lambda: 1)
    reg.register("alpha.v2")(lambda: 1)
    with pytest.raises(RegistryError) as info:
        reg.get("gamma.v1")
    assert "unknown embedder 'gamma.v1'" in str(info.value)
    assert "alpha.v2, beta.v1" in str(info.value)


@pytest.mark.parametrize("name", ["biomedclip", "BiomedCLIP.v1", "x.v", "hf-hub:foo", "a.v1.x"])
def test_names_must_be_versioned(name: str) -> None:
    reg: Registry[Callable[..., Any]] = Registry("widget")
    with pytest.raises(RegistryError, match="versioned name"):
        reg.register(name)


def test_module_registries_exist() -> None:
    assert {embedders.kind, classifiers.kind} == {"embedder", "classifier"}


def test_density_models_load_through_the_classifiers_registry(tmp_path: Path) -> None:
    from mammosearch.classifiers import create_classifier, list_classifiers, load_density_model

    assert "convnext_density.v1" in list_classifiers()
    with pytest.raises(RegistryError, match="convnext_density.v1"):
        create_classifier("nope.v1", directory=tmp_path)
    (tmp_path / "config.json").write_text('{"classifier": "nope.v1"}', encoding="utf-8")
    with pytest.raises(RegistryError, match="unknown classifier 'nope.v1'"):
        load_density_model(tmp_path)

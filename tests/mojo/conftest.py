"""Shared helpers for the Mojo spec tests: where the spec is, the charm's real option and
endpoint declarations, and the bundle rendered the way Mojo's bundle phase renders it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "mojo"


def _charm_yaml(name: str) -> dict[str, Any]:
    path = ROOT / name
    if not path.exists():
        pytest.fail(f"{path} does not exist: the Mojo spec is checked against the charm's {name}")
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="session")
def charm_options() -> dict[str, dict[str, Any]]:
    """The options declared in the charm's config.yaml."""
    return _charm_yaml("config.yaml")["options"]


@pytest.fixture(scope="session")
def charm_metadata() -> dict[str, Any]:
    return _charm_yaml("metadata.yaml")


@pytest.fixture
def bundle_text() -> Callable[..., str]:
    """Render mojo/bundle.yaml, strictly, with the variables Mojo's bundle phase supplies."""

    def render(stage_name: str, series: str = "noble", local_dir: str = "/srv/mojo/local") -> str:
        # YAML, not HTML: escaping would corrupt values, as it would in Mojo.
        environment = jinja2.Environment(  # noqa: S701
            undefined=jinja2.StrictUndefined, keep_trailing_newline=True
        )
        template = environment.from_string((SPEC / "bundle.yaml").read_text())
        return template.render(series=series, local_dir=local_dir, stage_name=stage_name)

    return render


@pytest.fixture
def render_bundle(bundle_text: Callable[..., str]) -> Callable[..., dict[str, Any]]:
    """The rendered bundle, parsed as YAML."""

    def render(stage_name: str, series: str = "noble") -> dict[str, Any]:
        return yaml.safe_load(bundle_text(stage_name, series))

    return render

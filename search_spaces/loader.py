"""Reading specs from YAML/JSON text and files, safely."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from search_spaces.spec import StudySpec

MAX_SPEC_BYTES = 256 * 1024
READY_DIR = Path(__file__).resolve().parent


class SpecSyntaxError(ValueError):
    """The text is not well-formed YAML/JSON, or not a mapping."""


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases (no billion-laughs expansion)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


def parse_text(text: str | bytes, *, yaml_syntax: bool) -> dict[str, Any]:
    """Parse a spec document into a mapping; raises ``SpecSyntaxError`` naming the problem."""
    if len(text) > MAX_SPEC_BYTES:
        raise SpecSyntaxError(f"spec is larger than {MAX_SPEC_BYTES} bytes")
    try:
        data = yaml.load(text, Loader=_NoAliasLoader) if yaml_syntax else json.loads(text)
    except yaml.YAMLError as exc:
        raise SpecSyntaxError(f"malformed YAML: {exc}".replace("\n", " ")) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecSyntaxError(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SpecSyntaxError("the spec must be a mapping (an object), not a list or a scalar")
    return data


def load_spec_file(path: str | Path) -> StudySpec:
    """Read and validate a YAML (or JSON) study file."""
    raw = Path(path).read_bytes()
    is_json = str(path).endswith(".json")
    return StudySpec.model_validate(parse_text(raw, yaml_syntax=not is_json))


def ready_spec_path(name: str) -> Path:
    """Path of a ready-made study file shipped in ``search_spaces/`` (e.g. ``quickstart``)."""
    return READY_DIR / f"{name}.yaml"

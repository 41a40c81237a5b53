"""Reading specs from YAML/JSON text and files, safely."""

from __future__ import annotations

import json
import math
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from search_spaces.spec import StudySpec

MAX_SPEC_BYTES = 256 * 1024
MAX_DEPTH = 32  # nesting of mappings and lists; a real spec needs about 5
READY_DIR = Path(__file__).resolve().parent


class SpecSyntaxError(ValueError):
    """The text is not well-formed YAML/JSON, or not a mapping."""


class SpecTooLarge(SpecSyntaxError):
    """The document is larger than ``MAX_SPEC_BYTES``."""


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases (no billion-laughs expansion), explicit tags
    (``!!binary``, ``!!set``, ``!!python/...``: a spec is plain data), duplicate keys and nesting
    deeper than ``MAX_DEPTH`` (the composer recurses once per level)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        where: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not allowed", where)
        tag = getattr(event, "tag", None)
        if tag is not None:
            raise yaml.composer.ComposerError(
                None, None, f"YAML tags are not allowed ({tag})", where
            )
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nesting deeper than {MAX_DEPTH} levels", self.peek_event().start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # refused by the base constructor ("found unhashable key")
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}"[:200], key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; a key given twice is an error, not "the last wins"."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise SpecSyntaxError(f"malformed JSON: duplicate key {key[:100]!r}")
        found[key] = value
    return found


def _refuse_constant(name: str) -> Any:
    raise SpecSyntaxError(f"malformed JSON: {name} is not allowed (numbers must be finite)")


def parse_text(text: str | bytes, *, yaml_syntax: bool) -> dict[str, Any]:
    """Parse a spec document into a mapping; raises ``SpecSyntaxError`` naming the problem."""
    if len(text) > MAX_SPEC_BYTES:
        raise SpecTooLarge(f"spec is larger than {MAX_SPEC_BYTES} bytes")
    kind = "YAML" if yaml_syntax else "JSON"
    try:
        if yaml_syntax:
            data = yaml.load(text, Loader=_NoAliasLoader)
        else:
            data = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except yaml.YAMLError as exc:
        raise SpecSyntaxError(f"malformed YAML: {exc}".replace("\n", " ")) from None
    except RecursionError:
        raise SpecSyntaxError(f"malformed {kind}: nesting deeper than {MAX_DEPTH} levels") from None
    except SpecSyntaxError:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a 5000-digit integer,
        # a YAML timestamp that is no date
        raise SpecSyntaxError(f"malformed {kind}: {exc}".replace("\n", " ")[:500]) from None
    if not isinstance(data, dict):
        raise SpecSyntaxError("the spec must be a mapping (an object), not a list or a scalar")
    problem = _content_problem(data)
    if problem:
        raise SpecSyntaxError(f"malformed {kind}: {problem}")
    return data


def _content_problem(data: Any) -> str | None:
    """Nesting deeper than ``MAX_DEPTH``, a non-finite number, or a string that is not valid
    Unicode (a lone surrogate from a JSON escape), with where it is; None if none."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        where = ".".join(loc) or "the top level"
        if len(loc) > MAX_DEPTH:
            return f"nesting deeper than {MAX_DEPTH} levels at {where}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{value} is not allowed (numbers must be finite) at {where}"
        if isinstance(value, str) and not _valid_unicode(value):
            return f"a string is not valid Unicode (a lone surrogate) at {where}"
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and not _valid_unicode(key):
                    return f"a key is not valid Unicode (a lone surrogate) at {where}"
                name = key if isinstance(key, str) and _valid_unicode(key) else repr(key)
                stack.append((item, (*loc, name[:100])))
        elif isinstance(value, list):
            stack.extend((item, (*loc, str(index))) for index, item in enumerate(value))
    return None


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def load_spec_file(path: str | Path) -> StudySpec:
    """Read and validate a YAML (or JSON) study file."""
    raw = Path(path).read_bytes()
    is_json = str(path).endswith(".json")
    return StudySpec.model_validate(parse_text(raw, yaml_syntax=not is_json))


def ready_spec_path(name: str) -> Path:
    """Path of a ready-made study file shipped in ``search_spaces/`` (e.g. ``quickstart``)."""
    return READY_DIR / f"{name}.yaml"

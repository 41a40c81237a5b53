"""Where a spec may point: dataset files under the data roots, model directories under the model
roots, hub ids of a strict form. The server passes its roots to ``validate_spec``."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath

# A Hugging Face repo id: "name" or "owner/name", each part 1-96 characters of [A-Za-z0-9._-],
# starting and ending with a letter or digit, without "--" or "..".
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
MAX_PATH_CHARS = 4096


@dataclass(frozen=True)
class PathPolicy:
    """The directories a spec's dataset files and model directories must lie in (resolved)."""

    data_roots: tuple[Path, ...]
    model_roots: tuple[Path, ...]

    @classmethod
    def of(cls, data_roots: Iterable[str | Path], model_roots: Iterable[str | Path]) -> PathPolicy:
        """A policy of these roots (each made absolute and resolved)."""
        return cls(_resolved(data_roots), _resolved(model_roots))


def _resolved(roots: Iterable[str | Path]) -> tuple[Path, ...]:
    found = []
    for root in roots:
        if not str(root).strip():
            raise ValueError("a root must not be empty")
        found.append(Path(root).expanduser().resolve())
    return tuple(found)


def hub_id_problem(model: str) -> str | None:
    """Why ``model`` is not a well-formed hub id, or None if it is."""
    if not HUB_ID.match(model):
        return "not a valid hub id ([owner/]name of letters, digits, '.', '_', '-')"
    for part in model.split("/"):
        if "--" in part or ".." in part:
            return "'--' and '..' are not allowed in a hub id"
        if part[-1] in ".-":
            return "a hub id part must not end with '.' or '-'"
    return None


def looks_like_path(value: str) -> bool:
    """True for a string meant as a local path rather than a hub id."""
    if value.startswith(("/", ".", "~")) or any(c in value for c in "\\\x00"):
        return True
    if ".." in PurePath(value).parts:
        return True
    return HUB_ID.match(value) is not None and exists(Path(value))


def exists(path: Path, *, file: bool = False, directory: bool = False) -> bool:
    """``path`` exists (and is a file / a directory), False also for names the OS refuses."""
    try:
        if file:
            return path.is_file()
        if directory:
            return path.is_dir()
        return path.exists()
    except (OSError, ValueError):
        return False


def contained_path(raw: str, roots: tuple[Path, ...], kind: str) -> Path:
    """The resolved path of ``raw`` if it lies under one of ``roots``.

    Relative paths resolve against the working directory. ``..`` components and symlinks are
    followed, and the result must still lie under a root: ``data/../../etc/passwd`` is outside,
    ``data/sub/../train.tsv`` is ``data/train.tsv``.

    Raises:
        ValueError: naming the reason (outside the roots, a symlink leaving them).
    """
    if not raw or "\x00" in raw:
        raise ValueError("path must be non-empty and contain no NUL character")
    if len(raw) > MAX_PATH_CHARS:
        raise ValueError(f"path longer than {MAX_PATH_CHARS} characters")
    if raw.startswith("~"):
        raise ValueError("'~' is not expanded; give a path under the allowed roots")
    if not roots:
        raise ValueError(f"no {kind} roots are configured: local {kind} paths are disabled")
    # An absolute raw replaces the working directory; ".." is folded before looking at links.
    absolute = Path(os.path.normpath(Path.cwd() / raw))
    try:
        resolved = absolute.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name the OS refuses
        raise ValueError(f"path cannot be resolved: {raw}") from exc
    if any(resolved.is_relative_to(root) for root in roots):
        return resolved
    if any(absolute.is_relative_to(root) for root in roots):
        raise ValueError(f"symlink leaves the allowed {kind} roots: {raw}")
    raise ValueError(f"outside the allowed {kind} roots: {raw}")

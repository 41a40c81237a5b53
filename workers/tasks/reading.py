"""Reading a task's files: table rows (tsv/csv/jsonl) and tagged sentences (conll/jsonl).

Every error names the file, the line and the reason (a trial that fails on bad data says where).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any, TypeVar

from search_spaces.spec import Dataset
from workers.data import _read_rows

T = TypeVar("T")


def table_rows(path: str, dataset: Dataset, columns: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of a tsv/csv/jsonl file, each with every column of ``columns``.

    Raises:
        ValueError: A row lacks a column, or the file has no rows.
    """
    rows: list[dict[str, Any]] = []
    for number, row in _read_rows(path, dataset):
        for column in columns:
            if row.get(column) is None:
                raise ValueError(f"column {column!r} is missing in {path} (line {number})")
        rows.append({"line": number, **{c: row[c] for c in columns}})
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def tagged_sentences(path: str, dataset: Dataset) -> list[tuple[int, list[str], list[str]]]:
    """(line, words, tags) of every sentence of a conll or jsonl file.

    conll: one token per line, the word in the first column and the tag in the last
    (whitespace-separated), blank lines between sentences, ``-DOCSTART-`` lines skipped.

    Raises:
        ValueError: A line without a tag, a jsonl row without equal-length lists, no sentences.
    """
    sentences: list[tuple[int, list[str], list[str]]] = []
    with open(path, encoding="utf-8-sig") as handle:
        if dataset.file_format == "jsonl":
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    sentences.append((number, *_jsonl_sentence(path, number, line, dataset)))
        else:
            words: list[str] = []
            tags: list[str] = []
            start = 1
            for number, line in enumerate(handle, start=1):
                fields = line.split()
                if not fields or fields[0] == "-DOCSTART-":
                    if words:
                        sentences.append((start, words, tags))
                    words, tags, start = [], [], number + 1
                    continue
                if len(fields) < 2:
                    raise ValueError(f"{path}, line {number}: a token without a tag: {line!r}")
                words.append(fields[0])
                tags.append(fields[-1])
            if words:
                sentences.append((start, words, tags))
    if not sentences:
        raise ValueError(f"{path}: no sentences")
    return sentences


def _jsonl_sentence(
    path: str, number: int, line: str, dataset: Dataset
) -> tuple[list[str], list[str]]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}, line {number}: invalid JSON: {exc}") from None
    words = row.get(dataset.tokens_column) if isinstance(row, dict) else None
    tags = row.get(dataset.tags_column) if isinstance(row, dict) else None
    if not isinstance(words, list) or not isinstance(tags, list) or len(words) != len(tags):
        raise ValueError(
            f"{path}, line {number}: {dataset.tokens_column!r} and {dataset.tags_column!r} "
            "must be lists of equal length"
        )
    return [str(w) for w in words], [str(t) for t in tags]


def split_off_eval(rows: list[T], dataset: Dataset, seed: int) -> tuple[list[T], list[T]]:
    """(train, eval): a seeded random ``eval_fraction`` of the rows held out, order kept."""
    if len(rows) < 2:
        raise ValueError(f"{dataset.train} needs at least 2 rows to split off eval")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(order) - 1, max(1, round(dataset.eval_fraction * len(order))))
    held, kept = sorted(order[:n_eval]), sorted(order[n_eval:])
    return [rows[i] for i in kept], [rows[i] for i in held]


def subsample(rows: list[T], limit: int | None, seed: int) -> list[T]:
    """A seeded random subset of at most ``limit`` rows, in their original order."""
    if limit is None or limit >= len(rows):
        return rows
    return [rows[i] for i in sorted(random.Random(seed).sample(range(len(rows)), limit))]


def train_and_eval(
    read: Any, dataset: Dataset, max_train: int | None, max_eval: int | None, seed: int
) -> tuple[list[Any], list[Any]]:
    """Both splits by ``read(path)``: the eval file, else a held-out share; then subsets."""
    assert dataset.train is not None  # guaranteed by the spec's Dataset validator
    train = read(dataset.train)
    if dataset.eval is not None:
        held = read(dataset.eval)
    else:
        train, held = split_off_eval(train, dataset, seed)
    return subsample(train, max_train, seed), subsample(held, max_eval, seed + 1)

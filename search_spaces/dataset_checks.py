"""Submit-time checks of a dataset's files against its task: the columns the task reads are in
the header (or ``column_names``), regression labels are numbers, conll lines carry tags, jsonl
rows hold what the task reads. Only the first rows are read (the header and ``SAMPLE_ROWS``)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search_spaces.spec import Dataset
    from search_spaces.tasks import TaskInfo

Broken = tuple[tuple[str | int, ...], str]
SAMPLE_ROWS = 20
SAMPLE_CONLL_LINES = 400
HEAD_BYTES = 1 << 20  # read at most this much of a file


def file_problem(info: TaskInfo, dataset: Dataset) -> Broken | None:
    """What is wrong with the train or eval file for this task, or None."""
    for field in ("train", "eval"):
        path = getattr(dataset, field)
        if path is None:
            continue
        try:
            problem = _check(info, dataset, path)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            return ("dataset", field), f"cannot read {path}: {exc}"
        if problem:
            loc, reason = problem
            return ("dataset", loc or field), reason
    return None


def _check(info: TaskInfo, dataset: Dataset, path: str) -> tuple[str | None, str] | None:
    fmt = dataset.file_format
    if fmt == "conll":
        return _conll(path)
    rows = _jsonl_rows(path) if fmt == "jsonl" else _table_rows(path, dataset)
    if isinstance(rows, tuple):
        return rows
    columns = dataset.columns(info)
    for number, row in rows:
        for field, column in columns.items():
            if column not in row:
                have = ", ".join(list(row)[:20])
                return field, f"column {column!r} is not in {path} (line {number} has: {have})"
        if info.label_kind == "number" and not _is_number(row[dataset.label_column]):
            value = row[dataset.label_column]
            return "label_column", (
                f"{path}, line {number}: label {value!r} is not a number (task {info.name})"
            )
        if info.label_kind == "tags":
            words, tags = row[dataset.tokens_column], row[dataset.tags_column]
            if not (isinstance(words, list) and isinstance(tags, list)) or len(words) != len(tags):
                return "tags_column", (
                    f"{path}, line {number}: {dataset.tokens_column!r} and "
                    f"{dataset.tags_column!r} must be lists of equal length"
                )
    return None


def _head(path: str) -> io.StringIO:
    """The file's first ``HEAD_BYTES`` (whole lines only), so that a huge line costs no more."""
    with open(path, "rb") as raw:
        data = raw.read(HEAD_BYTES + 1)
    if len(data) > HEAD_BYTES:
        data = data[: data.rfind(b"\n", 0, HEAD_BYTES) + 1]
    return io.StringIO(data.decode("utf-8-sig"), newline="")


def _table_rows(path: str, dataset: Dataset) -> list[tuple[int, dict[str, Any]]]:
    with _head(path) as handle:
        if dataset.file_format == "tsv":
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(handle)
        header = dataset.column_names
        rows: list[tuple[int, dict[str, Any]]] = []
        for fields in itertools.islice(reader, SAMPLE_ROWS + 1):
            if not any(f.strip() for f in fields):
                continue
            if header is None:
                header = fields
                rows.append((reader.line_num, dict.fromkeys(header, "")))  # the header itself
                continue
            row = dict(zip(header, fields, strict=False))
            rows.append((reader.line_num, row))
        if len(rows) > 1 and dataset.column_names is None:
            rows = rows[1:]  # data rows carry the values (a header-only file keeps the names)
        return rows


def _jsonl_rows(path: str) -> list[tuple[int, dict[str, Any]]] | tuple[None, str]:
    rows = []
    with _head(path) as handle:
        for number, line in enumerate(itertools.islice(handle, SAMPLE_ROWS), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                return None, f"{path}, line {number}: invalid JSON: {exc}"
            if not isinstance(row, dict):
                return None, f"{path}, line {number}: expected a JSON object"
            rows.append((number, row))
    return rows


def _conll(path: str) -> tuple[str | None, str] | None:
    tagged = 0
    with _head(path) as handle:
        for number, line in enumerate(itertools.islice(handle, SAMPLE_CONLL_LINES), start=1):
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                continue
            if len(fields) < 2:
                return None, (
                    f"{path}, line {number}: no tag (format conll: the word, then its tag, on "
                    "each line)"
                )
            tagged += 1
    return None if tagged else (None, f"{path}: no tagged tokens")


def _is_number(value: Any) -> bool:
    try:
        return math.isfinite(float(str(value).strip()))
    except ValueError:
        return False

"""Text-classification data: the synthetic built-in set, local files, tokenising and batching."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from search_spaces.spec import Dataset

if TYPE_CHECKING:
    import torch

SYNTHETIC = "synthetic-sentiment"

# Word lists of the synthetic sentiment set. The tiny BERT vocabulary contains every word here.
_SUBJECTS = (
    "the movie", "the film", "this show", "the story", "the acting", "the plot", "the music",
    "the ending", "the cast", "the script", "the book", "the meal", "the service", "the hotel",
    "the game", "this album", "the trip", "the concert", "the lecture", "the product",
)  # fmt: skip
_VERBS = ("was", "is", "felt", "seemed", "looked", "sounded", "turned out")
_INTENSIFIERS = ("very", "really", "quite", "truly", "rather", "so", "pretty", "extremely")
_POSITIVE = (
    "good", "great", "excellent", "wonderful", "delightful", "charming", "brilliant",
    "enjoyable", "fun", "lovely", "superb", "moving", "clever", "beautiful", "fantastic",
    "pleasant",
)  # fmt: skip
_NEGATIVE = (
    "bad", "awful", "terrible", "boring", "dull", "poor", "horrible", "weak", "bland",
    "painful", "dreadful", "clumsy", "tedious", "ugly", "annoying", "mediocre",
)  # fmt: skip
_NEGATIONS = ("not", "never")
_PREFIXES = (
    "honestly", "overall", "to be fair", "in my opinion", "i think", "frankly", "well",
    "as expected", "surprisingly", "my friend said",
)  # fmt: skip
_SUFFIXES = (
    "from start to finish", "for most of the time", "in the second half", "at times",
    "for me", "if you ask me", "all things considered", "to be honest", "on the whole",
    "yesterday", "last week", "with my family",
)  # fmt: skip

# Probabilities of the generator's choices.
_P_PREFIX = 0.4
_P_SUFFIX = 0.5
_P_INTENSIFIER = 0.4
_P_ANOTHER_WORD = 0.8  # chance of one more sentiment word (up to _MAX_WORDS)
_MAX_WORDS = 3
_P_NEGATION = 0.1
_P_LABEL_NOISE = 0.05


@dataclass(frozen=True)
class TextData:
    """Raw texts (a token task: word lists) and labels of a train and an eval split; the second
    texts of sentence pairs, if any."""

    train_texts: list[Any]
    train_labels: list[Any]
    eval_texts: list[Any]
    eval_labels: list[Any]
    label_names: list[str]
    train_pairs: list[Any] | None = None
    eval_pairs: list[Any] | None = None


@dataclass(frozen=True)
class TokenizedData:
    """Token ids (with [CLS]/[SEP], unpadded) and labels of a train and an eval split: a class
    index, a float (regression) or one label per token (a token task, -100 where none)."""

    train_ids: list[list[int]]
    train_labels: list[Any]
    eval_ids: list[list[int]]
    eval_labels: list[Any]
    num_labels: int
    pad_id: int
    sep_id: int | None
    max_length: int
    train_types: list[list[int]] | None = None  # token_type_ids of sentence pairs
    eval_types: list[list[int]] | None = None
    label_names: list[str] = field(default_factory=list)
    task: str = "classification"
    tag_scheme: str = "iob2"  # of a token task's tags


def synthetic_words() -> list[str]:
    """Every word the synthetic sentiment generator can emit, sorted.

    Returns:
        The sorted, de-duplicated words.
    """
    phrases = (
        *_SUBJECTS, *_VERBS, *_INTENSIFIERS, *_POSITIVE, *_NEGATIVE, *_NEGATIONS, *_PREFIXES,
        *_SUFFIXES, "and", "but",
    )  # fmt: skip
    return sorted({word for phrase in phrases for word in phrase.split()})


def _sentence(rng: random.Random) -> tuple[str, int]:
    """One sentence and its true label (before noise)."""
    polarity = rng.randrange(2)  # 1 = positive
    words = _POSITIVE if polarity else _NEGATIVE
    negated = rng.random() < _P_NEGATION
    parts: list[str] = []
    if rng.random() < _P_PREFIX:
        parts.append(rng.choice(_PREFIXES) + ",")
    parts += [rng.choice(_SUBJECTS), rng.choice(_VERBS)]
    if negated:
        parts.append(rng.choice(_NEGATIONS))
    if rng.random() < _P_INTENSIFIER:
        parts.append(rng.choice(_INTENSIFIERS))
    adjectives = [rng.choice(words)]
    while len(adjectives) < _MAX_WORDS and rng.random() < _P_ANOTHER_WORD:
        adjectives.append(rng.choice(words))
    *first, last = adjectives
    parts.append(f"{', '.join(first)} and {last}" if first else last)
    if rng.random() < _P_SUFFIX:
        parts.append(rng.choice(_SUFFIXES))
    return " ".join(parts) + rng.choice((".", "!", "")), polarity ^ int(negated)


def _synthetic_split(n: int, rng: random.Random) -> tuple[list[str], list[int]]:
    texts: list[str] = []
    labels: list[int] = []
    for _ in range(n):
        text, label = _sentence(rng)
        if rng.random() < _P_LABEL_NOISE:
            label = 1 - label
        texts.append(text)
        labels.append(label)
    return texts, labels


def synthetic_sentiment(n_train: int = 2048, n_eval: int = 256, seed: int = 0) -> TextData:
    """Deterministic English-like sentences with binary sentiment labels.

    Each sentence holds one to three sentiment adjectives of the same polarity among filler
    words; a negation ("not", "never", in 10% of sentences) flips the label, and 5% of labels
    are flipped at random, so the best reachable accuracy is about 0.95. The tiny BERT learns
    it in 2 epochs of 512 samples (batch 16) at a learning rate around 1e-3 to 3e-3, and stays
    at chance at 1e-4 and below.

    Args:
        n_train: Number of training sentences.
        n_eval: Number of evaluation sentences.
        seed: Seed of the generator; the same seed always gives the same data.

    Returns:
        The generated splits; label 0 is negative, 1 positive.
    """
    rng = random.Random(f"synthetic-sentiment-{seed}")
    train_texts, train_labels = _synthetic_split(n_train, rng)
    eval_texts, eval_labels = _synthetic_split(n_eval, rng)
    return TextData(train_texts, train_labels, eval_texts, eval_labels, ["negative", "positive"])


def _read_rows(path: str, dataset: Dataset) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, row) of a tsv/csv/jsonl file, skipping blank lines."""
    fmt = dataset.file_format
    with open(path, encoding="utf-8-sig", newline="") as handle:
        if fmt == "jsonl":
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}, line {number}: invalid JSON: {exc}") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}, line {number}: expected a JSON object")
                yield number, row
            return
        if fmt == "tsv":
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(handle)
        header = dataset.column_names
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue
            if header is None:
                header = fields
                continue
            yield reader.line_num, dict(zip(header, fields, strict=False))


def _as_int(value: Any) -> int | None:
    """The value as an int if it is one (or a string or float holding one), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def encode_labels(raw: Sequence[Any]) -> tuple[list[int], list[str]]:
    """Map raw labels to class indices 0..K-1.

    Non-negative integer labels (also as strings) are used as they are; other integers are
    mapped in numeric order, anything else in sorted string order (e.g. "ham" 0, "spam" 1).

    Args:
        raw: The labels as read from the files.

    Returns:
        The class index of each label and the name of each class index.
    """
    ints = [_as_int(value) for value in raw]
    if all(i is not None for i in ints):
        values = [i for i in ints if i is not None]
        if min(values) >= 0:
            return values, [str(i) for i in range(max(values) + 1)]
        ordered = sorted(set(values))
        index = {v: i for i, v in enumerate(ordered)}
        return [index[v] for v in values], [str(v) for v in ordered]
    strings = [str(value).strip() for value in raw]
    names = sorted(set(strings))
    lookup = {name: i for i, name in enumerate(names)}
    return [lookup[s] for s in strings], names


def _subsample(
    texts: list[str], labels: list[int], limit: int | None, seed: int
) -> tuple[list[str], list[int]]:
    """A seeded random subset of at most ``limit`` rows, in their original order."""
    if limit is None or limit >= len(texts):
        return texts, labels
    keep = sorted(random.Random(seed).sample(range(len(texts)), limit))
    return [texts[i] for i in keep], [labels[i] for i in keep]


def load_text_data(
    dataset: Dataset,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    seed: int = 0,
) -> TextData:
    """Load a built-in dataset or local files as texts and integer labels.

    Args:
        dataset: The dataset of a task (a built-in name, or train and optional eval files).
        max_train_samples: Keep at most this many training rows (a seeded random subset).
        max_eval_samples: Keep at most this many evaluation rows (a seeded random subset).
        seed: Seed of the synthetic generator, the eval split and the subsets.

    Returns:
        The loaded splits.

    Raises:
        ValueError: A file lacks a column, has no rows, or is too small to split.
    """
    if dataset.name is None:  # files: read as the classification task reads them
        from workers.tasks.classification import ClassificationTask

        return ClassificationTask().load(dataset, max_train_samples, max_eval_samples, seed)
    if dataset.name != SYNTHETIC:
        raise ValueError(f"unknown built-in dataset {dataset.name!r}")
    data = synthetic_sentiment(
        n_train=max(2048, max_train_samples or 0), n_eval=max(256, max_eval_samples or 0),
        seed=seed,
    )  # fmt: skip
    train_texts, train_labels = _subsample(
        data.train_texts, data.train_labels, max_train_samples, seed
    )
    eval_texts, eval_labels = _subsample(
        data.eval_texts, data.eval_labels, max_eval_samples, seed + 1
    )
    return TextData(train_texts, train_labels, eval_texts, eval_labels, data.label_names)


def tokenize(data: TextData, tokenizer: Any, max_length: int) -> TokenizedData:
    """Tokenise both splits once, with truncation and without padding.

    Args:
        data: The texts and labels.
        tokenizer: A Hugging Face tokenizer (fast tokenizers tokenise in batches).
        max_length: The most tokens per example, [CLS] and [SEP] included; capped at the
            tokenizer's ``model_max_length``.

    Returns:
        The token ids and labels, with the ids of padding and [SEP].
    """
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 1_000_000:
        max_length = min(max_length, model_max)

    def encode(texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=False)
        return [list(ids) for ids in encoded["input_ids"]]

    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    return TokenizedData(
        train_ids=encode(data.train_texts),
        train_labels=list(data.train_labels),
        eval_ids=encode(data.eval_texts),
        eval_labels=list(data.eval_labels),
        num_labels=max(2, len(data.label_names)),
        pad_id=int(pad_id),
        sep_id=tokenizer.sep_token_id,
        max_length=max_length,
    )


def truncate(ids: list[int], max_length: int, sep_id: int | None) -> list[int]:
    """Shorten token ids to ``max_length``, keeping a final [SEP] when the ids end with one.

    Args:
        ids: Token ids of one example.
        max_length: The most ids to keep.
        sep_id: Id of the separator token, or None if the tokenizer has none.

    Returns:
        ``ids`` itself when short enough, else a shortened copy.
    """
    if len(ids) <= max_length:
        return ids
    if sep_id is not None and ids[-1] == sep_id and max_length >= 2:
        return [*ids[: max_length - 1], sep_id]
    return ids[:max_length]


def collate(
    batch_ids: list[list[int]],
    labels: Sequence[Any],
    pad_id: int,
    types: list[list[int]] | None = None,
) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest example.

    Args:
        batch_ids: Token ids of each example.
        labels: Class index, float (regression) or list of token labels of each example.
        pad_id: Id of the padding token.
        types: Token type ids of each example (sentence pairs), or None.

    Returns:
        ``input_ids`` and ``attention_mask`` of shape (batch, longest), ``token_type_ids`` for
        pairs, and ``labels`` (token labels padded with -100).
    """
    import torch  # here, so that the study driver tokenises without importing torch

    longest = max((len(ids) for ids in batch_ids), default=0)
    n = len(batch_ids)

    def padded(rows: Sequence[list[int]], value: int) -> torch.Tensor:
        filled = [list(row) + [value] * (longest - len(row)) for row in rows]
        return torch.tensor(filled, dtype=torch.long).reshape(n, longest)

    tensors = {
        "input_ids": padded(batch_ids, pad_id),
        "attention_mask": padded([[1] * len(ids) for ids in batch_ids], 0),
    }
    if types is not None:
        tensors["token_type_ids"] = padded(types, 0)
    if labels and isinstance(labels[0], list):
        tensors["labels"] = padded(labels, -100)
    elif labels and isinstance(labels[0], float):
        tensors["labels"] = torch.tensor(labels, dtype=torch.float32)
    else:
        tensors["labels"] = torch.tensor(list(labels), dtype=torch.long)
    return tensors

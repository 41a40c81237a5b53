"""``token_classification``: word-level tags, each word's label on its first sub-token.

Evaluation is on words: the tag predicted for a word's first sub-token, against its gold tag;
words cut off by ``max_seq_length`` are left out of both. Entity scores by seqeval.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from search_spaces.tasks import BUILTIN_TASKS
from workers.data import TextData, TokenizedData
from workers.tasks.base import IGNORED, Task, capped_length, pad_id
from workers.tasks.metrics import entity_metrics
from workers.tasks.reading import tagged_sentences, train_and_eval

if TYPE_CHECKING:
    import torch

    from search_spaces.spec import Dataset


class TokenClassificationTask(Task):
    """Cross-entropy over tags at each word's first sub-token."""

    info = BUILTIN_TASKS["token_classification"]
    auto_class = "AutoModelForTokenClassification"

    def __init__(self) -> None:
        self.scheme = "iob2"

    def load(
        self, dataset: Dataset, max_train: int | None, max_eval: int | None, seed: int
    ) -> TextData:
        self.scheme = dataset.tag_scheme
        train, held = train_and_eval(
            lambda path: tagged_sentences(path, dataset), dataset, max_train, max_eval, seed
        )
        names = sorted({tag for rows in (train, held) for _, _, tags in rows for tag in tags})
        index = {name: i for i, name in enumerate(names)}
        return TextData(
            [words for _, words, _ in train], [[index[t] for t in tags] for _, _, tags in train],
            [words for _, words, _ in held], [[index[t] for t in tags] for _, _, tags in held],
            names,
        )  # fmt: skip

    def tokenize(self, data: TextData, tokenizer: Any, max_length: int) -> TokenizedData:
        max_length = capped_length(tokenizer, max_length)

        def encode(sentences: list[list[str]], tags: list[list[int]]) -> tuple[list[Any], ...]:
            if not sentences:
                return [], []
            encoded = tokenizer(
                sentences, is_split_into_words=True, truncation=True, max_length=max_length
            )
            ids, labels = [], []
            for row, word_tags in enumerate(tags):
                previous = None
                aligned = []
                for word in encoded.word_ids(row):
                    first = word is not None and word != previous
                    aligned.append(word_tags[word] if first else IGNORED)
                    previous = word
                ids.append(list(encoded["input_ids"][row]))
                labels.append(aligned)
            return ids, labels

        train_ids, train_labels = encode(data.train_texts, data.train_labels)
        eval_ids, eval_labels = encode(data.eval_texts, data.eval_labels)
        return TokenizedData(
            train_ids=train_ids, train_labels=train_labels, eval_ids=eval_ids,
            eval_labels=eval_labels, num_labels=max(1, len(data.label_names)),
            pad_id=pad_id(tokenizer), sep_id=tokenizer.sep_token_id, max_length=max_length,
            label_names=list(data.label_names), task=self.info.name, tag_scheme=self.scheme,
        )  # fmt: skip

    def fit_length(self, data: TokenizedData, max_length: int) -> TokenizedData:
        if max_length >= data.max_length:
            return data
        cut = super().fit_length(data, max_length)

        def labels(rows: list[list[int]]) -> list[list[int]]:
            return [r if len(r) <= max_length else [*r[: max_length - 1], IGNORED] for r in rows]

        return replace(
            cut, train_labels=labels(data.train_labels), eval_labels=labels(data.eval_labels)
        )

    def model_config(self, data: TokenizedData) -> dict[str, Any]:
        names = list(data.label_names)
        return {
            "num_labels": len(names),
            "id2label": dict(enumerate(names)),
            "label2id": {name: i for i, name in enumerate(names)},
        }

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> Any:
        import torch.nn.functional as F

        flat = logits.float().reshape(-1, logits.shape[-1])
        return F.cross_entropy(flat, labels.reshape(-1), ignore_index=IGNORED, reduction=reduction)

    def counted(self, labels: torch.Tensor) -> Any:
        return (labels != IGNORED).sum()

    def prediction_width(self, data: TokenizedData) -> int:
        return max((len(ids) for ids in data.eval_ids), default=1)

    def predict(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # Tag index + 1 at labelled positions, 0 elsewhere (a gathered row's zeros are not words).
        predicted = logits.argmax(dim=-1) + 1
        return (predicted * (labels != IGNORED)).double()

    def words(self, predictions: list[list[float]], data: TokenizedData) -> tuple[list[Any], ...]:
        """Gold and predicted tag names of every eval sentence's words."""
        names = data.label_names
        gold, predicted = [], []
        for row, labels in zip(predictions, data.eval_labels, strict=True):
            positions = [i for i, label in enumerate(labels) if label != IGNORED]
            gold.append([names[labels[i]] for i in positions])
            predicted.append([names[int(row[i]) - 1] if row[i] >= 1 else "O" for i in positions])
        return gold, predicted

    def metrics(self, predictions: list[list[float]], data: TokenizedData) -> dict[str, float]:
        gold, predicted = self.words(predictions, data)
        return entity_metrics(gold, predicted, data.tag_scheme)

    def head(self, predictions: list[list[float]], data: TokenizedData) -> str:
        _, predicted = self.words(predictions[:2], replace(data, eval_labels=data.eval_labels[:2]))
        return " | ".join(" ".join(tags) for tags in predicted)

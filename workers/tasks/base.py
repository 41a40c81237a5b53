"""The Task interface: how a task reads and tokenises its data, which ``AutoModelFor...`` head it
builds, its loss and its eval metrics. The training loop knows nothing of any particular task.

A task plugin subclasses :class:`Task` (or :class:`SequenceTask`) and is named by a
``search_spaces.tasks.TaskInfo`` in the entry-point group ``hpo.tasks``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from search_spaces.spec import Dataset
from search_spaces.tasks import TaskInfo
from workers.data import TextData, TokenizedData, truncate
from workers.tasks.reading import table_rows, train_and_eval

if TYPE_CHECKING:
    import torch

IGNORED = -100  # the label of positions without one (sub-tokens, specials, padding)
PREDICTIONS_HEAD = 8  # eval examples whose predictions a trial records (eval_predictions_head)


class Task(ABC):
    """One kind of fine-tuning task."""

    info: ClassVar[TaskInfo]
    auto_class: ClassVar[str] = "AutoModelForSequenceClassification"

    @abstractmethod
    def load(
        self, dataset: Dataset, max_train: int | None, max_eval: int | None, seed: int
    ) -> TextData:
        """Both splits as texts (or word lists) and labels; bad rows raise ValueError with the
        file, line and reason."""

    @abstractmethod
    def tokenize(self, data: TextData, tokenizer: Any, max_length: int) -> TokenizedData:
        """Token ids (unpadded, specials included) and labels of both splits."""

    @abstractmethod
    def model_config(self, data: TokenizedData) -> dict[str, Any]:
        """Config entries of the model head: ``num_labels``, ``problem_type``, label names."""

    @abstractmethod
    def loss(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> Any:
        """The training loss (``reduction`` "sum": summed over the counted examples/tokens)."""

    @abstractmethod
    def counted(self, labels: torch.Tensor) -> Any:
        """How many examples (or tokens) of a batch the summed loss is over."""

    @abstractmethod
    def predict(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Predictions of a batch as a float tensor (batch, ``prediction_width``)."""

    def prediction_width(self, data: TokenizedData) -> int:
        """Prediction values per eval example."""
        return 1

    @abstractmethod
    def metrics(self, predictions: list[list[float]], data: TokenizedData) -> dict[str, float]:
        """The task's eval metrics (all but eval_loss) from every eval example's predictions."""

    def head(self, predictions: list[list[float]], data: TokenizedData) -> str:
        """The first eval predictions as a short string (``eval_predictions_head``)."""
        return ",".join(f"{row[0]:g}" for row in predictions[:PREDICTIONS_HEAD])

    def fit_length(self, data: TokenizedData, max_length: int) -> TokenizedData:
        """The data cut to a trial's ``max_seq_length`` (tokenised at the study's longest)."""
        if max_length >= data.max_length:
            return data

        def cut(rows: list[list[int]]) -> list[list[int]]:
            return [truncate(ids, max_length, data.sep_id) for ids in rows]

        def cut_types(rows: list[list[int]] | None) -> list[list[int]] | None:
            # A pair's token types, cut like its ids (the last one, of the final [SEP], kept).
            if rows is None:
                return None
            return [r if len(r) <= max_length else [*r[: max_length - 1], r[-1]] for r in rows]

        return replace(
            data, train_ids=cut(data.train_ids), eval_ids=cut(data.eval_ids),
            train_types=cut_types(data.train_types), eval_types=cut_types(data.eval_types),
            max_length=max_length,
        )  # fmt: skip


class SequenceTask(Task):
    """A task on one text or a text pair with one label per example."""

    @abstractmethod
    def label(self, raw: Any, path: str, line: int) -> Any:
        """One label as read (ValueError naming the file and line when it is not one)."""

    def load(
        self, dataset: Dataset, max_train: int | None, max_eval: int | None, seed: int
    ) -> TextData:
        columns = [dataset.text_column, dataset.label_column]
        if dataset.text_pair_column:
            columns.insert(1, dataset.text_pair_column)

        def read(path: str) -> list[tuple[str, str | None, Any]]:
            rows = table_rows(path, dataset, columns)
            pair = dataset.text_pair_column
            return [
                (str(r[dataset.text_column]).strip(), str(r[pair]).strip() if pair else None,
                 self.label(r[dataset.label_column], path, r["line"]))
                for r in rows
            ]  # fmt: skip

        train, held = train_and_eval(read, dataset, max_train, max_eval, seed)
        return self.encoded(train, held, paired=dataset.text_pair_column is not None)

    def encoded(self, train: list[Any], held: list[Any], paired: bool) -> TextData:
        """The rows as TextData (subclasses map raw labels here)."""
        return TextData(
            [r[0] for r in train], [r[2] for r in train], [r[0] for r in held],
            [r[2] for r in held], [], [r[1] for r in train] if paired else None,
            [r[1] for r in held] if paired else None,
        )  # fmt: skip

    def tokenize(self, data: TextData, tokenizer: Any, max_length: int) -> TokenizedData:
        max_length = capped_length(tokenizer, max_length)

        def encode(texts: list[str], pairs: list[str] | None) -> tuple[list[list[int]], Any]:
            if not texts:
                return [], [] if pairs is not None else None
            encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length)
            ids = [list(row) for row in encoded["input_ids"]]
            if pairs is None or "token_type_ids" not in encoded:
                return ids, None
            return ids, [list(row) for row in encoded["token_type_ids"]]

        train_ids, train_types = encode(data.train_texts, data.train_pairs)
        eval_ids, eval_types = encode(data.eval_texts, data.eval_pairs)
        return TokenizedData(
            train_ids=train_ids, train_labels=list(data.train_labels), eval_ids=eval_ids,
            eval_labels=list(data.eval_labels), num_labels=max(2, len(data.label_names)),
            pad_id=pad_id(tokenizer), sep_id=tokenizer.sep_token_id, max_length=max_length,
            train_types=train_types, eval_types=eval_types, label_names=list(data.label_names),
            task=self.info.name,
        )  # fmt: skip

    def counted(self, labels: torch.Tensor) -> Any:
        return labels.shape[0]


def capped_length(tokenizer: Any, max_length: int) -> int:
    """``max_length`` capped at the tokenizer's ``model_max_length``."""
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 1_000_000:
        return min(max_length, model_max)
    return max_length


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's padding id (its end-of-sequence id, or 0, when it has none)."""
    value = tokenizer.pad_token_id
    if value is None:
        value = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    return int(value)

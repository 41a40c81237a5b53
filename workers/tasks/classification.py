"""``classification``: one text or a text pair with a class label (binary or multi-class)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search_spaces.tasks import BUILTIN_TASKS
from workers.data import SYNTHETIC, TextData, TokenizedData, encode_labels, load_text_data
from workers.tasks.base import PREDICTIONS_HEAD, SequenceTask
from workers.tasks.metrics import classification_metrics

if TYPE_CHECKING:
    import torch

    from search_spaces.spec import Dataset


class ClassificationTask(SequenceTask):
    """Cross-entropy over ``num_labels`` classes; accuracy, F1 and MCC by scikit-learn."""

    info = BUILTIN_TASKS["classification"]

    def load(
        self, dataset: Dataset, max_train: int | None, max_eval: int | None, seed: int
    ) -> TextData:
        if dataset.name == SYNTHETIC:
            return load_text_data(dataset, max_train, max_eval, seed)
        return super().load(dataset, max_train, max_eval, seed)

    def label(self, raw: Any, path: str, line: int) -> Any:
        return raw

    def encoded(self, train: list[Any], held: list[Any], paired: bool) -> TextData:
        raw = super().encoded(train, held, paired)
        labels, names = encode_labels([*raw.train_labels, *raw.eval_labels])
        split = len(raw.train_labels)
        return TextData(
            raw.train_texts, labels[:split], raw.eval_texts, labels[split:], names,
            raw.train_pairs, raw.eval_pairs,
        )  # fmt: skip

    def model_config(self, data: TokenizedData) -> dict[str, Any]:
        names = data.label_names or [str(i) for i in range(data.num_labels)]
        names += [str(i) for i in range(len(names), data.num_labels)]
        return {
            "num_labels": data.num_labels,
            "problem_type": "single_label_classification",
            "id2label": dict(enumerate(names)),
            "label2id": {name: i for i, name in enumerate(names)},
        }

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), labels, reduction=reduction)

    def predict(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=-1, keepdim=True).double()

    def metrics(self, predictions: list[list[float]], data: TokenizedData) -> dict[str, float]:
        predicted = [int(row[0]) for row in predictions]
        return classification_metrics(list(data.eval_labels), predicted)

    def head(self, predictions: list[list[float]], data: TokenizedData) -> str:
        return ",".join(str(int(row[0])) for row in predictions[:PREDICTIONS_HEAD])

"""``regression``: one text or a text pair with a real-valued label (STS-B), one output, MSE."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from search_spaces.tasks import BUILTIN_TASKS
from workers.data import TokenizedData
from workers.tasks.base import PREDICTIONS_HEAD, SequenceTask
from workers.tasks.metrics import regression_metrics

if TYPE_CHECKING:
    import torch


class RegressionTask(SequenceTask):
    """A single output trained by mean squared error; Pearson and Spearman by SciPy."""

    info = BUILTIN_TASKS["regression"]

    def label(self, raw: Any, path: str, line: int) -> Any:
        try:
            value = float(str(raw).strip())
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(f"{path}, line {line}: label {raw!r} is not a finite number")
        return value

    def model_config(self, data: TokenizedData) -> dict[str, Any]:
        return {"num_labels": 1, "problem_type": "regression"}

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> Any:
        import torch.nn.functional as F

        return F.mse_loss(logits.float().squeeze(-1), labels.float(), reduction=reduction)

    def predict(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return logits.float().reshape(-1, 1).double()

    def metrics(self, predictions: list[list[float]], data: TokenizedData) -> dict[str, float]:
        predicted = [row[0] for row in predictions]
        return regression_metrics([float(y) for y in data.eval_labels], predicted)

    def head(self, predictions: list[list[float]], data: TokenizedData) -> str:
        return ",".join(f"{row[0]:.3g}" for row in predictions[:PREDICTIONS_HEAD])

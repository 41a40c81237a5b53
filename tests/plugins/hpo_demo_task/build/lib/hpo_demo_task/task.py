"""The worker side of the plugin: the built-in classification with its own metric."""

from __future__ import annotations

from sklearn.metrics import balanced_accuracy_score

from hpo_demo_task import INFO
from workers.data import TokenizedData
from workers.tasks.classification import ClassificationTask


class BalancedClassificationTask(ClassificationTask):
    info = INFO

    def metrics(self, predictions: list[list[float]], data: TokenizedData) -> dict[str, float]:
        predicted = [int(row[0]) for row in predictions]
        score = balanced_accuracy_score(data.eval_labels, predicted)
        return {"eval_balanced_accuracy": float(score)}

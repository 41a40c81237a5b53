"""Eval metrics by the well-kept libraries: scikit-learn (accuracy, F1, MCC), SciPy (Pearson,
Spearman) and seqeval (entity-level precision, recall and F1 by the conlleval rules)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence


def classification_metrics(labels: Sequence[int], predicted: Sequence[int]) -> dict[str, float]:
    """Accuracy, F1 (binary: of class 1; multi-class: macro) and Matthews correlation."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    average = "binary" if set(labels) | set(predicted) <= {0, 1} else "macro"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined F1/MCC (one class only) count as 0
        return {
            "eval_accuracy": float(accuracy_score(labels, predicted)),
            "eval_f1": float(f1_score(labels, predicted, average=average, zero_division=0)),
            "eval_mcc": float(matthews_corrcoef(labels, predicted)),
        }


def regression_metrics(labels: Sequence[float], predicted: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman correlation (0 when either side is constant) and mean squared error."""
    from scipy.stats import pearsonr, spearmanr

    mse = sum((p - y) ** 2 for p, y in zip(predicted, labels, strict=True)) / max(len(labels), 1)
    constant = len(set(labels)) < 2 or len(set(predicted)) < 2
    pearson = 0.0 if constant else float(pearsonr(predicted, labels).statistic)
    spearman = 0.0 if constant else float(spearmanr(predicted, labels).statistic)
    return {
        "eval_pearson": pearson if math.isfinite(pearson) else 0.0,
        "eval_spearman": spearman if math.isfinite(spearman) else 0.0,
        "eval_mse": mse if math.isfinite(mse) else math.inf,
    }


def entity_metrics(
    gold: list[list[str]], predicted: list[list[str]], scheme: str
) -> dict[str, float]:
    """Entity-level precision, recall and F1 (seqeval; IOB1/IOB2 by the conlleval rules, BIOES
    strictly) and the accuracy of word tags."""
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score
    from seqeval.scheme import IOBES

    options: dict[str, object] = {"zero_division": 0}
    if scheme == "bioes":
        options.update(mode="strict", scheme=IOBES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tags outside the scheme are counted as seqeval does
        return {
            "eval_precision": float(precision_score(gold, predicted, **options)),
            "eval_recall": float(recall_score(gold, predicted, **options)),
            "eval_f1": float(f1_score(gold, predicted, **options)),
            "eval_accuracy": float(accuracy_score(gold, predicted)),
        }

"""A task plugin: classification scored by balanced accuracy (the service side; no torch)."""

from search_spaces.tasks import TaskInfo

INFO = TaskInfo(
    name="balanced_classification",
    description="classification scored by balanced accuracy (a test plugin)",
    metrics={"eval_balanced_accuracy": "maximize", "eval_loss": "minimize"},
    primary_metric="eval_balanced_accuracy",
    label_kind="class",
    implementation="hpo_demo_task.task:BalancedClassificationTask",
    dataset_fields=("text_column", "text_pair_column", "label_column"),
)

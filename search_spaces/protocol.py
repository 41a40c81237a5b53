"""Names the service and the study driver agree on (neither imports the other)."""

STUDIES_TABLE = "hpo_studies"
DATABASE_URL_ENV = "HPO_DATABASE_URL"
RESULTS_DIR_ENV = "HPO_RESULTS_DIR"
# The driver's last line; the service shows the text after it as the study's status reason.
OUTCOME_PREFIX = "hpo-outcome: "
EVENTS_TABLE = "hpo_study_events"
ATTEMPT_ENV = "HPO_STUDY_ATTEMPT"
# Saved models: <results dir>/artifacts/<study id>/best/ holds the best trial's model (and
# hpo_trial.json), written by the study driver and served by the service.
ARTIFACTS_DIR = "artifacts"
BEST_DIR = "best"
TRIAL_INFO_FILE = "hpo_trial.json"
# Seconds the study driver waits for its first trial to be placed before it fails the study.
PLACEMENT_TIMEOUT_ENV = "HPO_PLACEMENT_TIMEOUT_S"


def optuna_study_name(name: str, study_id: str) -> str:
    """The Optuna study of a study: the user's name and the id (``sms-spam-minilm-7ed7…``), so
    optuna-dashboard and plain Optuna show what the user called it; the id keeps it unique.
    Studies created before this rule keep their stored name (``hpo-<id>``)."""
    return f"{name.strip()}-{study_id}"


def ray_job_id(study_id: str, attempt: int) -> str:
    """The Ray job submission id of a study's attempt."""
    return f"hpo-{study_id}-{attempt}"


# The Optuna study's user attribute holding the link to the study in the service's API (set by
# the service at submit; the study driver puts it on the study's MLflow run).
STUDY_URL_ATTR = "service_url"

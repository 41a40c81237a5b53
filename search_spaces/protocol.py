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

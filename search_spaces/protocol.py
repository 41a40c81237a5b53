"""Names the service and the study driver agree on (neither imports the other)."""

STUDIES_TABLE = "hpo_studies"
DATABASE_URL_ENV = "HPO_DATABASE_URL"
RESULTS_DIR_ENV = "HPO_RESULTS_DIR"
# The driver's last line; the service shows the text after it as the study's status reason.
OUTCOME_PREFIX = "hpo-outcome: "
EVENTS_TABLE = "hpo_study_events"
ATTEMPT_ENV = "HPO_STUDY_ATTEMPT"

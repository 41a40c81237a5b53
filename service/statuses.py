"""A study's lifecycle statuses that end it or mean it runs (no imports: the CLI client uses it)."""

FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")
ACTIVE_STATES = ("RUNNING", "RESUMING")

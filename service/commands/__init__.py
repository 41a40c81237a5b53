"""The ``hpo`` CLI's commands, one module per kind (reads, actions, progress, plots)."""

"""Logging of ``hpo serve``: one JSON object per line (or plain text), every line carrying the
request id that asgi-correlation-id's middleware sets (X-Request-ID) while a request runs."""

from __future__ import annotations

import logging
import logging.config
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS

LogFormat = Literal["json", "text"]

# uvicorn's coloured copy of the message: noise in JSON.
_DROPPED = ("color_message",)


class AccessFields(logging.Filter):
    """Adds client, method, path and status to uvicorn's access-log records, as fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            record.client, record.method, record.path, _http, record.status = args
        return True


def logging_config(log_format: LogFormat = "json", level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the root logger and uvicorn's loggers, all through
    one handler on stderr."""
    formatters: dict[str, Any] = {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": ["levelname", "name", "message", "correlation_id"],
            "timestamp": "time",
            "rename_fields": {
                "levelname": "level",
                "name": "logger",
                "correlation_id": "request_id",
            },
            "reserved_attrs": [*RESERVED_ATTRS, *_DROPPED],
        },
        "text": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s",
        },
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "asgi_correlation_id.CorrelationIdFilter"},
            "access": {"()": AccessFields},
        },
        "formatters": {log_format: formatters[log_format]},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": log_format,
                "filters": ["request_id", "access"],
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            name: {"handlers": [], "propagate": True, "level": level}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure_logging(log_format: LogFormat = "json", level: str = "INFO") -> None:
    """Apply :func:`logging_config`; Python warnings and Optuna's messages (which Optuna
    otherwise prints through a handler of its own) go through the same handler."""
    import optuna

    logging.config.dictConfig(logging_config(log_format, level))
    logging.captureWarnings(True)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()

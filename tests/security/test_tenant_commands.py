"""``hpo tenants`` and ``hpo keys`` on a database file (offline commands)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from service.auth.quotas import Quota, QuotaStore
from service.cli import app
from service.db import make_engine

runner = CliRunner()


def test_tenant_quotas_are_set_listed_and_read_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    done = runner.invoke(
        app, ["tenants", "set", "acme", "--max-trials-per-study", "20", "--database-url", url]
    )
    assert done.exit_code == 0, done.output
    again = ["tenants", "set", "acme", "--max-running-studies", "2", "--database-url", url]
    assert runner.invoke(app, again).exit_code == 0  # replaces the row
    listed = json.loads(
        runner.invoke(app, ["tenants", "list", "--json", "--database-url", url]).stdout
    )
    assert listed == {
        "acme": {"max_running_studies": 2, "max_trials_per_study": None, "max_gpus_per_trial": None}
    }
    store = QuotaStore(make_engine(url), defaults=Quota(5, 100, 1.0))
    assert store.of("acme") == Quota(2, 100, 1.0)  # own limit, else the service default
    assert store.of("other") == Quota(5, 100, 1.0)


def test_bad_names_and_unknown_keys_are_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    for args in (
        ["tenants", "set", "Bad Name", "--max-running-studies", "1"],
        ["keys", "create", "--tenant", "../x"],
        ["keys", "revoke", "abcdef123456"],
    ):
        result = runner.invoke(app, [*args, "--database-url", url])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), args


def test_a_new_key_is_printed_once_and_listed_without_its_secret(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    made = runner.invoke(
        app, ["keys", "create", "--tenant", "acme", "--admin", "--database-url", url]
    )
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("hpo_") and len(key) == 4 + 12 + 1 + 43
    listed = runner.invoke(app, ["keys", "list", "--database-url", url]).stdout
    assert key.split("_")[1] in listed and key.split("_", 2)[2] not in listed
    assert "acme" in listed and "yes" in listed

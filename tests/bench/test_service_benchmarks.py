"""The service benchmarks in quick mode against the shared real server, so they cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Server

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run(script: str, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--quick", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


def test_query_scale_quick(server: Server, tmp_path: Path) -> None:
    _run("query_scale.py", "--url", server.url, "--database-url", server.database_url,
         "--out", str(tmp_path))  # fmt: skip
    report = json.loads((tmp_path / "query_scale_quick.json").read_text())
    (case,) = report["cases"]
    assert case["trials"] == 500
    queries = {"best", "trials_first_page", "trials_deep_page", "pareto", "summary"}
    assert set(case["http"]) == queries
    for source in (case["in_process"]["ours"], case["in_process"]["optuna"]):
        assert set(source) == {*queries, "pareto_cold"}
        assert all(row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"] for row in source.values())


def test_api_load_quick(server: Server, tmp_path: Path) -> None:
    _run("api_load.py", "--url", server.url, "--database-url", server.database_url,
         "--out", str(tmp_path))  # fmt: skip
    rows = json.loads((tmp_path / "api_load_quick.json").read_text())["rows"]
    assert {(r["endpoint"], r["clients"]) for r in rows} == {
        (e, c) for e in ("best", "trials") for c in (1, 8)
    }
    assert all(r["errors"] == 0 and r["requests"] > 0 and r["requests_per_s"] > 0 for r in rows)


def test_search_compare_quick(server: Server, tmp_path: Path) -> None:
    _run("search_compare.py", "--url", server.url, "--seeds", "0", "--budget", "4",
         "--epochs", "2", "--out", str(tmp_path))  # fmt: skip
    report = json.loads((tmp_path / "search_compare_quick.json").read_text())
    methods = report["summary"]["methods"]
    assert set(methods) == {"grid", "random", "tpe", "tpe+asha", "tpe+asha-loss"}
    assert all(row["best_at_budget"] is not None for row in methods.values())
    reach = report["summary"]["fraction_of_budget_to_reach_random_best"]
    assert set(reach) == {"tpe+asha", "tpe+asha-loss"}
    assert all(r["seeds"] == [0] and len(r["strict"]) == 1 for r in reach.values())
    curves = report["runs"]["tpe+asha"][0]["curve"]
    spent = [p["trial_epochs"] for p in curves]
    assert spent == sorted(spent) and all(p["best"] > 0 for p in curves)
    assert (tmp_path / "search_compare_quick.png").stat().st_size > 0

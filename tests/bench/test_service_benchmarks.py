"""The service benchmarks in quick mode against the shared real server, so they cannot rot."""

from __future__ import annotations

import gzip
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


def test_record_curves_quick(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "table.json.gz"
    _run("record_curves.py", "--url", server.url, "--learning-rates", "1e-05", "0.003",
         "--partial", str(tmp_path / "partial.json"), "--out", str(out))  # fmt: skip
    with gzip.open(out, "rt") as handle:
        table = json.load(handle)
    assert table["grid"]["learning_rate"] == [1e-05, 0.003]
    assert len(table["points"]) == 16 and table["epochs"] == 4
    points = {tuple(p["params"].values()) for p in table["points"]}
    assert len(points) == 16  # every grid point once
    for point in table["points"]:
        accuracies = [e["eval_accuracy"] for e in point["epochs"]]
        assert len(accuracies) == 4 and all(0.5 <= a <= 1 for a in accuracies)
        assert all(e["seconds"] >= 0 and "eval_loss" in e for e in point["epochs"])


def test_search_replay_quick(server: Server, tmp_path: Path) -> None:
    _run("search_replay.py", "--url", server.url, "--out", str(tmp_path))
    report = json.loads((tmp_path / "search_replay_quick.json").read_text())
    methods = report["summary"]["methods"]
    assert set(methods) == {"random", "tpe+asha-loss"}
    assert all(row["n_seeds"] == 2 for row in methods.values())
    optimum = report["table"]["grid_optimum"]
    for row in methods.values():
        cells = [row[f"best_at_{k}"] for k in ("third", "two_thirds", "budget")]
        means = [c["mean"] for c in cells]
        assert means == sorted(means) and means[-1] <= optimum  # best-so-far never falls
        assert all(c["low"] <= c["mean"] <= c["high"] for c in cells)
        assert "unreached_share" in row["fraction_to_reach_random_best"]
    for run in report["runs"]["tpe+asha-loss"]:
        spent = [p["trial_epochs"] for p in run["curve"]]
        assert spent == sorted(spent) and len(spent) == 12  # every trial, in order of completion
    assert (tmp_path / "search_replay_quick.png").stat().st_size > 0


def test_pbt_compare_quick(server: Server, tmp_path: Path) -> None:
    _run("pbt_compare.py", "--url", server.url, "--out", str(tmp_path), "--seeds", "0",
         "--methods", "random", "pbt", "--budget", "4", "--epochs", "2")  # fmt: skip
    report = json.loads((tmp_path / "pbt_compare_quick.json").read_text())
    methods = report["summary"]["methods"]
    assert set(methods) == {"random", "pbt"}
    assert methods["random"]["trial_epochs"] == [4]  # two trials of two epochs
    assert methods["pbt"]["trial_epochs"][0] >= 4  # a population of two, pauses included
    for row in methods.values():
        assert 0.0 <= row["best_at_budget"] <= 1.0
    assert report["summary"]["target_met"] is None  # TPE+ASHA did not run
    assert (tmp_path / "pbt_compare_quick.png").stat().st_size > 0

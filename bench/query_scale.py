"""Query latency on large studies: the service's SQL vs the plain-Optuna way, side by side.

Inserts studies of N trials straight into Optuna's tables (SQLite and PostgreSQL), then times
``/best``, ``/trials?limit=50`` (first page and a deep page by cursor), ``/pareto`` and the study
summary in-process (the store's queries) and over HTTP (a real ``hpo serve``), against
``load_study().best_trial``, ``get_trials()``, ``trials_dataframe()`` and ``best_trials``.

    python bench/query_scale.py                       # 10k and 100k, SQLite and PostgreSQL
    python bench/query_scale.py --quick --url URL --database-url DB   # what the tests run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import optuna
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    distribution_to_json,
)
from optuna.storages._rdb.models import TrialIntermediateValueModel, TrialValueModel
from optuna.trial import TrialState
from sqlalchemy import Engine, func, insert, select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.db import make_engine, metadata, studies_table  # noqa: E402
from service.local_server import fresh_postgres_database, start_server, stop_server  # noqa: E402
from service.store import TrialQueries  # noqa: E402
from service.store.indexes import ensure_indexes  # noqa: E402
from service.store.optuna_tables import (  # noqa: E402
    studies as optuna_studies,
)
from service.store.optuna_tables import (  # noqa: E402
    trial_intermediate_values,
    trial_params,
    trial_values,
    trials,
)
from service.store.trial_filters import Cursor  # noqa: E402

RESULTS = REPO / "bench" / "results"
LR = FloatDistribution(1e-5, 1e-2, log=True)
OPTIMIZER = CategoricalDistribution(["adamw", "sgd"])


def make_study(engine: Engine, url: str, n: int, objectives: int, seed: int) -> tuple[str, str]:
    """A finished study of ``n`` trials (90% COMPLETE, the rest PRUNED/FAIL), inserted directly.

    Returns (service study id, Optuna study name).
    """
    service_id = uuid.uuid4().hex
    name = f"hpo-{service_id}"
    directions = ["maximize", "minimize"][:objectives]
    optuna.create_study(storage=url, study_name=name, directions=directions)
    with engine.begin() as conn:
        study_id = conn.execute(
            select(optuna_studies.c.study_id).where(optuna_studies.c.study_name == name)
        ).scalar_one()
        first = conn.execute(select(func.coalesce(func.max(trials.c.trial_id), 0))).scalar_one()
        now = datetime.now(UTC).replace(tzinfo=None)
        conn.execute(
            insert(studies_table).values(
                id=service_id,
                name=f"bench-{n}-{objectives}",
                optuna_study_name=name,
                spec={"name": "bench"},
                status="SUCCEEDED",
                attempts=1,
                created_at=now,
            )
        )
        rng = random.Random(seed)
        lr_json, opt_json = distribution_to_json(LR), distribution_to_json(OPTIMIZER)
        finite = TrialValueModel.TrialValueType.FINITE
        step_finite = TrialIntermediateValueModel.TrialIntermediateValueType.FINITE
        for start in range(0, n, 5000):
            rows, values, params, steps = [], [], [], []
            for number in range(start, min(n, start + 5000)):
                trial_id = first + number + 1
                roll = rng.random()
                state = (
                    TrialState.COMPLETE
                    if roll < 0.9
                    else (TrialState.PRUNED if roll < 0.97 else TrialState.FAIL)
                )
                began = now - timedelta(seconds=n - number)
                rows.append(
                    {
                        "trial_id": trial_id,
                        "number": number,
                        "study_id": study_id,
                        "state": state,
                        "datetime_start": began,
                        "datetime_complete": began + timedelta(seconds=rng.uniform(1, 60)),
                    }
                )
                lr = math.exp(rng.uniform(math.log(1e-5), math.log(1e-2)))
                params += [
                    _param(trial_id, "learning_rate", lr, lr_json),
                    _param(trial_id, "optimizer", float(rng.randint(0, 1)), opt_json),
                ]
                accuracy = rng.uniform(0.5, 0.95)
                steps += [
                    {
                        "trial_id": trial_id,
                        "step": s,
                        "intermediate_value": accuracy * s / 2,
                        "intermediate_value_type": step_finite,
                    }
                    for s in (1, 2)
                ]
                if state == TrialState.COMPLETE:
                    objective_values = [accuracy, rng.uniform(1.0, 100.0)][:objectives]
                    values += [
                        {"trial_id": trial_id, "objective": k, "value": v, "value_type": finite}
                        for k, v in enumerate(objective_values)
                    ]
            conn.execute(insert(trials), rows)
            conn.execute(insert(trial_values), values)
            conn.execute(insert(trial_params), params)
            conn.execute(insert(trial_intermediate_values), steps)
    return service_id, name


def _param(trial_id: int, name: str, value: float, distribution: str) -> dict[str, Any]:
    return {
        "trial_id": trial_id,
        "param_name": name,
        "param_value": value,
        "distribution_json": distribution,
    }


def timed(call: Callable[[], Any], repeats: int, warm_up: bool = True) -> dict[str, float]:
    """p50/p99 in milliseconds of ``repeats`` calls (after one warm-up call)."""
    if warm_up:
        call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p99 = samples[min(len(samples) - 1, math.ceil(0.99 * len(samples)) - 1)]
    return {"p50_ms": statistics.median(samples), "p99_ms": p99, "n": len(samples)}


def deep_cursor(queries: TrialQueries, study_id: int, n: int) -> Any:
    """The cursor of the page that starts 90% of the way through the study."""
    before = queries.page(study_id, sort="number", limit=1, offset=int(n * 0.9) - 1)
    last = before.trials[0].number
    return Cursor(sort="number", descending=False, key=float(last), number=last)


def measure_store(
    url: str, engine: Engine, single: str, multi: str, n: int, repeats: int
) -> dict[str, Any]:
    """The store's queries (in-process) against the plain-Optuna equivalents."""
    queries = TrialQueries(engine)
    sid, mid = queries.study_id(single), queries.study_id(multi)
    assert sid is not None and mid is not None
    cursor = deep_cursor(queries, sid, n)
    ours = {
        "best": timed(lambda: queries.best(sid), repeats),
        "trials_first_page": timed(lambda: queries.page(sid, limit=50), repeats),
        "trials_deep_page": timed(lambda: queries.page(sid, limit=50, cursor=cursor), repeats),
        "pareto": timed(lambda: queries.pareto(mid), repeats),
        # A fresh store each time: the first /pareto of a process reads every completed trial.
        "pareto_cold": timed(lambda: TrialQueries(engine).pareto(mid), 3, warm_up=False),
        "summary": timed(lambda: queries.summaries([single]), repeats),
    }
    storage = optuna.storages.RDBStorage(url)
    slow = 1 if n >= 50_000 else 3  # each plain-Optuna call loads the whole study
    deep = int(n * 0.9)

    def load(name: str) -> optuna.Study:
        return optuna.load_study(study_name=name, storage=storage)

    optuna_way = {
        "best": timed(lambda: load(single).best_trial, slow, warm_up=False),
        "trials_first_page": timed(lambda: load(single).get_trials()[:50], slow, warm_up=False),
        "trials_deep_page": timed(
            lambda: load(single).get_trials()[deep : deep + 50], slow, warm_up=False
        ),
        "pareto": timed(lambda: load(multi).best_trials, slow, warm_up=False),
        "summary": timed(lambda: load(single).trials_dataframe(), slow, warm_up=False),
    }
    storage.engine.dispose()
    optuna_way["pareto_cold"] = optuna_way["pareto"]
    ratios = {k: optuna_way[k]["p50_ms"] / max(ours[k]["p50_ms"], 1e-6) for k in ours}
    return {"ours": ours, "optuna": optuna_way, "speedup_p50": ratios}


def measure_http(url: str, ids: tuple[str, str], deep: str | None, repeats: int) -> dict[str, Any]:
    """The same reads over HTTP from a real server."""
    single, multi = ids
    with httpx.Client(base_url=url, timeout=60) as api:

        def get(path: str, **params: Any) -> None:
            api.get(path, params=params).raise_for_status()

        return {
            "best": timed(lambda: get(f"/studies/{single}/best"), repeats),
            "trials_first_page": timed(lambda: get(f"/studies/{single}/trials", limit=50), repeats),
            "trials_deep_page": timed(
                lambda: get(f"/studies/{single}/trials", limit=50, cursor=deep), repeats
            ),
            "pareto": timed(lambda: get(f"/studies/{multi}/pareto"), max(3, repeats // 10)),
            "summary": timed(lambda: get(f"/studies/{single}"), repeats),
        }


@contextlib.contextmanager
def database(kind: str, root: Path) -> Iterator[str]:
    """A fresh SQLite file or PostgreSQL database (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{root / f'query-scale-{uuid.uuid4().hex[:6]}.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


def run_case(kind: str, n: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """One database kind and study size: insert, index, measure."""
    with database(kind, root) if not args.database_url else _given(args.database_url) as url:
        engine = make_engine(url)
        metadata.create_all(engine)
        optuna.storages.RDBStorage(url).engine.dispose()  # Optuna's tables
        ensure_indexes(engine)
        started = time.perf_counter()
        single = make_study(engine, url, n, 1, seed=n)
        multi = make_study(engine, url, n, 2, seed=n + 1)
        insert_s = time.perf_counter() - started
        if kind == "postgres":  # what autovacuum does soon after a bulk insert
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        names = (f"hpo-{single[0]}", f"hpo-{multi[0]}")
        result = {"database": kind, "trials": n, "insert_s": insert_s}
        result["in_process"] = measure_store(url, engine, *names, n, args.repeats)
        queries = TrialQueries(engine)
        sid = queries.study_id(names[0])
        assert sid is not None
        cursor = deep_cursor(queries, sid, n)
        deep = cursor.encode() if cursor else None
        if args.url:
            result["http"] = measure_http(args.url, (single[0], multi[0]), deep, args.repeats)
        elif not args.no_http:
            server = start_server(root / f"server-{kind}-{n}", url)
            try:
                result["http"] = measure_http(server.url, (single[0], multi[0]), deep, args.repeats)
            finally:
                stop_server(server)
        engine.dispose()
        return result


@contextlib.contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small study on SQLite")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--url", help="measure HTTP against this server (with --database-url)")
    parser.add_argument("--database-url", help="insert into this database (the server's)")
    parser.add_argument("--no-http", action="store_true", help="in-process only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats = [500], 20
        args.databases = ["sqlite"] if not args.database_url else ["given"]
        args.no_http = args.no_http or not args.url
    cases = []
    with tempfile.TemporaryDirectory(prefix="hpo-query-scale-") as root:
        for kind in args.databases:
            for n in args.sizes:
                case = run_case(kind, n, args, Path(root))
                cases.append(case)
                print_case(case)
    report = {"benchmark": "query_scale", "quick": args.quick, "cases": cases}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("query_scale_quick.json" if args.quick else "query_scale.json")
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return report


def print_case(case: dict[str, Any]) -> None:
    """One table per database and size: ours (in-process, HTTP) vs Optuna, p50/p99 in ms."""
    own, plain = case["in_process"]["ours"], case["in_process"]["optuna"]
    http = case.get("http", {})
    print(f"\n{case['database']}, {case['trials']} trials (inserted in {case['insert_s']:.1f} s)")
    print(
        f"{'query':18s} {'ours p50/p99':>16s} {'HTTP p50/p99':>16s} {'optuna p50':>11s} {'x':>8s}"
    )
    for key, row in own.items():
        over_http = http.get(key)
        http_text = f"{over_http['p50_ms']:.1f}/{over_http['p99_ms']:.1f}" if over_http else "-"
        speedup = case["in_process"]["speedup_p50"][key]
        print(
            f"{key:18s} {row['p50_ms']:>7.1f}/{row['p99_ms']:<8.1f} {http_text:>16s} "
            f"{plain[key]['p50_ms']:>11.1f} {speedup:>8.0f}"
        )


if __name__ == "__main__":
    main()

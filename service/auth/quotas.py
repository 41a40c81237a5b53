"""Per-tenant quotas: studies running at once, trials per study, GPUs per trial.

A tenant's own row (``hpo tenants set``) overrides the service-wide defaults (settings
``HPO_TENANT_MAX_*``); a limit left empty in both is no limit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import Column, Engine, Float, Integer, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from search_spaces.spec import Problem, StudySpec
from service.db import metadata

tenants_table = Table(
    "hpo_tenants",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("max_running_studies", Integer, nullable=True),
    Column("max_trials_per_study", Integer, nullable=True),
    Column("max_gpus_per_trial", Float, nullable=True),
)


@dataclass(frozen=True)
class Quota:
    """Limits of one tenant (None: no limit)."""

    max_running_studies: int | None = None
    max_trials_per_study: int | None = None
    max_gpus_per_trial: float | None = None

    def over(self, defaults: Quota) -> Quota:
        """This quota where it is set, ``defaults`` elsewhere."""
        return Quota(
            **{
                f.name: getattr(self, f.name)
                if getattr(self, f.name) is not None
                else getattr(defaults, f.name)
                for f in fields(Quota)
            }
        )


class QuotaStore:
    """Read and set tenants' quotas."""

    def __init__(self, engine: Engine, defaults: Quota | None = None) -> None:
        self._engine = engine
        self._defaults = defaults or Quota()

    def of(self, tenant: str) -> Quota:
        """The effective quota of ``tenant``."""
        query = select(tenants_table).where(tenants_table.c.tenant == tenant)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        own = Quota(**{f.name: row[f.name] for f in fields(Quota)}) if row else Quota()
        return own.over(self._defaults)

    def set(self, tenant: str, quota: Quota) -> None:
        """Store ``tenant``'s own quota (its unset limits fall back to the defaults)."""
        values = {"tenant": tenant, **{f.name: getattr(quota, f.name) for f in fields(Quota)}}
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(tenants_table).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["tenant"], set_={k: v for k, v in values.items() if k != "tenant"}
        )
        with self._engine.begin() as conn:
            conn.execute(statement)

    def all(self) -> dict[str, Quota]:
        """Every tenant with its own row, and its effective quota."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(tenants_table).order_by(tenants_table.c.tenant)).mappings()
            return {
                r["tenant"]: Quota(**{f.name: r[f.name] for f in fields(Quota)}).over(
                    self._defaults
                )
                for r in rows
            }


def quota_problems(spec: StudySpec, tenant: str, quota: Quota) -> list[Problem]:
    """What in ``spec`` goes beyond ``tenant``'s trials-per-study or GPUs-per-trial quota."""
    problems = []
    if quota.max_trials_per_study is not None and spec.budget.n_trials > quota.max_trials_per_study:
        problems.append(
            Problem(
                ("budget", "n_trials"),
                f"{spec.budget.n_trials} trials exceed tenant {tenant}'s quota of "
                f"{quota.max_trials_per_study} per study",
            )
        )
    resources = spec.resources_per_trial
    gpus = resources.num_workers * resources.gpus_per_worker
    if quota.max_gpus_per_trial is not None and gpus > quota.max_gpus_per_trial:
        problems.append(
            Problem(
                ("resources_per_trial", "gpus_per_worker"),
                f"{gpus:g} GPUs per trial exceed tenant {tenant}'s quota of "
                f"{quota.max_gpus_per_trial:g}",
            )
        )
    return problems

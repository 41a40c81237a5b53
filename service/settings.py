"""Service settings, read from ``HPO_*`` environment variables (and ``RAY_ADDRESS``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from search_spaces.tracking import LOOPBACK_HOSTS, TrackingPolicy
from service.auth.principal import is_loopback

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")


class Settings(BaseSettings):
    """Everything the service can be configured with; built in ``create_app()``."""

    model_config = SettingsConfigDict(env_prefix="HPO_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    database_url: str = "sqlite:///./hpo.db"
    ray_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("HPO_RAY_ADDRESS", "RAY_ADDRESS", "ray_address"),
        description="Existing cluster: its dashboard (http://host:8265) or a Ray Client "
        "address (ray://host:10001); unset starts a local head.",
    )
    ray_auth_token: str | None = Field(default=None, description="Token of an existing cluster.")
    state_dir: Path = Path(".hpo")
    ray_num_cpus: int | None = Field(default=None, ge=1, description="CPUs of the local head.")
    ray_num_gpus: int | None = Field(default=None, ge=0)
    ray_dashboard_port: int = Field(default=8265, ge=0, le=65535)
    ray_object_store_bytes: int | None = Field(default=None, ge=78_643_200)
    worker_python: str | None = Field(
        default=None,
        description="Python that runs the study driver on the cluster "
        "(default: this interpreter for a local head, `python` for a remote cluster).",
    )
    max_running_studies: int = Field(default=1, ge=1, le=1000)
    max_resumes: int = Field(
        default=3, ge=0, le=100, description="Times a study whose driver died is resumed."
    )
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    read_cache_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Seconds a /best answer is served again to other readers (0: off). A "
        "finished study's answer is always exact; a running study's may lag this long.",
    )
    public_url: str | None = Field(
        default=None,
        description="The service's URL as users reach it, for links to studies (optuna-dashboard, "
        "MLflow). Default: the URL a study was submitted to.",
    )
    dashboard_public_url: str | None = Field(
        default=None, description="Ray dashboard URL to show users, if it differs."
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="`hpo serve` logs: one JSON object per line, or text."
    )
    data_roots: list[Path] = Field(
        default_factory=lambda: [Path.cwd()],
        description="Directories a spec's dataset files must lie in (env: a JSON list). "
        "Default: the server's working directory. An empty list disables local files.",
    )
    model_roots: list[Path] = Field(
        default_factory=lambda: [Path.cwd()],
        description="Directories a spec's local model directories must lie in (env: a JSON "
        "list). Default: the server's working directory.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking server of studies whose spec has tracking.mlflow without a "
        "tracking_uri (credentials: MLFLOW_TRACKING_TOKEN etc. on the workers, never here).",
    )
    tracking_hosts: list[str] = Field(
        default_factory=lambda: list(LOOPBACK_HOSTS),
        description="Hosts a spec's http(s) tracking_uri may name (env: a JSON list). Default: "
        "the loopback names.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=1024**3,
        description="Largest request body any route reads (413 beyond).",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds a request body may take to arrive once its headers did (408).",
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=4096,
        le=1024 * 1024,
        description="Largest request line plus headers uvicorn reads (400 beyond).",
    )
    max_connections: int = Field(
        default=256,
        ge=1,
        le=100_000,
        description="Open connections and requests uvicorn serves at once (503 beyond).",
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: list(LOOPBACK_NAMES),
        description="Host header values served (env: a JSON list; `*.example.com` matches "
        "subdomains, `*` any); others get a 400, which defeats DNS rebinding. The address the "
        "server binds, when a specific one, is added.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Web origins (scheme://host[:port]) whose browser requests are served, "
        "with CORS headers; requests from any other origin but the server's own get a 403.",
    )
    cluster_autoscaling: bool = Field(
        default=False,
        description="The Ray cluster adds nodes on demand: a trial larger than today's nodes is "
        "not refused at submission (raise HPO_PLACEMENT_TIMEOUT_S to cover a node's start).",
    )
    placement_timeout_s: float = Field(
        default=600.0,
        gt=0,
        le=7 * 24 * 3600,
        description="A study whose first trial cannot be placed on the cluster within this "
        "long ends FAILED with the reason.",
    )

    @field_validator("data_roots", "model_roots", mode="before")
    @classmethod
    def _no_empty_roots(cls, roots: Any) -> Any:
        if isinstance(roots, list | tuple) and any(not str(r).strip() for r in roots):
            raise ValueError("a root must not be empty (it would mean the working directory)")
        return roots

    @field_validator("data_roots", "model_roots")
    @classmethod
    def _absolute_roots(cls, roots: list[Path]) -> list[Path]:
        return [root.expanduser().resolve() for root in roots]

    @field_validator("database_url")
    @classmethod
    def _absolute_sqlite_path(cls, url: str) -> str:
        """Make a relative SQLite path absolute: the job driver runs in another directory."""
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(Path(url[len(prefix) :]).expanduser().resolve())
        return url

    @field_validator("state_dir")
    @classmethod
    def _absolute_state_dir(cls, path: Path) -> Path:
        return path.expanduser().resolve()

    ray_storage_path: str | None = Field(
        default=None,
        description="Where Ray Tune keeps experiments; on a multi-node cluster a path every "
        "node shares (NFS, or s3://…). Default: <state_dir>/ray_results.",
    )

    @property
    def results_dir(self) -> str:
        """Where Ray Tune writes each study's experiment directory."""
        return self.ray_storage_path or str(self.state_dir / "ray_results")

    auth: Literal["enabled", "disabled"] | None = Field(
        default=None,
        description="API keys on every endpoint but /healthz. Default: disabled when bound to a "
        "loopback address (a warning at start-up), enabled otherwise; disabled on any other "
        "address refuses to start.",
    )
    metrics_public: bool = Field(
        default=False, description="Serve /metrics without a key (it needs an admin key else)."
    )
    tenant_max_running_studies: int | None = Field(
        default=None, ge=1, description="Default per-tenant limit (hpo tenants set overrides)."
    )
    tenant_max_trials_per_study: int | None = Field(default=None, ge=1)
    tenant_max_gpus_per_trial: float | None = Field(default=None, ge=0)
    max_event_streams_per_tenant: int = Field(
        default=8, ge=1, le=10_000, description="Open /events streams per tenant (429 beyond)."
    )

    @property
    def trusted_hosts(self) -> list[str]:
        """``allowed_hosts``, and the bound address when it is a specific one."""
        extra = [] if self.host in WILDCARD_ADDRESSES else [self.host]
        return list(dict.fromkeys([*self.allowed_hosts, *extra]))

    def uvicorn_limits(self) -> dict[str, Any]:
        """uvicorn's own limits: h11 (httptools has no header-size limit) reading at most
        ``max_header_bytes`` of request line and headers, ``max_connections`` connections and
        requests at once (503 beyond), idle keep-alive connections closed after 5 s. uvicorn
        has no deadline for reading headers: a reverse proxy in front adds it (README)."""
        return {
            "http": "h11",
            "h11_max_incomplete_event_size": self.max_header_bytes,
            "limit_concurrency": self.max_connections,
            "timeout_keep_alive": 5,
        }

    @property
    def tracking_policy(self) -> TrackingPolicy:
        """Where a spec's tracking URI may point."""
        return TrackingPolicy(self.mlflow_tracking_uri, tuple(self.tracking_hosts))

    @property
    def auth_enabled(self) -> bool:
        """Whether requests need an API key."""
        if self.auth is None:
            return not is_loopback(self.host)
        return self.auth == "enabled"

    def auth_problem(self) -> str | None:
        """Why this configuration must not start: auth disabled on a non-loopback address."""
        if self.auth == "disabled" and not is_loopback(self.host):
            return (
                f"refusing to serve on {self.host} with HPO_AUTH=disabled: anyone who reaches "
                "it could run code on the cluster; enable auth or bind to 127.0.0.1"
            )
        return None

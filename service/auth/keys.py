"""API keys: created once (the secret is shown then and never again), stored as a SHA-256
hash, listed without their secret, revocable at once.

A key reads ``hpo_<key id>_<secret>``: the key id (public, 12 hex digits) finds the row, the
secret (32 random bytes) is checked against the stored hash in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    String,
    Table,
    insert,
    select,
    update,
)

from service.db import metadata

KEY_PATTERN = re.compile(r"^hpo_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

keys_table = Table(
    "hpo_api_keys",
    metadata,
    Column("key_id", String(12), primary_key=True),
    Column("secret_sha256", String(64), nullable=False),
    Column("tenant", String(63), nullable=False),
    Column("admin", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)


class KeyProblem(ValueError):
    """A key operation that cannot be done (unknown key id, bad tenant name)."""


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: everything but its secret."""

    key_id: str
    tenant: str
    admin: bool
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewKey:
    """A key just created: ``secret`` is the whole key, shown this once."""

    key: ApiKey
    secret: str


class KeyStore:
    """Create, verify, list and revoke API keys in the service's database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self, tenant: str, admin: bool = False) -> NewKey:
        """A new key for ``tenant`` (lowercase letters, digits, ``-``, ``_``; up to 63)."""
        if not TENANT_PATTERN.match(tenant):
            raise KeyProblem(
                f"tenant {tenant!r}: use 1-63 lowercase letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        row = ApiKey(key_id, tenant, admin, datetime.now(UTC), None)
        with self._engine.begin() as conn:
            conn.execute(
                insert(keys_table).values(
                    key_id=key_id,
                    secret_sha256=_digest(secret),
                    tenant=tenant,
                    admin=admin,
                    created_at=row.created_at,
                    revoked_at=None,
                )
            )
        return NewKey(row, f"hpo_{key_id}_{secret}")

    def verify(self, presented: str) -> ApiKey | None:
        """The live key ``presented`` is, or None (malformed, unknown, wrong secret, revoked)."""
        match = KEY_PATTERN.match(presented)
        if not match:
            return None
        key_id, secret = match.groups()
        with self._engine.connect() as conn:
            row = conn.execute(select(keys_table).where(keys_table.c.key_id == key_id)).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_sha256, _digest(secret)):
            return None
        return _key(row)

    def list(self) -> list[ApiKey]:
        """Every key, oldest first, without secrets."""
        query = select(keys_table).order_by(keys_table.c.created_at, keys_table.c.key_id)
        with self._engine.connect() as conn:
            return [_key(row) for row in conn.execute(query)]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by its id (the part after ``hpo_``); effective on the next request."""
        with self._engine.begin() as conn:
            done = conn.execute(
                update(keys_table)
                .where(keys_table.c.key_id == key_id, keys_table.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            row = conn.execute(select(keys_table).where(keys_table.c.key_id == key_id)).first()
        if row is None:
            raise KeyProblem(f"no key with id {key_id!r}")
        if done.rowcount == 0:
            raise KeyProblem(f"key {key_id} was already revoked")
        return _key(row)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _key(row: object) -> ApiKey:
    def utc(value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    created = utc(row.created_at)  # type: ignore[attr-defined]
    assert created is not None
    return ApiKey(
        row.key_id,  # type: ignore[attr-defined]
        row.tenant,  # type: ignore[attr-defined]
        bool(row.admin),  # type: ignore[attr-defined]
        created,
        utc(row.revoked_at),  # type: ignore[attr-defined]
    )

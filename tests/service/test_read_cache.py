"""The /best answer cache: shared computation, expiry, invalidation, tenants."""

from __future__ import annotations

import asyncio
import time

from service.api.read_cache import REFRESH_AT, Answer, ReadCache
from service.auth.principal import Principal

ALICE = Principal("alice", admin=False)
BOB = Principal("bob", admin=False)
KEY = ("best", "s1")


class Counting:
    """A slow computation that counts its calls."""

    def __init__(self, tenant: str | None = "alice", status: int = 200) -> None:
        self.calls = 0
        self.tenant, self.status = tenant, status

    async def __call__(self) -> Answer:
        self.calls += 1
        await asyncio.sleep(0.05)
        return Answer(self.tenant, self.status, f"body {self.calls}".encode())


def test_concurrent_misses_share_one_computation_then_it_is_kept() -> None:
    cache, compute = ReadCache(ttl_s=60), Counting()

    async def run() -> list[Answer]:
        return await asyncio.gather(*(cache.answer(KEY, ALICE, compute) for _ in range(20)))

    answers = asyncio.run(run())
    assert compute.calls == 1
    assert {a.body for a in answers} == {b"body 1"}
    assert asyncio.run(cache.answer(KEY, ALICE, compute)).body == b"body 1"
    assert compute.calls == 1


def test_an_answer_expires_after_the_ttl() -> None:
    cache, compute = ReadCache(ttl_s=0.2), Counting()
    assert asyncio.run(cache.answer(KEY, ALICE, compute)).body == b"body 1"
    time.sleep(0.25)
    assert asyncio.run(cache.answer(KEY, ALICE, compute)).body == b"body 2"


def test_a_study_change_drops_its_answer_and_one_computed_across_it() -> None:
    cache, compute = ReadCache(ttl_s=60), Counting()
    asyncio.run(cache.answer(KEY, ALICE, compute))
    cache.forget("s1")
    assert asyncio.run(cache.answer(KEY, ALICE, compute)).body == b"body 2"

    async def change_while_computing() -> None:
        running = asyncio.ensure_future(cache.answer(("best", "s2"), ALICE, compute))
        await asyncio.sleep(0.01)
        cache.forget("s2")  # the study changed while its answer was being computed
        await running

    asyncio.run(change_while_computing())
    assert compute.calls == 3
    asyncio.run(cache.answer(("best", "s2"), ALICE, compute))
    assert compute.calls == 4  # the answer computed across the change was not kept


def test_another_tenant_is_told_the_study_is_missing() -> None:
    cache, compute = ReadCache(ttl_s=60), Counting(tenant="alice")
    assert asyncio.run(cache.answer(KEY, ALICE, compute)).status_code == 200
    hidden = asyncio.run(cache.answer(KEY, BOB, compute))
    assert (hidden.tenant, hidden.status_code, hidden.body) == (None, 404, b"")
    assert asyncio.run(cache.answer(KEY, Principal("bob", admin=True), compute)).tenant == "alice"


def test_errors_and_missing_studies_are_not_kept_and_ttl_zero_is_off() -> None:
    cache, missing = ReadCache(ttl_s=60), Counting(status=404)
    for _ in range(2):
        assert asyncio.run(cache.answer(KEY, ALICE, missing)).status_code == 404
    assert missing.calls == 2
    off, compute = ReadCache(ttl_s=0), Counting()
    for _ in range(2):
        asyncio.run(off.answer(KEY, ALICE, compute))
    assert compute.calls == 2


def test_a_body_read_late_in_its_life_is_refreshed_in_the_background() -> None:
    """After REFRESH_AT of the ttl a read gets the kept body at once and starts one refresh;
    the refreshed body is served from then on (no reader waited for it)."""
    cache, compute = ReadCache(ttl_s=0.4), Counting()

    async def run() -> None:
        assert (await cache.answer(KEY, ALICE, compute)).body == b"body 1"
        await asyncio.sleep(0.4 * REFRESH_AT + 0.05)  # past the refresh point, not expired
        started = time.monotonic()
        late = await asyncio.gather(*(cache.answer(KEY, ALICE, compute) for _ in range(10)))
        assert time.monotonic() - started < 0.04  # none waited for the 50 ms computation
        assert {a.body for a in late} == {b"body 1"}
        await asyncio.sleep(0.1)  # the one background refresh finishes
        assert compute.calls == 2
        assert (await cache.answer(KEY, ALICE, compute)).body == b"body 2"
        assert compute.calls == 2

    asyncio.run(run())

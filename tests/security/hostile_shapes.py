"""Shapes of hostile input that schemathesis does not draw from the schema by itself: integers
past 64 bits, non-ASCII digits, NaN, 400-digit numbers, forged cursors, and specs whose size is
astronomical (fine float steps, 2**31-value ranges, huge grids, reduction factors just above 1).
The fuzz run mixes them into the generated queries, headers and bodies."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from hypothesis import strategies as st

from tests.service.test_api import SPEC


def forged_cursor(*fields: object) -> str:
    """A trial-page cursor holding ``fields`` (sort, descending, key, number), as encoded."""
    return base64.urlsafe_b64encode(json.dumps(list(fields)).encode()).decode().rstrip("=")


NUMBER_TEXTS = [
    "9" * 25,  # past 64 bits
    "1" + "0" * 400,
    "-1e400",
    "nan",
    "inf",
    "²",  # str.isdigit() says yes, int() says no
    "٣",  # an Arabic-Indic 3: int() and float() take it
    "\uff11\uff12",  # fullwidth digits
    "0x10",
    "",
]
QUERY_TEXTS = [
    *NUMBER_TEXTS,
    *(f"learning_rate:{text}" for text in NUMBER_TEXTS),
    "learning_rate:1e-5:" + "9" * 400,
    forged_cursor("number", False, None, 2**70),
    forged_cursor("value", True, 10**400, 1),
    forged_cursor("number", False, None, True),
]


def _spec(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    spec.update(copy.deepcopy(changes))
    return spec


SEED_RANGE = {"type": "int", "low": 0, "high": 2**31 - 1}
HOSTILE_SPECS = [
    _spec(search_space={"weight_decay": {"type": "float", "low": 0, "high": 1, "step": 1e-308}}),
    _spec(search_space={"seed": SEED_RANGE}),  # legal: random sampling needs no grid
    _spec(algorithm="grid", search_space={"seed": SEED_RANGE}),
    _spec(
        algorithm="grid",
        search_space={
            name: {"type": "int", "low": 1, "high": 1024}
            for name in ("batch_size", "lora_r", "lora_alpha", "gradient_accumulation_steps")
        },
    ),
    _spec(task={"epochs": 100}, scheduler={"type": "asha", "reduction_factor": 1.0000001}),
    _spec(task={"epochs": 100}, scheduler={"type": "hyperband", "reduction_factor": 1 + 1e-15}),
    _spec(task={"epochs": 2}, scheduler={"type": "asha", "max_epochs": 10_000}),
    _spec(resources_per_trial={"num_workers": 512, "cpus_per_worker": 512}),
]


def hostile_query(query: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    """The generated query, or it with one parameter's value replaced by a hostile text."""
    if not query:
        return st.just(query)
    return st.one_of(
        st.just(query),
        st.tuples(st.sampled_from(sorted(query)), st.sampled_from(QUERY_TEXTS)).map(
            lambda pick: {**query, pick[0]: pick[1]}
        ),
    )


def hostile_headers(headers: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    """The generated headers, or them with a hostile ``Last-Event-ID``."""
    texts = [text for text in NUMBER_TEXTS if text.isascii()] + ["1" * 23]
    return st.one_of(
        st.just(headers),
        st.sampled_from(texts).map(lambda text: {**(headers or {}), "Last-Event-ID": text}),
    )


def hostile_body(body: Any) -> st.SearchStrategy[Any]:
    """The generated body, or a spec whose size is astronomical (a JSON body only)."""
    if not isinstance(body, dict):
        return st.just(body)
    return st.one_of(st.just(body), st.sampled_from(HOSTILE_SPECS))

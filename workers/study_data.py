"""A trial process's copy of the study's tokenised data, fetched from the object store once.

Tune reuses a trial's process for the study's next trials, and a DDP group's ranks live as long
(``workers.rank_group``); each would otherwise fetch and deserialise the whole data set again
for every trial. Training never modifies it.
"""

from __future__ import annotations

from typing import Any

import ray

_KEPT: dict[str, Any] = {}  # by object id; one study per process, so one entry


def study_data(ref: ray.ObjectRef) -> Any:
    """The object behind ``ref``, resolved once per process."""
    key = ref.hex()
    if key not in _KEPT:
        _KEPT.clear()
        _KEPT[key] = ray.get(ref)
    return _KEPT[key]

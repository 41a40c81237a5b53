"""Which Ray addresses the service accepts (the ray:// case runs in tests/integration too)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from service import ray_address
from service.ray_address import RayAddressError, jobs_api_url
from service.ray_head import free_port


def test_dashboard_addresses_pass_through_with_http_assumed() -> None:
    assert jobs_api_url("http://head:8265") == "http://head:8265"
    assert jobs_api_url("https://head.example:443") == "https://head.example:443"
    assert jobs_api_url("head:8265") == "http://head:8265"


def test_an_unreachable_ray_client_address_is_one_clear_error() -> None:
    address = f"ray://127.0.0.1:{free_port()}"
    with pytest.raises(RayAddressError, match=f"Ray Client at {address}"):
        jobs_api_url(address, timeout_s=5)


def test_a_failed_resolution_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = [(1, "", "RuntimeError: Starting Ray client server failed"),
                (0, "http://127.0.0.1:8265\n", "")]  # fmt: skip
    calls: list[list[str]] = []

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        code, out, err = outcomes[min(len(calls), len(outcomes)) - 1]
        return subprocess.CompletedProcess(command, code, out, err)

    monkeypatch.setattr(ray_address, "RETRY_PAUSE_S", 0.0)
    monkeypatch.setattr(ray_address.subprocess, "run", run)
    assert jobs_api_url("ray://head:10001") == "http://127.0.0.1:8265"
    assert len(calls) == 2
    outcomes[1] = outcomes[0]  # failing every time: one error naming the last reason
    calls.clear()
    with pytest.raises(RayAddressError, match="Starting Ray client server failed"):
        jobs_api_url("ray://head:10001")
    assert len(calls) == ray_address.ATTEMPTS

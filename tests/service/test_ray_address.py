"""Which Ray addresses the service accepts (the ray:// case runs in tests/integration too)."""

from __future__ import annotations

import pytest

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

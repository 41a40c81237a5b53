"""Ports for a local Ray head: distinct, free, and never one already chosen."""

from __future__ import annotations

import socket

from service.ray_head import free_ports


def test_free_ports_are_distinct_free_and_skip_the_taken_ones() -> None:
    taken = free_ports(1)[0]
    ports = free_ports(64, taken={taken})
    assert len(set(ports)) == 64 and taken not in ports
    for port in ports:  # each can be bound right now
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))

# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""Free loopback ports."""

import socket
import time

LOOPBACK = "127.0.0.1"

# Ports handed out by this process, so two calls in a row never return the
# same port even before the first one is bound by a server.
_handed_out = set()


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free loopback port found")


def port_is_open(port, host=LOOPBACK, timeout=1.0):
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port_closed(port, timeout=10.0, host=LOOPBACK):
    """Wait until nothing accepts connections on host:port; bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_is_open(port, host, timeout=0.5):
            return True
        time.sleep(0.1)
    return False

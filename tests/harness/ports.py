# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""Free loopback ports for the servers of a test run.

A server gets its port some time after free_port() chose it, and some are
stopped and started again on the same port. Meanwhile the port must not be
taken by anybody else, yet test runs on this machine run side by side:

- the ports come from below the kernel's range of ephemeral ports
  (net.ipv4.ip_local_port_range), which it gives to the outgoing
  connections of every process (ours: IMAP and LDAP clients, ldapadd; and
  those of other runs), so no outgoing connection holds a server's port
  while that server is down;
- each port is reserved for the life of the process with an flock() on
  /tmp/mbref-ports/<port>, which other runs respect; the kernel drops the
  lock when the process ends, however it ends.
"""

import errno
import fcntl
import os
import random
import socket
import time

LOOPBACK = "127.0.0.1"
LOCK_DIR = "/tmp/mbref-ports"
# below the usual ephemeral range (32768-60999); see _port_range()
DEFAULT_RANGE = (20000, 32767)

# port -> the open lock file that reserves it for this process
_reserved = {}


def _port_range():
    """Ports that no outgoing connection is given: from 20000 up to the
    start of the ephemeral range (or DEFAULT_RANGE when that cannot be
    read or leaves too little room)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_RANGE
    if low - 1 - DEFAULT_RANGE[0] < 1000:
        return DEFAULT_RANGE
    return (DEFAULT_RANGE[0], low - 1)


def _reserve(port):
    """Take the cross-process lock of port; False if another process
    holds it."""
    os.makedirs(LOCK_DIR, exist_ok=True)
    try:
        os.chmod(LOCK_DIR, 0o1777)
    except OSError:
        pass
    fd = os.open(os.path.join(LOCK_DIR, str(port)),
                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    _reserved[port] = fd
    return True


def _bindable(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now, reserved
    for this process (never handed out twice, nor to another test run)."""
    low, high = _port_range()
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randint(low, high)
        if port in _reserved or not _reserve(port):
            continue
        if _bindable(port):
            return port
        os.close(_reserved.pop(port))
    raise RuntimeError("no free loopback port found in %d-%d" % (low, high))


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

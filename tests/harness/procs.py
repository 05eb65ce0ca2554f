# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""Bookkeeping of the servers a test run started, so none is left behind.

Every server class registers itself here when it starts and unregisters
when it stops; stop_all() (run at exit, and by the test runner in a
finally block) stops whatever is still registered, newest first.
"""

import atexit
import os
import signal
import time

_running = []


def register(server):
    if server not in _running:
        _running.append(server)


def unregister(server):
    if server in _running:
        _running.remove(server)


def running_servers():
    """The servers registered (started and not stopped), oldest first."""
    return list(_running)


def stop_all():
    """Stop (and clean up) every registered server; returns error texts."""
    errors = []
    while _running:
        server = _running.pop()
        try:
            # cleanup() also removes the server's own temporary directory
            getattr(server, "cleanup", server.stop)()
        except Exception as e:  # keep stopping the others
            errors.append("%r: %s" % (server, e))
    reap_zombies()
    return errors


atexit.register(stop_all)


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    # state is the field after the parenthesised command name
    state = stat[stat.rfind(")") + 2:].split(" ", 1)[0]
    return state not in ("Z", "X")


def cmdline(pid):
    """The command line of pid as a list ([] when it is gone)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode("utf-8", "surrogateescape")
            for a in raw.split(b"\0") if a]


def pid_runs(pid, argument):
    """True if pid is alive and argument is one of its command line's
    words. A PID read from a pid file may belong to another process by
    now: PIDs here wrap at 32768 and several test runs start hundreds of
    processes a second (measured: 2,000 PIDs in 10 s), so a PID comes
    round again within minutes; signalling it without this check would
    hit whatever process has the number now, in this run or another."""
    return pid_alive(pid) and argument in cmdline(pid)


def wait_pid_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def _thread_states(pid):
    """The state letters of every thread of pid (empty when it is gone)."""
    states = []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return states
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                stat = f.read()
        except OSError:
            continue  # the thread just ended
        states.append(stat[stat.rfind(")") + 2:].split(" ", 1)[0])
    return states


def wait_stopped(pid, timeout):
    """Wait until every thread of pid is stopped (state T) after a
    SIGSTOP; False if that did not happen within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        states = _thread_states(pid)
        if states and all(s == "T" for s in states):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def children_of(pid):
    """All descendants of pid (by /proc scan), deepest last."""
    parent = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split(" ")
        parent[int(entry)] = int(fields[1])
    result = []
    todo = [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        result.extend(kids)
        todo.extend(kids)
    return result


def kill_tree(pid, sig=signal.SIGKILL):
    """Send sig to pid and to all its descendants (which we started)."""
    for p in [pid] + children_of(pid):
        try:
            os.kill(p, sig)
        except OSError:
            pass


def become_subreaper():
    """Make this process the reaper of orphaned descendants (Linux
    PR_SET_CHILD_SUBREAPER), so daemonized servers that we stop do not
    linger as zombies when PID 1 does not reap them. Best effort."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


def reap_zombies():
    """Collect exited children (see become_subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return

# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""What the benchmarks in bench/ share: a raw IMAP client that only looks
for the tagged reply, the callgrind wrapper for imap processes, medians
with their spread, Markdown tables, and the checks and clean-up around a
run. The servers themselves come from tests/harness.

    HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, HERE)
    import benchlib    # also makes tests/harness importable
"""

import glob
import itertools
import os
import re
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), "tests")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from harness import ldif, procs  # noqa: E402
from harness.dovecot import BUILD_MODULE_DIR  # noqa: E402
from harness.ports import LOOPBACK  # noqa: E402
from harness.slapd import SUFFIX  # noqa: E402

REFERRALS_BASE = "ou=referrals," + SUFFIX
USER, PASSWORD = "alice", "secret"
IMAP_BINARY = "/usr/lib/dovecot/imap"
VALGRIND = "/usr/bin/valgrind"
# Dovecot 2.3's login process gives up on handing a logged-in client to
# an imap process after MASTER_LOGIN_TIMEOUT_SECS / 2 (lib-master's
# master-auth.c, 180 s / 2): an imap process under callgrind must start
# well within that.
DOVECOT_HANDOFF_TIMEOUT = 90.0
RECV_SIZE = 1 << 20


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ------------------------------------------------------------------ client
def read_reply(recv_into, view, acc, pattern, sizes):
    """Receive into acc until it holds pattern followed by a CRLF.

    acc starts with CRLF, so that a reply whose first line is the tagged
    one is found as well. Only the bytes not yet scanned are searched
    (with an overlap of len(pattern) - 1); lines are never split. Returns
    (index of pattern, index after the tagged line's CRLF)."""
    start = 0
    plen = len(pattern)
    while True:
        idx = acc.find(pattern, start)
        if idx >= 0:
            end = acc.find(b"\r\n", idx + plen)
            if end >= 0:
                return idx, end + 2
        else:
            start = max(0, len(acc) - plen + 1)
        n = recv_into(view)
        if n == 0:
            raise BenchError("connection closed before %r" % pattern)
        sizes.append(n)
        acc += view[:n]


class Reply:
    __slots__ = ("tagged", "data", "sizes", "wall", "cpu")

    def __init__(self, tagged, data, sizes, wall, cpu):
        self.tagged = tagged    # the tagged line, without CRLF
        self.data = data        # every byte received for the command
        self.sizes = sizes      # sizes of the recv() calls
        self.wall = wall        # seconds from send to the tagged line
        self.cpu = cpu          # this process's CPU seconds meanwhile

    @property
    def ok(self):
        return self.tagged.split(b" ", 2)[1:2] == [b"OK"]

    def count(self, prefix):
        return (b"\r\n" + self.data).count(b"\r\n" + prefix)


class RawImap:
    """Just enough IMAP to time a command: send it, read until its tagged
    reply. The bytes are looked at only after the clock has stopped."""

    def __init__(self, port, timeout):
        self.sock = socket.create_connection((LOOPBACK, port),
                                             timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray(RECV_SIZE)
        self.view = memoryview(self.buf)
        self.pending = bytearray()
        self.seq = 0
        acc = bytearray(b"\r\n")
        _, end = read_reply(self.sock.recv_into, self.view, acc, b"\r\n* ",
                            [])
        if not acc.startswith(b"\r\n* OK"):
            raise BenchError("greeting: %r" % bytes(acc[2:end]))
        self.pending = acc[end:]

    def command(self, cmd):
        if self.pending:
            # nothing here makes the server speak unasked
            raise BenchError("unexpected data before a command: %r"
                             % bytes(self.pending[:200]))
        self.seq += 1
        tag = b"t%d" % self.seq
        line = tag + b" " + cmd.encode() + b"\r\n"
        pattern = b"\r\n" + tag + b" "
        acc = bytearray(b"\r\n")
        sizes = []
        c0 = time.process_time()
        t0 = time.perf_counter()
        self.sock.sendall(line)
        idx, end = read_reply(self.sock.recv_into, self.view, acc, pattern,
                              sizes)
        t1 = time.perf_counter()
        c1 = time.process_time()
        self.pending = acc[end:]
        return Reply(bytes(acc[idx + 2:end - 2]), bytes(acc[2:end]), sizes,
                     t1 - t0, c1 - c0)

    def logout(self):
        """LOGOUT, then read until the server closes the connection, so
        that the imap process has finished before the next session."""
        r = self.command("LOGOUT")
        while self.sock.recv_into(self.view) > 0:
            pass
        self.sock.close()
        return r

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def replay_seconds(reply):
    """Time read_reply() on the bytes of reply, handed over from memory in
    the same pieces as the socket gave them: the client's scanning and
    copying, without the server and without system calls."""
    data = memoryview(reply.data)
    sizes = iter(reply.sizes)
    pos = [0]
    buf = bytearray(RECV_SIZE)
    view = memoryview(buf)
    pattern = b"\r\n" + reply.tagged.split(b" ", 1)[0] + b" "

    def recv_into(v):
        n = next(sizes)
        p = pos[0]
        v[:n] = data[p:p + n]
        pos[0] = p + n
        return n

    acc = bytearray(b"\r\n")
    t0 = time.perf_counter()
    read_reply(recv_into, view, acc, pattern, [])
    return time.perf_counter() - t0


# --------------------------------------------------------------- callgrind
class Callgrind:
    """The imap wrapper and the out files of one Dovecot instance: every
    imap process runs under callgrind, which dumps its counts when the
    function marker (imap's cmd_noop by default) starts and at exit."""

    def __init__(self, name, generator, marker="cmd_noop"):
        self.dir = tempfile.mkdtemp(prefix="mbref-callgrind-%s-" % name)
        # callgrind writes its dumps after the imap process has become
        # the mail user
        os.chmod(self.dir, 0o1777)
        self.wrapper = os.path.join(self.dir, "imap-wrapper")
        with open(self.wrapper, "w") as f:
            # valgrind opens the final out file as root at start-up and
            # writes it at exit as the mail user: create it writable first
            # ($$ is the pid valgrind keeps, since it is exec'd). No vgdb:
            # its FIFOs, made as root, would be left in /tmp.
            f.write("""#!/bin/sh
# Generated by {generator}: run imap under callgrind.
out={dir}/callgrind.$$
: > "$out"
chmod 0666 "$out"
exec {valgrind} --tool=callgrind --vgdb=no \\
  --log-file={dir}/valgrind.%p.log \\
  --dump-before={marker} \\
  --callgrind-out-file={dir}/callgrind.%p \\
  {imap} "$@"
""".format(generator=generator, dir=self.dir, valgrind=VALGRIND,
           marker=marker,
           imap=IMAP_BINARY))
        os.chmod(self.wrapper, 0o755)
        self.seen = set()

    def config(self):
        # valgrind maps its own code and shadow memory beside the imap
        # process's: Dovecot's default 256 MB vsz_limit could cut it short
        # (0: no limit)
        return ("service imap {\n  executable = %s\n  vsz_limit = 0\n}\n"
                % self.wrapper)

    @staticmethod
    def _totals(path):
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(b"totals:"):
                    return int(line.split()[1])
        return None

    def _finished(self):
        done = []
        for path in glob.glob(os.path.join(self.dir, "callgrind.*")):
            base = os.path.basename(path)
            m = re.fullmatch(r"callgrind\.(\d+)", base)
            if m and base not in self.seen and \
                    self._totals(path) is not None:
                done.append(m.group(1))
        return done

    def session_parts(self, timeout):
        """Wait for the one imap process that ran since the last call to
        have exited and written its final file; return the Ir of its
        parts in order (dumps at each marker, then program termination)."""
        deadline = time.monotonic() + timeout
        while True:
            done = self._finished()
            if done:
                break
            if time.monotonic() > deadline:
                raise BenchError("no complete callgrind file in %s after "
                                 "%ds" % (self.dir, timeout))
            time.sleep(0.1)
        if len(done) != 1:
            raise BenchError("expected one imap process, found %s" % done)
        pid = done[0]
        self.seen.add("callgrind." + pid)
        parts = []
        for i in itertools.count(1):
            path = os.path.join(self.dir, "callgrind.%s.%d" % (pid, i))
            if not os.path.exists(path):
                break
            parts.append(self._totals(path))
        parts.append(self._totals(os.path.join(self.dir,
                                               "callgrind." + pid)))
        return parts

    def unclaimed(self):
        """Finished imap processes not yet taken by session_parts()."""
        return self._finished()

    def cleanup(self, keep):
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------- stats
def spread(values):
    """(median, q1, q3, min, max)."""
    v = sorted(values)
    med = statistics.median(v)
    if len(v) >= 2:
        q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive")
    else:
        q1 = q3 = v[0]
    return med, q1, q3, v[0], v[-1]


def fmt_range(lo, hi, fmt):
    return (fmt + "–" + fmt) % (lo, hi)


def spread_cells(values, fmt):
    """Median, IQR and min–max of values as table cells."""
    med, q1, q3, lo, hi = spread(values)
    return fmt % med, fmt_range(q1, q3, fmt), fmt_range(lo, hi, fmt)


def ratio_cells(xs, ys, fmt):
    """The ratio of the medians of xs and ys, and the IQR and min–max of
    the ratios within each round (xs[i] and ys[i] measured in round i)."""
    of_medians = statistics.median(xs) / statistics.median(ys)
    _, q1, q3, lo, hi = spread([x / y for x, y in zip(xs, ys)])
    return fmt % of_medians, fmt_range(q1, q3, fmt), fmt_range(lo, hi, fmt)


def table(header, rows, left=2):
    """A Markdown table; the first `left` columns are aligned left, the
    others (numbers) right."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    out = ["| " + " | ".join(str(h).ljust(w) for h, w in
                             zip(header, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for row in rows:
        cells = []
        for i, (x, w) in enumerate(zip(row, widths)):
            cells.append(str(x).ljust(w) if i < left else str(x).rjust(w))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


# ------------------------------------------------------------- the run
def dovecot_version():
    try:
        return subprocess.run(["/usr/sbin/dovecot", "--version"],
                              stdout=subprocess.PIPE, timeout=10,
                              check=True).stdout.decode().split()[0]
    except Exception:
        return "?"


def check_logs(servers):
    """Errors, and any timeout, in the servers' logs make the run
    invalid: raise BenchError naming the first ten."""
    bad = []
    for d in servers:
        for line in d.log_text().splitlines():
            if re.search(r"Fatal:|Panic:|Error:|[Tt]imed? ?out", line):
                bad.append("%s: %s" % (d.name, line))
    if bad:
        raise BenchError("the servers logged errors or timeouts, the run "
                         "is not valid:\n  " + "\n  ".join(bad[:10]))


def print_callgrind_logins(seconds):
    """The login times under callgrind, against Dovecot's bound on
    handing a logged-in client over to a slow-starting imap process."""
    print("login under callgrind (connect to LOGIN OK, imap start-up "
          "included): median %.1f s, max %.1f s; Dovecot hands a client "
          "over only within %d s" % (statistics.median(seconds),
                                     max(seconds), DOVECOT_HANDOFF_TIMEOUT))


def require_plugin_built():
    for so in ("lib20_mailbox_referrals_plugin.so",
               "lib20_mailbox_referrals_core_plugin.so",
               "lib21_imap_mailbox_referrals_plugin.so",
               "lib21_imap_mailbox_referrals_core_plugin.so"):
        if not os.path.exists(os.path.join(BUILD_MODULE_DIR, so)):
            raise SystemExit("plugin not built (%s missing): run make"
                             % os.path.join(BUILD_MODULE_DIR, so))


def require_callgrind():
    if not os.access(VALGRIND, os.X_OK):
        raise SystemExit("--callgrind needs %s (apt-get install valgrind)"
                         % VALGRIND)


def use_tmpdir(tmpdir):
    """Make the harness and Callgrind create their directories in tmpdir,
    by default /dev/shm when it exists: a tmpfs, so that other programs'
    disk traffic and Dovecot's index fsyncs stay out of the figures.
    Returns the directory used."""
    if tmpdir is None and os.path.isdir("/dev/shm") and \
            os.access("/dev/shm", os.W_OK):
        tmpdir = "/dev/shm"
    if tmpdir is not None:
        # the harness and Callgrind make their directories with mkdtemp
        tempfile.tempdir = tmpdir
    return tempfile.gettempdir()


def prepare_run(keep):
    """Everything started from here on is stopped at the end whatever
    happens: become the subreaper of the servers, and turn SIGTERM (and
    SIGINT, which a shell ignores in background jobs) into an exception so
    that the caller's finally: runs stop_servers()."""
    if keep:
        os.environ["MBREF_KEEP_TMP"] = "1"
    procs.become_subreaper()

    def interrupted(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)


def stop_servers(grinds, keep):
    t0 = time.monotonic()
    for err in procs.stop_all():
        log("WARN stop: %s" % err)
    for g in grinds:
        g.cleanup(keep)
    log("servers stopped, temporary directories %s (%.1fs)" % (
        "kept" if keep else "removed", time.monotonic() - t0))


def entry_ldif(mailbox, server):
    """An imapMailboxReferral entry under REFERRALS_BASE; server is
    "PREFERENCE HOST:PORT"."""
    dn = "imapReferralMailbox=%s,%s" % (ldif.escape_dn_value(mailbox),
                                        REFERRALS_BASE)
    return ldif.entry(dn, [("objectClass", "imapMailboxReferral"),
                           ("imapReferralMailbox", mailbox),
                           ("imapReferralServer", server)])


def main_guard(name, main):
    """Run main() and exit with its status: 1 on a BenchError, 130 when
    interrupted (the servers are stopped by main's finally:)."""
    try:
        sys.exit(main())
    except BenchError as e:
        log("%s: %s" % (name, e))
        sys.exit(1)
    except KeyboardInterrupt as e:
        log("%s: interrupted (%s), servers stopped" % (name, e))
        sys.exit(130)

# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""RLIST over a directory larger than slapd's size limit (RFC 2696 paged
searches; slapd's default sizelimit is 500).

This module's own slapd holds 10,000 remote entries Public/S4/mNNNNN and two
non-root readers with read access to the referrals:

  cn=imap,dc=example,dc=com          limits ... size.prtotal=unlimited
  cn=imap-limited,dc=example,dc=com  no limits line: paged searches stop at
                                     the (default, 500) size limit

Dovecot "scale" binds as cn=imap, Dovecot "scalelim" as cn=imap-limited.
The root DN is not subject to limits at all, so it is used only to load
the entries.
"""

import re
import socket
import time

from common import (check_plugin_built, crash_lines, expect, expect_eq,
                    expect_ok, ou_referrals_ldif, plugin_settings,
                    referral_entry, Failure, PASSWORD,
                    REFERRALS_BASE, USER)
from harness import procs
from harness.dovecot import Dovecot
from harness.imap import ImapClient, strip_timing
from harness.ports import free_port
from harness.slapd import Slapd
from common import (expect, expect_eq, expect_ok, login, own_directory,
                    own_dovecot, referral_entry, stop_servers,
                    REFERRALS_BASE)

COUNT = 10000
SIZE_LIMIT = 500            # slapd's default
PAGE = 500                  # the plugin's page size
READER = "cn=imap,dc=example,dc=com"
READER_PW = "imap-reader-pw"
LIMITED = "cn=imap-limited,dc=example,dc=com"
LIMITED_PW = "imap-limited-pw"
REMOTE = "10 127.0.0.1:10999"   # written into the directory, never contacted
UNAVAILABLE = ("NO [UNAVAILABLE] Referral directory is unavailable, "
               "try again later")

ldap = None
home = None
limited = None
servers = []


def _name(i):
    return "Public/S4/m%05d" % i


def setup_module():
    global ldap, home, limited
    ldap = own_directory(
        nosync=True,
        access=['to attrs=userPassword by anonymous auth by * none',
                'to * by dn.exact="%s" read by dn.exact="%s" read by * none'
                % (READER, LIMITED)],
        limits=['dn.exact="%s" size.prtotal=unlimited' % READER])
    servers.append(ldap)
    ldap.add_reader(READER, READER_PW)
    ldap.add_reader(LIMITED, LIMITED_PW)
    ldap.ldapadd("\n".join(referral_entry(None, _name(i), [REMOTE])[1]
                           for i in range(COUNT)), timeout=300)
    home = own_dovecot("scale", ldap, registry=servers,
                       mailbox_referrals_ldap_dn=READER,
                       mailbox_referrals_ldap_dnpass=READER_PW,
                       mailbox_referrals_ldap_timeout="30s")
    limited = own_dovecot("scalelim", ldap, registry=servers,
                          mailbox_referrals_ldap_dn=LIMITED,
                          mailbox_referrals_ldap_dnpass=LIMITED_PW,
                          mailbox_referrals_ldap_timeout="30s")


def teardown_module():
    stop_servers(*servers)


def _client(server):
    return login(server, timeout=120)


def _done_text(resp):
    """The tagged text, with the "." Dovecot replaces by its timing put
    back."""
    text = resp.text
    return text + "." if text != resp.raw_text else text


def test_size_limit_is_real():
    rc, entries, err = ldap.search_as(
        READER, READER_PW, base=REFERRALS_BASE,
        filter="(objectClass=imapMailboxReferral)", attrs=["1.1"])
    expect_eq((rc, len(entries)), (4, SIZE_LIMIT),
              "non-paged ldapsearch as %s: (exit status, entries) - 4 is "
              "sizeLimitExceeded (stderr %r)" % (READER, err.strip()))
    rc, entries, err = ldap.search_as(
        READER, READER_PW, base=REFERRALS_BASE,
        filter="(objectClass=imapMailboxReferral)", attrs=["1.1"],
        extra_args=["-E", "pr=%d/noprompt" % PAGE])
    expect_eq((rc, len(entries)), (0, COUNT),
              "paged ldapsearch as %s (size.prtotal=unlimited): (exit "
              "status, entries); stderr %r" % (READER, err.strip()))
    rc, entries, err = ldap.search_as(
        LIMITED, LIMITED_PW, base=REFERRALS_BASE,
        filter="(objectClass=imapMailboxReferral)", attrs=["1.1"],
        extra_args=["-E", "pr=%d/noprompt" % PAGE])
    expect(rc != 0 and len(entries) < COUNT,
           "paged ldapsearch as %s (no prtotal grant) got everything "
           "(status %d, %d entries): the second Dovecot proves nothing"
           % (LIMITED, rc, len(entries)))


def test_rlist_returns_every_entry():
    before = ldap.count_searches(base_substring=REFERRALS_BASE)
    with _client(home) as c:
        t0 = time.monotonic()
        r = c.command('RLIST "" "Public/S4/*"')
        elapsed = time.monotonic() - t0
        searches = ldap.count_searches(base_substring=REFERRALS_BASE) - before
        expect_eq(_done_text(r), "OK List completed.",
                  'RLIST "" "Public/S4/*" tagged response (after %.1fs)'
                  % elapsed)
        want = set('* LIST (\\HasNoChildren) "/" %s' % _name(i)
                   for i in range(COUNT))
        lines = [l for l in r.untagged if l.startswith("* LIST ")]
        got = set(lines)
        expect_eq(len(lines), len(got), "duplicate lines in the RLIST")
        missing = sorted(want - got)
        extra = sorted(got - want)
        expect(not missing and not extra,
               "RLIST \"\" \"Public/S4/*\": %d of %d expected lines, %d "
               "missing (first %r), %d unexpected (first %r)"
               % (len(want & got), COUNT, len(missing), missing[:3],
                  len(extra), extra[:3]))
        bound = COUNT // PAGE + 2
        expect(1 <= searches <= bound,
               "searches slapd received for one RLIST over %d entries: %d, "
               "expected between 1 and %d (one per page, never one per "
               "mailbox)" % (COUNT, searches, bound))

        # the parent, which "Public/S4/*" does not match
        r = c.command('RLIST "" "Public/S4"')
        expect_eq((r.untagged, _done_text(r)),
                  (['* LIST (\\Noselect \\HasChildren) "/" Public/S4'],
                   "OK List completed."), 'RLIST "" "Public/S4" (the parent)')
        r = c.command('RLIST "" "Public/%"')
        expect_eq((r.untagged, _done_text(r)),
                  (['* LIST (\\Noselect \\HasChildren) "/" Public/S4'],
                   "OK List completed."), 'RLIST "" "Public/%"')
        r = c.command('RLIST "" "Public/S4*"')
        lines = [l for l in r.untagged if l.startswith("* LIST ")]
        expect_eq((len(lines), len(set(lines)), _done_text(r)),
                  (COUNT + 1, COUNT + 1, "OK List completed."),
                  'RLIST "" "Public/S4*": (lines, distinct lines, tagged)')


def test_list_hides_all_of_them():
    with _client(home) as c:
        r = c.command('LIST "" "Public/*"')
        expect_eq((r.untagged, _done_text(r)), ([], "OK List completed."),
                  'LIST "" "Public/*" (all 10,000 are remote)')



def test_namespace_root_has_remote_children():
    """Public/ holds remote mailboxes only. lib-storage decides whether a
    namespace root has children by listing it without REMOTE; RLIST and
    LIST (REMOTE) must still say that it has (clients that browse with "%"
    expand a name only when it has children), plain LIST that it has not."""
    with _client(home) as c:
        for cmd, want in (
                ('RLIST "" "Public"',
                 '* LIST (\\Noselect \\HasChildren) "/" Public'),
                ('RLIST "" "%"',
                 '* LIST (\\Noselect \\HasChildren) "/" Public'),
                ('LIST (REMOTE) "" "Public" RETURN (CHILDREN)',
                 '* LIST (\\NonExistent \\HasChildren) "/" Public'),
                # the namespace's own iteration is open meanwhile
                ('LIST (REMOTE) "" ("Public" "Public/none*") '
                 'RETURN (CHILDREN)',
                 '* LIST (\\NonExistent \\HasChildren) "/" Public'),
                ('LIST "" "Public"',
                 '* LIST (\\Noselect \\HasNoChildren) "/" Public')):
            r = c.command(cmd)
            lines = [l for l in r.untagged if " Public" in l]
            expect_eq((lines, _done_text(r)), ([want], "OK List completed."),
                      cmd)

def test_limited_reader_does_not_pretend():
    with _client(limited) as c:
        r = c.command('RLIST "" "Public/S4/*"')
        lines = [l for l in r.untagged if l.startswith("* LIST ")]
        expect(r.text.startswith("NO [UNAVAILABLE]"),
               "RLIST as a reader that slapd cuts at %d entries: expected "
               "NO [UNAVAILABLE] ... (incomplete listing), got %r after %d "
               "LIST lines" % (SIZE_LIMIT, r.tagged, len(lines)))
        expect_eq(r.text, UNAVAILABLE, "the tagged text (timing stripped)")
        r = c.command("NOOP")
        expect_ok(r, "NOOP afterwards")
    # Dovecot's log process writes asynchronously
    text = limited.wait_log(lambda t: "size.prtotal" in t)
    expect("size.prtotal" in text,
           "the log of the limited Dovecot does not tell the administrator "
           "how to let the bind DN page past the limit:\n%s" % "\n".join(
               l for l in text.splitlines() if "Error" in l)[-2000:])
    expect(re.search(r"size limit exceeded", text, re.I),
           "the log of the limited Dovecot does not name the cause "
           "(Size limit exceeded):\n%s" % "\n".join(
               l for l in text.splitlines() if "Error" in l)[-2000:])


# ----------------------------------------------------- a client that stops
# reading. Pipelined listings (RLISTS x 540 KB) are far more than the
# loopback socket buffers take (about 4 MB): an RLIST must stop at a full
# output buffer and wait for the client as Dovecot's LIST does, not queue
# the rest of the listings in memory, and must end cleanly when the client
# goes.
RLISTS = 32
WAIT = 60.0


def _imap_processes(server):
    out = set()
    for pid in procs.children_of(server.master_pid):
        try:
            with open("/proc/%d/comm" % pid) as f:
                if f.read().strip() == "imap":
                    out.add(pid)
        except OSError:
            pass
    return out


def _waits_in_ioloop(pid):
    """pid sleeps in epoll_wait (where Dovecot's ioloop waits), or, where
    the kernel does not say, is asleep at all."""
    try:
        with open("/proc/%d/wchan" % pid) as f:
            wchan = f.read().strip()
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return True     # gone: nothing to wait for
    if wchan not in ("", "0"):
        return wchan in ("do_epoll_wait", "ep_poll")
    return stat[stat.rfind(")") + 2] == "S"


def test_rlist_waits_for_a_slow_client_and_ends_when_it_goes():
    before = _imap_processes(home)
    sock = socket.socket()
    try:
        # a small receive window, so that the server's side fills
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(WAIT)
        sock.connect(("127.0.0.1", home.port))
        sock.sendall(b"l LOGIN %s %s\r\n" % (USER.encode(),
                                               PASSWORD.encode()))
        data = b""
        while b"\r\nl OK" not in data:
            chunk = sock.recv(65536)
            expect(chunk, "LOGIN: connection closed: %r" % data[-300:])
            data += chunk
        new = _imap_processes(home) - before
        expect(len(new) == 1, "the session's imap process: %r" % new)
        pid = new.pop()
        offset = len(home.log_text())
        sock.sendall(b"".join(b'r%d RLIST "" "Public/S4/*"\r\n' % i
                              for i in range(RLISTS)))
        # the first listing arrives whole; then the client stops reading
        data = b""
        while not re.search(b"\r\nr0 [^\r]*\r\n", data):
            chunk = sock.recv(65536)
            expect(chunk, "RLIST: connection closed")
            data += chunk
        listing_bytes = re.search(b"\r\nr0 [^\r]*\r\n", data).end()
        deadline = time.monotonic() + WAIT
        while not _waits_in_ioloop(pid):
            expect(time.monotonic() < deadline, "the imap process did not "
                   "return to its ioloop within %ds" % WAIT)
            time.sleep(0.05)
    finally:
        sock.close()
    deadline = time.monotonic() + WAIT
    while pid in _imap_processes(home):
        expect(time.monotonic() < deadline, "the imap process still runs "
               "%ds after its client went" % WAIT)
        time.sleep(0.05)
    text = home.wait_log(lambda t: "Disconnected" in t, offset, timeout=WAIT)
    lines = [l for l in text.splitlines() if "Disconnected" in l]
    expect(len(lines) == 1, "one disconnect line: %r" % lines)
    expect(not crash_lines(text), "crash: %r" % crash_lines(text))
    # out=N: every byte the session wrote to its output stream, sent or
    # still buffered. Had the listings not waited for the client, all of
    # them would be there. Dovecot ends the waiting commands either by
    # cancelling them (the line then names them, state=wait-output) or, if
    # it sees the failed write first, by letting each end at its first
    # write: both are fine.
    sent = int(re.search(r" out=(\d+) ", lines[0]).group(1))
    expect(sent < RLISTS * listing_bytes // 2,
           "the session wrote %d bytes of %d listings of %d bytes to a "
           "client that did not read: the listings did not wait for it: %r"
           % (sent, RLISTS, listing_bytes, lines[0]))
    m = re.search(r"\+(\d+) B out, state=wait-output\)", lines[0])
    if m:
        expect(int(m.group(1)) < 65536,
               "bytes buffered in the output stream when the client left: "
               "%s: %r" % (m.group(1), lines[0]))

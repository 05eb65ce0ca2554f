# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""The directory service (service/, doc/directory-service-protocol.md),
started by a real Dovecot master against a real slapd, spoken to over its
UNIX socket by a client written here from the protocol document.

Changes are awaited by polling STATUS until the generation moves, with a
deadline: never a fixed sleep."""

import os
import signal
import socket
import time

from common import (expect, expect_eq, ou_referrals_ldif, plugin_settings,
                    referral_entry, wait_until, Failure, REFERRALS_BASE)
from harness import ldif
from harness.dovecot import Dovecot, BUILD_SERVICE
from harness.ports import free_port
from harness.slapd import Slapd, SUFFIX

SERVER = "10 imap2.example.com"
READER = "cn=service," + SUFFIX
READER_PW = "reader-secret"
HIDDEN_DN = "cn=nomailbox," + REFERRALS_BASE
DEADLINE = 20.0

persist_ldap = None
persist_dovecot = None


# ------------------------------------------------------------- protocol
def tab_escape(value):
    return (value.replace("\001", "\0011").replace("\t", "\001t")
            .replace("\r", "\001r").replace("\n", "\001n")
            .replace("\0", "\0010"))


def tab_unescape(value):
    out = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\001" and i + 1 < len(value):
            out.append({"1": "\001", "t": "\t", "r": "\r", "n": "\n",
                        "0": "\0"}[value[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class ServiceClient:
    def __init__(self, path, handshake=True, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1
        if handshake:
            self.send_raw(b"VERSION\tmailbox-referrals-directory\t1\t0\n")
            expect_eq(self.read_fields(),
                      ["VERSION", "mailbox-referrals-directory", "1", "0"],
                      "the service's handshake")

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, *fields):
        self.send_raw(("\t".join(tab_escape(f) for f in fields) + "\n")
                      .encode("utf-8"))

    def read_line(self):
        """One line without LF, or None at EOF."""
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8")

    def read_fields(self):
        line = self.read_line()
        if line is None:
            raise Failure("the service closed the connection")
        return [tab_unescape(f) for f in line.split("\t")]

    def start(self, command, *args):
        rid = str(self.next_id)
        self.next_id += 1
        self.send(command, rid, *args)
        return rid

    def reply(self, rid):
        """(lines before the end, the OK/FAIL line), ids checked."""
        lines = []
        while True:
            fields = self.read_fields()
            expect_eq(fields[1], rid, "reply id in %r" % (fields,))
            if fields[0] in ("OK", "FAIL"):
                return lines, fields
            lines.append(fields)

    def request(self, command, *args):
        return self.reply(self.start(command, *args))

    def status(self):
        lines, end = self.request("STATUS")
        expect_eq(end[0], "OK", "STATUS answer")
        expect_eq(len(lines), 1, "STATUS lines")
        s = lines[0]
        return {"state": s[2], "mode": s[3], "entries": int(s[4]),
                "generation": int(s[5]), "changed": int(s[6])}

    def closed(self):
        """True when the service closed the connection (EOF)."""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except ConnectionResetError:
            return True


def connect(dovecot, **kwargs):
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            return ServiceClient(dovecot.service_socket, **kwargs)
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_status(dovecot, predicate, what, timeout=DEADLINE):
    """Poll STATUS until predicate(status) holds."""
    last = [None]

    def check():
        try:
            c = connect(dovecot)
            try:
                last[0] = c.status()
            finally:
                c.close()
        except (OSError, Failure):
            # a process going away (reload, kill) closes its connections
            return False
        return predicate(last[0])
    if not wait_until(check, timeout=timeout, interval=0.1):
        raise Failure("%s: not reached within %ds, last STATUS %r"
                      % (what, timeout, last[0]))
    return last[0]


def wait_change(dovecot, before, what):
    return wait_status(dovecot, lambda s: s["generation"] != before and
                       s["state"] == "synced", what)


def entry_line(rid, dn, mailbox, servers, scope="", remote=""):
    return ["E", rid, dn, mailbox, scope, remote] + list(servers)


def dn_of(mailbox):
    return "imapReferralMailbox=%s,%s" % (ldif.escape_dn_value(mailbox),
                                         REFERRALS_BASE)


def add(ldap, mailbox, servers=(SERVER,), **kwargs):
    dn, text = referral_entry(None, mailbox, list(servers), **kwargs)
    ldap.ldapadd(text)
    return dn


def reader_access():
    return ('to attrs=userPassword by anonymous auth by * none',
            'to dn.exact="%s" attrs=imapReferralMailbox by * none'
            % HIDDEN_DN,
            'to * by * read')


EVENTS_DEBUG = ("log_debug = event=mailbox_referrals_service_sync_finished "
                "OR event=mailbox_referrals_service_request_finished\n")


def make_dovecot(name, ldap, extra_config="", **settings):
    port = free_port()
    extra = {"mailbox_referrals_ldap_dn": READER,
             "mailbox_referrals_ldap_dnpass": READER_PW}
    extra.update(settings)
    return Dovecot(name, port=port, directory_service=True,
                   extra_config=extra_config,
                   plugin_settings=plugin_settings(
                       ldap, "127.0.0.1:%d" % port, **extra))


def make_slapd(**kwargs):
    ldap = Slapd(config_format="cnconfig", access=reader_access(),
                 limits=['dn.exact="%s" size=unlimited' % READER], **kwargs)
    ldap.start()
    ldap.add_reader(READER, READER_PW)
    ldap.ldapadd(ou_referrals_ldif())
    return ldap


def service_pid(dovecot):
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
            with open("/proc/%s/status" % pid) as f:
                ppid = [l for l in f if l.startswith("PPid:")]
        except OSError:
            continue
        if argv and argv[0].endswith(b"mailbox-referrals-directory") and \
                ppid and int(ppid[0].split()[1]) == dovecot.master_pid:
            out.append(int(pid))
    return out[0] if len(out) == 1 else None


# ---------------------------------------------------------------- setup
def setup_module():
    global persist_ldap, persist_dovecot
    if not os.path.exists(BUILD_SERVICE):
        raise Failure("%s not built; run ./quickstart build" % BUILD_SERVICE)
    persist_ldap = make_slapd(syncprov=True)
    add(persist_ldap, "Public/Sales", ["10 imap2.example.com",
                                       "20 imap3.example.com:1143"])
    add(persist_ldap, "Public/Projects", scope="subtree",
        remote_name="Shared/Projects")
    add(persist_ldap, "Public/Projects/Alpha")
    add(persist_ldap, "Public/Tab\tName\001x")
    add(persist_ldap, "Other/Thing")
    persist_dovecot = make_dovecot("svc", persist_ldap,
                                   extra_config=EVENTS_DEBUG)
    persist_dovecot.start()
    wait_status(persist_dovecot, lambda s: s["state"] == "synced",
                "first load")


def teardown_module():
    for obj in (persist_dovecot, persist_ldap):
        if obj is not None:
            obj.cleanup()


# ---------------------------------------------------------------- tests
def test_handshake_and_status():
    c = connect(persist_dovecot)
    s = c.status()
    expect_eq((s["state"], s["mode"], s["entries"]), ("synced", "persist", 5),
              "STATUS after the first load")
    expect(s["changed"] > 1700000000000, "changed is in milliseconds: %r" % s)
    c.close()


def test_events_selected_by_name():
    """The named events reach a log_debug filter that selects them by
    name (their messages are only logged through it)."""
    offset = persist_dovecot.log_size()
    c = connect(persist_dovecot)
    c.request("LOOKUP", "Public/Sales")
    c.request("LIST", "Public/")
    c.close()
    persist_dovecot.wait_log(
        lambda t: "LOOKUP finished: 1 entries" in t and
        "LIST finished: 4 entries" in t, offset=offset)
    persist_dovecot.wait_log(lambda t: "Load finished" in t)


def test_handshake_wrong_version_disconnects():
    c = connect(persist_dovecot, handshake=False)
    expect_eq(c.read_fields(),
              ["VERSION", "mailbox-referrals-directory", "1", "0"],
              "the service speaks first")
    c.send_raw(b"VERSION\tmailbox-referrals-directory\t2\t0\n")
    expect(c.closed(), "a major version 2 client is disconnected")


def test_lookup_exact_ancestors_none():
    c = connect(persist_dovecot)
    lines, end = c.request("LOOKUP", "Public/Sales")
    expect_eq(end, ["OK", "1"], "LOOKUP end")
    expect_eq(lines, [entry_line("1", dn_of("Public/Sales"), "Public/Sales",
                                 ["10 imap2.example.com",
                                  "20 imap3.example.com:1143"])],
              "LOOKUP Public/Sales")
    # subtree ancestor found; the mailbox-scope entry of an ancestor is not
    lines, end = c.request("LOOKUP", "Public/Projects/Alpha/Beta",
                           "Public", "Public/Projects",
                           "Public/Projects/Alpha")
    expect_eq(end, ["OK", "2"], "LOOKUP end")
    expect_eq(lines, [entry_line("2", dn_of("Public/Projects"),
                                 "Public/Projects", [SERVER],
                                 scope="subtree",
                                 remote="Shared/Projects")],
              "LOOKUP below a subtree entry")
    lines, end = c.request("LOOKUP", "Public/Nothing", "Public")
    expect_eq((lines, end), ([], ["OK", "3"]), "LOOKUP without an entry")
    lines, end = c.request("LOOKUP", "")
    expect_eq((lines, end), ([], ["OK", "4"]), "LOOKUP of the empty name")
    c.close()


def test_list_prefix_in_order():
    c = connect(persist_dovecot)
    lines, end = c.request("LIST", "Public/")
    expect_eq(end, ["OK", "1"], "LIST end")
    expect_eq([l[3] for l in lines],
              ["Public/Projects", "Public/Projects/Alpha", "Public/Sales",
               "Public/Tab\tName\001x"], "LIST Public/ names in order")
    lines, end = c.request("LIST", "")
    expect_eq(len(lines), 5, "LIST of everything")
    lines, end = c.request("LIST", "Nope/")
    expect_eq((lines, end), ([], ["OK", "3"]), "LIST of an empty prefix")
    c.close()


def test_escaping_tab_lf_soh():
    name = "Public/Tab\tName\001x"
    c = connect(persist_dovecot)
    c.send("LOOKUP", "7", name)
    raw = c.read_line()
    expect_eq(raw, "E\t7\t%s\t%s\t\t\t%s" % (
        tab_escape(dn_of(name)), "Public/Tab\001tName\0011x", SERVER),
        "raw E line of a name with TAB and \\001")
    expect_eq(c.read_fields(), ["OK", "7"], "LOOKUP end")
    # a name with LF in the request is one field, not two lines
    lines, end = c.request("LOOKUP", "Public/Line\nFeed")
    expect_eq((lines, end[0]), ([], "OK"), "LOOKUP of a name with LF")
    c.close()


def test_pipelining_answers_in_order():
    c = connect(persist_dovecot)
    ids = [c.start("LOOKUP", "Public/Sales"), c.start("STATUS"),
           c.start("LIST", "Public/Projects"), c.start("LOOKUP", "x")]
    counts = []
    for rid in ids:
        lines, end = c.reply(rid)
        expect_eq(end, ["OK", rid], "pipelined reply %s" % rid)
        counts.append(len(lines))
    expect_eq(counts, [1, 1, 2, 0], "lines per pipelined request")
    c.close()


def test_oversized_and_malformed_lines():
    other = connect(persist_dovecot)
    offset = persist_dovecot.log_size()
    big = connect(persist_dovecot)
    big.send_raw(b"LOOKUP\t1\t" + b"x" * 70000 + b"\n")
    expect(big.closed(), "a line over 64 KiB closes the connection")
    bad = connect(persist_dovecot)
    bad.send_raw(b"LOOKUP\tnot-a-number\tx\n")
    expect(bad.closed(), "a malformed id closes the connection")
    unknown = connect(persist_dovecot)
    unknown.send_raw(b"FROB\t1\n")
    expect(unknown.closed(), "an unknown command closes the connection")
    zero = connect(persist_dovecot)
    zero.send_raw(b"LOOKUP\t0\tx\n")
    expect(zero.closed(), "id 0 closes the connection")
    # the other client is unaffected
    lines, end = other.request("LOOKUP", "Public/Sales")
    expect_eq((len(lines), end[0]), (1, "OK"), "another client's LOOKUP")
    other.close()
    # each error names the peer (this process) and escapes what it sent
    me = "conn unix:client (pid=%d," % os.getpid()
    persist_dovecot.wait_log(
        lambda t: me in t and
        "Request line longer than 65536 bytes: disconnecting" in t and
        "Malformed request: LOOKUP not-a-number x" in t and
        "Unknown command: FROB" in t, offset=offset)
    # exactly the limit (65536 bytes with the LF) is accepted
    c = connect(persist_dovecot)
    head = b"LOOKUP\t9\t"
    c.send_raw(head + b"y" * (65536 - len(head) - 1) + b"\n")
    expect_eq(c.read_fields(), ["OK", "9"], "a 65536-byte line")
    c.close()


def test_persist_add_modify_rename_delete():
    ldap = persist_ldap
    c = connect(persist_dovecot)
    g = c.status()["generation"]
    dn = add(ldap, "Public/New")
    s = wait_change(persist_dovecot, g, "add seen")
    lines, _ = c.request("LOOKUP", "Public/New")
    expect_eq(lines, [entry_line(lines[0][1] if lines else "?", dn,
                                 "Public/New", [SERVER])], "added entry")

    g = s["generation"]
    ldap.ldapmodify("dn: %s\nchangetype: modify\nreplace: imapReferralServer"
                    "\nimapReferralServer: 5 imap9.example.com\n" % dn)
    s = wait_change(persist_dovecot, g, "modify seen")
    lines, _ = c.request("LOOKUP", "Public/New")
    expect_eq([l[6:] for l in lines], [["5 imap9.example.com"]],
              "modified servers")

    # rename: the DN changes, the entry (entryUUID) stays one entry
    g = s["generation"]
    ldap._client("ldapmodrdn", [dn, "cn=renamed"])
    s = wait_change(persist_dovecot, g, "rename seen")
    lines, _ = c.request("LOOKUP", "Public/New")
    expect_eq([l[2] for l in lines], ["cn=renamed," + REFERRALS_BASE],
              "the renamed entry's DN")
    expect_eq(s["entries"], 6, "entries after add and rename")

    g = s["generation"]
    ldap.ldapdelete("cn=renamed," + REFERRALS_BASE)
    s = wait_change(persist_dovecot, g, "delete seen")
    lines, end = c.request("LOOKUP", "Public/New")
    expect_eq((lines, end[0]), ([], "OK"), "deleted entry")
    expect_eq(s["entries"], 5, "entries after delete")
    c.close()


def test_problems_invalid_values_and_missing_attribute():
    ldap = persist_ldap
    c = connect(persist_dovecot)
    g = c.status()["generation"]
    long_dn = add(ldap, "Public/LongServer",
                  ["10 " + "h" * 300, "20 ok.example.com"])
    bad_dn = add(ldap, "Public/BadServer", ["not a server"])
    ldap.ldapadd(ldif.entry(HIDDEN_DN, [
        ("objectClass", "imapMailboxReferral"), ("cn", "nomailbox"),
        ("imapReferralMailbox", "Public/Hidden"),
        ("imapReferralServer", SERVER)]))
    wait_status(persist_dovecot, lambda s: s["generation"] >= g + 3,
                "three changes seen")
    lines, end = c.request("PROBLEMS")
    expect_eq(end[0], "OK", "PROBLEMS end")
    got = sorted((l[2], l[3], l[4]) for l in lines)
    expect_eq(got, [
        ("invalid-value", bad_dn,
         'Ignoring invalid imapReferralServer value "not a server": '
         "preference is not a number from 0 to 65535"),
        ("invalid-value", bad_dn, "No valid imapReferralServer value"),
        ("missing-attribute", HIDDEN_DN, "imapReferralMailbox is missing"),
        ("too-long", long_dn,
         "imapReferralServer value is longer than 256 characters"),
    ], "PROBLEMS")
    # the entry with one good server is served with it; the entry with no
    # usable server is served as it is; the hidden one is not
    lines, _ = c.request("LOOKUP", "Public/LongServer")
    expect_eq([l[6:] for l in lines], [["20 ok.example.com"]],
              "the too-long value is skipped")
    lines, _ = c.request("LOOKUP", "Public/BadServer")
    expect_eq([l[6:] for l in lines], [["not a server"]],
              "an entry without a usable server is still served")
    lines, _ = c.request("LOOKUP", "Public/Hidden")
    expect_eq(lines, [], "the entry without a mailbox is not served")
    persist_dovecot.wait_log(lambda t: "Directory entry %s" % HIDDEN_DN in t)
    g = c.status()["generation"]
    for dn in (long_dn, bad_dn, HIDDEN_DN):
        ldap.ldapdelete(dn)
    # each delete is a change, the unserved entry's too
    wait_status(persist_dovecot, lambda s: s["generation"] >= g + 3,
                "the problem entries are gone")
    lines, _ = c.request("PROBLEMS")
    expect_eq(lines, [], "PROBLEMS once the entries are deleted")
    c.close()


def test_slow_list_reader_does_not_delay_others():
    ldap = persist_ldap
    c = connect(persist_dovecot)
    g = c.status()["generation"]
    text = "".join(referral_entry(None, "Bulk/%05d-%s" % (i, "p" * 200),
                                  [SERVER])[1] + "\n" for i in range(3000))
    ldap.ldapadd(text, timeout=300)
    wait_status(persist_dovecot, lambda s: s["entries"] == 3005,
                "3000 entries added")
    slow = connect(persist_dovecot)
    rid = slow.start("LIST", "Bulk/")
    # the slow client reads nothing; another one is answered meanwhile
    fast = connect(persist_dovecot, timeout=10)
    lines, end = fast.request("LOOKUP", "Public/Sales")
    expect_eq((len(lines), end[0]), (1, "OK"),
              "LOOKUP while a LIST waits for its reader")
    fast.close()
    lines, end = slow.reply(rid)
    expect_eq((len(lines), end), (3000, ["OK", rid]), "the slow LIST")
    expect_eq(lines[0][3], "Bulk/00000-" + "p" * 200, "first listed")
    expect_eq(lines[-1][3], "Bulk/02999-" + "p" * 200, "last listed")
    slow.close()
    c.close()


def test_fast_list_reader_gets_every_listing():
    """A client that reads at once drains each batch of a LIST from the
    socket before the service looks again: the listing must still go on
    (it once stalled there until the client timed out, most often on
    the second LIST of a connection)."""
    ldap = persist_ldap
    c = connect(persist_dovecot)
    before = c.status()["entries"]
    text = "".join(referral_entry(None, "Fast/%05d-%s" % (i, "f" * 200),
                                  [SERVER])[1] + "\n" for i in range(3000))
    ldap.ldapadd(text, timeout=300)
    wait_status(persist_dovecot, lambda s: s["entries"] == before + 3000,
                "3000 entries added")
    fast = connect(persist_dovecot, timeout=10)
    for n in range(3):
        lines, end = fast.request("LIST", "Fast/")
        expect_eq((len(lines), end[0]), (3000, "OK"),
                  "LIST %d of one connection" % (n + 1))
        expect_eq(lines[-1][3], "Fast/02999-" + "f" * 200, "last listed")
    fast.close()
    c.close()


def test_service_killed_restarts_and_reloads():
    pid = wait_until(lambda: service_pid(persist_dovecot), timeout=DEADLINE)
    expect(pid, "the service process is running")
    os.kill(pid, signal.SIGKILL)
    wait_status(persist_dovecot, lambda s: s["state"] == "synced",
                "the restarted service has loaded")
    expect(service_pid(persist_dovecot) != pid, "a new process")
    c = connect(persist_dovecot)
    lines, end = c.request("LOOKUP", "Public/Sales")
    expect_eq((len(lines), end[0]), (1, "OK"), "LOOKUP after the restart")
    c.close()


def test_reload_replaces_the_process():
    """doveadm reload (SIGHUP to the master): the old process exits, a
    new one loads with the new configuration."""
    pid = wait_until(lambda: service_pid(persist_dovecot), timeout=DEADLINE)
    expect(pid, "the service process is running")
    os.kill(persist_dovecot.master_pid, signal.SIGHUP)
    wait_status(persist_dovecot, lambda s: s["state"] == "synced" and
                service_pid(persist_dovecot) not in (None, pid),
                "a new process after the reload")


def test_slapd_restart_recovers():
    wait_status(persist_dovecot, lambda s: s["state"] == "synced",
                "synced before slapd stops")
    offset = persist_dovecot.log_size()
    persist_ldap.stop()
    wait_status(persist_dovecot, lambda s: s["state"] == "stale",
                "stale while slapd is down")
    c = connect(persist_dovecot)
    lines, end = c.request("LOOKUP", "Public/Sales")
    expect_eq((len(lines), end[0]), (1, "OK"),
              "answers from the last copy while slapd is down")
    c.close()
    persist_ldap.start(create_base=False)
    wait_status(persist_dovecot, lambda s: s["state"] == "synced",
                "synced again")
    text = persist_dovecot.log_text(offset)
    expect_eq(len([l for l in text.splitlines()
                   if "Directory unreachable" in l]), 1,
              "one unreachable line:\n" + text)
    expect_eq(len([l for l in text.splitlines()
                   if "Directory reachable again" in l]), 1,
              "one reachable-again line:\n" + text)
    # and it follows changes again
    g = wait_status(persist_dovecot, lambda s: True, "status")["generation"]
    add(persist_ldap, "Public/AfterRestart")
    wait_change(persist_dovecot, g, "add after the restart")


def test_fail_before_first_load_then_poll_mode():
    """slapd without syncprov, down when the service starts."""
    ldap = Slapd(config_format="cnconfig", access=reader_access(),
                 limits=['dn.exact="%s" size=unlimited' % READER])
    dovecot = make_dovecot("svc-poll", ldap,
                           mailbox_referrals_directory_poll_interval="1s")
    try:
        ldap.configure()
        dovecot.start()
        c = connect(dovecot)
        lines, end = c.request("LOOKUP", "Public/Sales")
        expect_eq((lines, end[0]), ([], "FAIL"), "LOOKUP before a load")
        expect_eq(end[2], "The directory service has no complete copy of "
                  "the directory yet", "the FAIL text")
        lines, end = c.request("LIST", "")
        expect_eq((lines, end[0]), ([], "FAIL"), "LIST before a load")
        expect_eq(c.status()["state"], "loading", "state before a load")
        c.close()
        ldap.start()
        ldap.add_reader(READER, READER_PW)
        ldap.ldapadd(ou_referrals_ldif())
        add(ldap, "Public/Sales")
        # the service retries with a backoff of up to 30s
        s = wait_status(dovecot, lambda s: s["state"] == "synced" and
                        s["entries"] == 1, "loaded by polling", timeout=60)
        expect_eq(s["mode"], "poll", "mode without syncprov")
        add(ldap, "Public/Later")
        wait_status(dovecot, lambda s: s["entries"] == 2,
                    "the next poll sees the new entry")
        c = connect(dovecot)
        lines, end = c.request("LOOKUP", "Public/Later")
        expect_eq((len(lines), end[0]), (1, "OK"), "LOOKUP after a poll")
        c.close()
        dovecot.wait_log(lambda t: "doesn't support RFC 4533" in t)
    finally:
        dovecot.cleanup()
        ldap.cleanup()


def test_max_entries_exceeded():
    ldap = make_slapd()
    dovecot = make_dovecot("svc-max", ldap,
                           mailbox_referrals_directory_max_entries="3",
                           mailbox_referrals_directory_poll_interval="1s")
    try:
        for i in range(4):
            add(ldap, "Public/M%d" % i)
        dovecot.start()
        dovecot.wait_log(lambda t: "holds more than 3 referral entries" in t,
                         timeout=DEADLINE)
        c = connect(dovecot)
        lines, end = c.request("LOOKUP", "Public/M0")
        expect_eq((lines, end[0]), ([], "FAIL"), "LOOKUP with no copy")
        expect("more than 3 entries" in end[2], "FAIL says why: %r" % end)
        lines, end = c.request("PROBLEMS")
        expect_eq([l[2] for l in lines], ["over-limit"], "PROBLEMS")
        c.close()
        # within the limit again: loaded at the next poll
        ldap.ldapdelete(dn_of("Public/M3"))
        wait_status(dovecot, lambda s: s["state"] == "synced" and
                    s["entries"] == 3, "loaded within the limit")
        # over it again: the last copy stays
        add(ldap, "Public/M3")
        add(ldap, "Public/M4")
        offset = dovecot.log_size()
        dovecot.wait_log(lambda t: "holds more than 3" in t, offset=offset,
                         timeout=DEADLINE)
        c = connect(dovecot)
        lines, end = c.request("LOOKUP", "Public/M0")
        expect_eq((len(lines), end[0]), (1, "OK"),
                  "the previous copy is served")
        c.close()
    finally:
        dovecot.cleanup()
        ldap.cleanup()


def test_slapdconf_syncprov_config():
    """The harness's syncprov option in slapd.conf form is accepted by
    slaptest and followed by the service."""
    ldap = Slapd(config_format="slapdconf", syncprov=True)
    try:
        ldap.start()
        ldap.ldapadd(ou_referrals_ldif())
        dovecot = make_dovecot("svc-conf", ldap,
                               mailbox_referrals_ldap_dn=None)
        dovecot.plugin_settings.pop("mailbox_referrals_ldap_dn")
        dovecot.plugin_settings.pop("mailbox_referrals_ldap_dnpass")
        try:
            dovecot.start()
            s = wait_status(dovecot, lambda s: s["state"] == "synced",
                            "loaded")
            expect_eq(s["mode"], "persist", "mode with syncprov")
            add(ldap, "Public/X")
            wait_change(dovecot, s["generation"], "add seen")
        finally:
            dovecot.cleanup()
    finally:
        ldap.cleanup()


def test_invalid_setting_fails_requests_with_the_reason():
    ldap = Slapd(config_format="cnconfig")   # never started: not needed
    dovecot = make_dovecot("svc-bad", ldap,
                           mailbox_referrals_directory_max_entries="lots")
    try:
        dovecot.start()
        c = connect(dovecot)
        lines, end = c.request("LOOKUP", "Public/Sales")
        expect_eq((lines, end), ([], [
            "FAIL", "1", "The directory service is not configured: "
            "mailbox_referrals_directory_max_entries: Invalid number "
            "'lots'"]), "LOOKUP with an invalid setting")
        expect_eq(c.status()["state"], "loading", "state")
        c.close()
        dovecot.wait_log(lambda t: "Not loading the directory: "
                         "mailbox_referrals_directory_max_entries: "
                         "Invalid number 'lots'" in t)
    finally:
        dovecot.cleanup()
        ldap.cleanup()

# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""mailbox_referrals_directory = service: the imap processes ask the
directory service over its socket (doc/directory-service-protocol.md). A
small fake service, written here from the protocol document, plays the
service on the default socket in Dovecot's base_dir and records every
request, so that the tests can tell what the plugin asked: single LOOKUPs
for plain LIST, a LIST for RLIST, no connection for sessions that never
touch Public/, no cache (a changed entry is seen at once), FAIL and a
missing or restarted service. The tests against the real service come with
it (service/)."""

import os
import socket
import threading

from common import (check_plugin_built, expect, expect_eq, expect_ok,
                    expect_usable, referral_response, Failure, PASSWORD,
                    USER)
from harness.dovecot import Dovecot
from harness.imap import ImapClient, strip_timing
from harness.ports import free_port

REMOTE = ("127.0.0.1", 10998)   # only written into URLs, never contacted
OTHER = ("127.0.0.1", 10997)
UNAVAILABLE = "NO [UNAVAILABLE] Referral directory is unavailable, " \
    "try again later"

_ESCAPES = {"\x01": "\x011", "\t": "\x01t", "\r": "\x01r", "\n": "\x01n",
            "\x00": "\x010"}
_UNESCAPES = {"1": "\x01", "t": "\t", "r": "\r", "n": "\n", "0": "\x00"}


def _escape(value):
    return "".join(_ESCAPES.get(c, c) for c in value)


def _unescape(value):
    out, i = [], 0
    while i < len(value):
        if value[i] == "\x01" and i + 1 < len(value):
            out.append(_UNESCAPES.get(value[i + 1], value[i + 1]))
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


class FakeService:
    """entries: mailbox -> (servers, scope). mode: "answer", "fail"."""

    def __init__(self, path):
        self.path = path
        self.entries = {}
        self.mode = "answer"
        self.requests = []
        self.connections = 0
        self.conns = []
        self.lock = threading.Lock()
        self.sock = None

    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.sock.listen(16)
        threading.Thread(target=self._accept, args=(self.sock,),
                         daemon=True).start()

    def stop(self):
        """Stop listening and close every connection (a crash)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            os.unlink(self.path)
        self.drop_connections()

    def drop_connections(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def _accept(self, sock):
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _serve(self, conn):
        f = conn.makefile("rwb", buffering=0)
        try:
            first = f.readline().decode()
            if not first.startswith("VERSION\tmailbox-referrals-directory\t1\t"):
                return
            conn.sendall(b"VERSION\tmailbox-referrals-directory\t1\t0\n")
            for raw in f:
                args = [_unescape(a) for a in
                        raw.decode("utf-8", "surrogateescape")
                        .rstrip("\n").split("\t")]
                with self.lock:
                    self.requests.append(tuple(args))
                conn.sendall(self._answer(args).encode(
                    "utf-8", "surrogateescape"))
        except (OSError, ValueError):
            pass

    def _entry_lines(self, rid, names):
        lines = []
        for name in names:
            servers, scope = self.entries[name]
            fields = ["E", rid, "cn=" + name, name, scope or "", ""] + \
                ["10 %s:%d" % s for s in servers]
            lines.append("\t".join(_escape(f) for f in fields) + "\n")
        return "".join(lines)

    def _answer(self, args):
        cmd, rid = args[0], args[1]
        if self.mode == "fail":
            return "FAIL\t%s\tno complete copy of the directory yet\n" % rid
        if cmd == "LOOKUP":
            name, ancestors = args[2], args[3:]
            names = [m for m, (s, scope) in sorted(self.entries.items())
                     if m == name or
                     (m in ancestors and scope == "subtree")]
        elif cmd == "LIST":
            names = [m for m in sorted(self.entries)
                     if m.startswith(args[2])]
        else:
            return "FAIL\t%s\tunknown command\n" % rid
        return self._entry_lines(rid, names) + "OK\t%s\n" % rid

    def take_requests(self):
        with self.lock:
            r, self.requests = self.requests, []
        return r


home = None
service = None


def setup_module():
    global home, service
    check_plugin_built()
    port = free_port()
    home = Dovecot("service-client", port=port, plugin_settings={
        "mailbox_referrals_namespaces": "Public/",
        "mailbox_referrals_self": "127.0.0.1:%d" % port,
        "mailbox_referrals_directory": "service",
        "mailbox_referrals_directory_timeout": "2s",
    })
    home.start()
    # the default socket: mailbox-referrals-directory in base_dir
    service = FakeService(os.path.join(home.base_dir,
                                       "mailbox-referrals-directory"))
    service.entries = {
        "Public/Remote": ([REMOTE], None),
        "Public/Moving": ([REMOTE], None),
        "Public/Tree": ([REMOTE], "subtree"),
    }
    service.start()
    home.create_public_maildir("Here")
    # a local mailbox the directory places elsewhere: plain LIST hides it
    home.create_public_maildir("Remote")


def teardown_module():
    if service is not None:
        service.stop()
    if home is not None:
        home.cleanup()


def _client():
    c = ImapClient(home.port)
    expect_ok(c.login(USER, PASSWORD), "LOGIN")
    return c


def test_session_outside_public_never_connects():
    before = service.connections
    with _client() as c:
        expect_ok(c.command("SELECT INBOX"), "SELECT INBOX")
        expect_ok(c.command('LIST "" "INBOX"'), "LIST INBOX")
        expect_ok(c.command("STATUS INBOX (MESSAGES)"), "STATUS INBOX")
        c.logout()
    expect_eq(service.connections, before, "connections to the service")


def test_remote_local_and_subtree():
    service.take_requests()
    with _client() as c:
        r = c.command("SELECT Public/Remote")
        expect_eq(strip_timing(r.text),
                  referral_response([REMOTE], "Public/Remote"),
                  "SELECT Public/Remote")
        r = c.command("SELECT Public/Tree/Below")
        expect_eq(strip_timing(r.text),
                  referral_response([REMOTE], "Public/Tree/Below"),
                  "SELECT below a subtree entry")
        expect_ok(c.command("SELECT Public/Here"), "SELECT Public/Here")
    # (what lib-storage lists after opening Public/Here follows: one
    # LOOKUP per local name, see test_plain_list_looks_up_local_names_only)
    expect_eq(service.take_requests()[:3], [
        ("LOOKUP", "1", "Public/Remote", "Public"),
        ("LOOKUP", "2", "Public/Tree/Below", "Public", "Public/Tree"),
        ("LOOKUP", "3", "Public/Here", "Public"),
    ], "requests")


def test_changed_entry_seen_at_once():
    service.entries["Public/Moving"] = ([REMOTE], None)
    with _client() as c:
        r = c.command("SELECT Public/Moving")
        expect_eq(strip_timing(r.text),
                  referral_response([REMOTE], "Public/Moving"),
                  "SELECT before the change")
        service.entries["Public/Moving"] = ([OTHER], None)
        # no per-session cache with the service: the next command asks
        r = c.command("SELECT Public/Moving")
        expect_eq(strip_timing(r.text),
                  referral_response([OTHER], "Public/Moving"),
                  "SELECT after the change")


def test_plain_list_looks_up_local_names_only():
    with _client() as c:
        service.take_requests()
        r = c.command('LIST "" "Public/*"')
        expect_ok(r, "LIST")
        expect_eq(sorted(r.untagged), [
            '* LIST (\\HasNoChildren) "/" Public/Here',
        ], "LIST Public/*")
    reqs = service.take_requests()
    expect_eq(sorted((q[0], q[2]) for q in reqs),
              [("LOOKUP", "Public/Here"), ("LOOKUP", "Public/Remote")],
              "requests of a plain LIST")


def test_rlist_lists_the_namespace():
    with _client() as c:
        service.take_requests()
        r = c.command('RLIST "" "Public/*"')
        expect_ok(r, "RLIST")
        expect_eq(sorted(r.untagged), [
            '* LIST () "/" Public/Tree',
            '* LIST (\\HasNoChildren) "/" Public/Here',
            '* LIST (\\HasNoChildren) "/" Public/Moving',
            '* LIST (\\HasNoChildren) "/" Public/Remote',
        ], "RLIST Public/*")
    reqs = service.take_requests()
    expect(("LIST", "Public") in [(q[0], q[2]) for q in reqs],
           "RLIST asks LIST Public: %r" % reqs)


def test_fail_is_unavailable():
    with _client() as c:
        service.mode = "fail"
        try:
            r = c.command("SELECT Public/Remote")
        finally:
            service.mode = "answer"
        expect_eq(strip_timing(r.text), UNAVAILABLE, "SELECT on FAIL")
        expect_usable(c, "after FAIL")
        r = c.command("SELECT Public/Remote")
        expect_eq(strip_timing(r.text),
                  referral_response([REMOTE], "Public/Remote"),
                  "SELECT once the service answers again")
    text = home.log_text()
    expect("Directory service failed: no complete copy of the directory yet"
           in text, "the service's error in the log")


def test_restarted_service_reconnects():
    with _client() as c:
        r = c.command("SELECT Public/Remote")
        expect(r.text.startswith("NO [REFERRAL "), "before: %r" % r.text)
        before = service.connections
        service.drop_connections()
        r = c.command("SELECT Public/Remote")
        expect_eq(strip_timing(r.text),
                  referral_response([REMOTE], "Public/Remote"),
                  "SELECT after the service dropped the connection")
        expect_eq(service.connections, before + 1, "connections")


def test_service_not_running_is_unavailable():
    with _client() as c:
        service.stop()
        try:
            r = c.command("SELECT Public/Here")
            expect_eq(strip_timing(r.text), UNAVAILABLE,
                      "SELECT of a local name without the service")
            r = c.command("CREATE Public/NewOne")
            expect_eq(strip_timing(r.text), UNAVAILABLE,
                      "CREATE without the service")
            expect_usable(c, "without the service")
        finally:
            service.start()
        expect_ok(c.command("SELECT Public/Here"),
                  "SELECT once the service is back")

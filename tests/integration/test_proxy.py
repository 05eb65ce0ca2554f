# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""Issue 7: the home server proxies remote mailboxes for referral-unaware
sessions (mailbox_referrals_proxy = unaware) and still refers the sessions
that have shown referral support.

Servers of this module's own:

  slapd   ou=referrals (home's and Y's view) and ou=xview (X's view)
  home    mailbox_referrals_proxy = unaware, master user proxymaster
  X, Y    remote servers: a master passdb with proxymaster, Dovecot's acl
          plugin (vfile, a global ACL file) with acl_user = %u, so that a
          master login as alice gets alice's rights; the same proxy
          settings as home (so that they never proxy a proxy's session)

  ou=referrals (home, Y)             ou=xview (X)
    Public/Sales     X                 Public/Sales  X (itself)
    Public/Orders    X                 Public/Loop   home
    Public/ReadOnly  X (alice: lr)
    Public/Old       X, remote name Public/Archive
    Public/Eng       Y, subtree (Public/Eng/Backend below it)
    Public/Rep       10 a port nobody listens on, 20 Y
    Public/Loop      X

The messages of each mailbox are seeded over IMAP directly on its server
(ReadOnly by bob, who has every right); alice's INBOX on home is the local
side of the COPY/MOVE matrix.

Two parts:

- test_setup_*: the remote servers' side alone, without any proxy code:
  the master-user login (LOGIN user*master and AUTHENTICATE PLAIN with an
  authorization id), the user's rights enforced in a master login (and,
  as the reason for acl_user, the master's rights without it).
- every other test goes through the home server and needs the proxy core
  (plugin/referral-proxy*.c, issue 7). Until it is built they fail: the
  home server then answers remote mailboxes with referrals. Each compares
  the proxied reply with the remote server's own reply to the same command
  in a direct session, or asserts the exact reply, and checks the effect
  on the remote server in a direct session.
"""

import base64
import imaplib
import re
import threading

from common import (expect, expect_eq, expect_ok, expect_tagged,
                    expect_usable, log_barrier, ou_referrals_ldif,
                    plugin_settings, proxy_settings, referral_entry,
                    referral_response, stop_servers, wait_until,
                    check_plugin_built, Failure, PASSWORD, USER)
from harness import ldif
from harness.dovecot import (Dovecot, PROXY_MASTER_USER,
                             PROXY_MASTER_PASSWORD)
from harness.imap import ImapClient, Literal, message, quote
from harness.ports import free_port
from harness.slapd import Slapd, SUFFIX

XVIEW_BASE = "ou=xview," + SUFFIX

# Mailboxes of the public namespace, created on disk before the servers
# start (alice may not create at the namespace root).
X_BOXES = ("Sales", "Orders", "ReadOnly", "Archive")
Y_BOXES = ("Eng", "Eng/Backend", "Rep")

# The remote servers' global ACL file: alice has every right but on
# Public/ReadOnly (lookup and read only); bob, who seeds ReadOnly, has
# every right. The patterns do not overlap for alice: two lines matching
# one mailbox for the same user add up their rights.
ALL = "lrwstipekxa"
REMOTE_ACL = [
    "Public/Sales* user=alice " + ALL,
    "Public/Orders* user=alice " + ALL,
    "Public/Archive* user=alice " + ALL,
    "Public/Eng* user=alice " + ALL,
    "Public/Rep* user=alice " + ALL,
    "Public/Loop* user=alice " + ALL,
    "Public/ReadOnly user=alice lr",
    "Public/* user=bob " + ALL,
]


def thread_message(subject, msgid, body, in_reply_to=None,
                   date="Thu, 01 Jan 2026 12:00:00 +0000"):
    """An RFC 5322 message with its own Message-ID (and In-Reply-To), so
    that THREAD has something to link."""
    head = ("From: sales@example.com\r\nTo: alice@example.com\r\n"
            "Subject: %s\r\nDate: %s\r\nMessage-ID: <%s@example.com>\r\n"
            % (subject, date, msgid))
    if in_reply_to:
        head += ("In-Reply-To: <%s@example.com>\r\n"
                 "References: <%s@example.com>\r\n"
                 % (in_reply_to, in_reply_to))
    return head + "\r\n" + body + "\r\n"


MULTIPART = (
    "From: sales@example.com\r\nTo: alice@example.com\r\n"
    "Subject: Sales attachment\r\nDate: Fri, 02 Jan 2026 09:00:00 +0000\r\n"
    "Message-ID: <sales-attachment@example.com>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
    "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    "Caf=C3=A9 price list attached.\r\n"
    "--b1\r\nContent-Type: application/octet-stream; name=\"p.bin\"\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\n"
    + base64.b64encode(bytes(range(256))).decode() + "\r\n"
    "--b1--\r\n")

SEEDS = {
    # server key -> [(mailbox, message, seeding user)]
    "x": [
        ("Public/Sales", thread_message("Sales one", "sales-1",
                                        "First sales message."), USER),
        ("Public/Sales", thread_message(
            "Re: Sales one", "sales-2", "A reply.", in_reply_to="sales-1",
            date="Thu, 01 Jan 2026 13:00:00 +0000"), USER),
        ("Public/Sales", MULTIPART, USER),
        ("Public/Orders", message("Order 1", "Seeded on X in Orders"), USER),
        ("Public/Archive", message("Archived 1", "Seeded on X in Archive"),
         USER),
        ("Public/ReadOnly", message("Read only 1",
                                    "Seeded on X in ReadOnly"), "bob"),
    ],
    "y": [
        ("Public/Eng", message("Eng 1", "Seeded on Y in Eng"), USER),
        ("Public/Eng/Backend", message("Backend 1",
                                       "Seeded on Y in Eng/Backend"), USER),
        ("Public/Rep", message("Rep 1", "Seeded on Y in Rep"), USER),
    ],
    "home": [
        ("INBOX", message("Inbox 1", "Seeded on home in INBOX"), USER),
    ],
}


class ProxyEnv:
    def __init__(self):
        check_plugin_built()
        self.ldap = None
        self.home = self.x = self.y = None
        self.port_home, self.port_x, self.port_y, self.port_dead = (
            free_port(), free_port(), free_port(), free_port())

    def server(self, key):
        return {"home": self.home, "x": self.x, "y": self.y}[key]

    def addr(self, port):
        return "127.0.0.1:%d" % port

    def entries(self):
        x = ["10 " + self.addr(self.port_x)]
        y = ["10 " + self.addr(self.port_y)]
        return [
            ("Public/Sales", x, {}),
            ("Public/Orders", x, {}),
            ("Public/ReadOnly", x, {}),
            ("Public/Old", x, {"remote_name": "Public/Archive"}),
            ("Public/Eng", y, {"scope": "subtree"}),
            ("Public/Rep", ["10 " + self.addr(self.port_dead),
                            "20 " + self.addr(self.port_y)], {}),
            ("Public/Loop", x, {}),
        ]

    def start(self):
        self.ldap = Slapd(config_format="cnconfig")
        self.ldap.start()
        self.ldap.ldapadd(ou_referrals_ldif())
        for mailbox, servers, opts in self.entries():
            self.ldap.ldapadd(referral_entry(None, mailbox, servers,
                                             **opts)[1])
        # X's own view of the directory: it serves Public/Sales itself
        # and places Public/Loop back on home (the directories disagree).
        self.ldap.ldapadd(ldif.entry(XVIEW_BASE, [
            ("objectClass", "organizationalUnit"), ("ou", "xview")]))
        for mailbox, port in (("Public/Sales", self.port_x),
                              ("Public/Loop", self.port_home)):
            dn = "imapReferralMailbox=%s,%s" % (
                ldif.escape_dn_value(mailbox), XVIEW_BASE)
            self.ldap.ldapadd(ldif.entry(dn, [
                ("objectClass", "imapMailboxReferral"),
                ("imapReferralMailbox", mailbox),
                ("imapReferralServer", ["10 " + self.addr(port)])]))

        masters = {PROXY_MASTER_USER: PROXY_MASTER_PASSWORD}

        def settings(port, **extra):
            s = plugin_settings(self.ldap, self.addr(port), **extra)
            s.update(proxy_settings())
            return s

        self.home = Dovecot("proxy-home", port=self.port_home,
                            plugin_settings=settings(self.port_home),
                            master_users=masters)
        self.x = Dovecot("proxy-x", port=self.port_x,
                         plugin_settings=settings(
                             self.port_x,
                             mailbox_referrals_ldap_base=XVIEW_BASE),
                         master_users=masters, acl=REMOTE_ACL)
        self.y = Dovecot("proxy-y", port=self.port_y,
                         plugin_settings=settings(self.port_y),
                         master_users=masters, acl=REMOTE_ACL)
        for d, boxes in ((self.x, X_BOXES), (self.y, Y_BOXES)):
            d.write_config()
            for box in boxes:
                d.create_public_maildir(box)
        for d in (self.home, self.x, self.y):
            d.start()
        self.seed()
        return self

    def seed(self):
        for key, seeds in SEEDS.items():
            for mailbox, msg, user in seeds:
                with self.direct(key, user) as c:
                    expect_ok(c.append(mailbox, msg),
                              "seed: APPEND to %s on %s as %s"
                              % (mailbox, key, user))

    def stop(self):
        stop_servers(self.home, self.x, self.y, self.ldap)

    def direct(self, key, user=USER):
        """A session on one server, logged in as user (a session on home
        this way is a proxied one: it never sent RLIST)."""
        c = ImapClient(self.server(key).port)
        r = c.login(user, PASSWORD)
        if r.status != "OK":
            c.close()
            raise Failure("LOGIN %s on %s: %r" % (user, key, r.tagged))
        return c

    def proxied(self):
        """An unaware session on home: alice, no RLIST, RLSUB or
        LIST (REMOTE) sent."""
        return self.direct("home")


_env = None


def setup_module():
    global _env
    e = ProxyEnv()
    try:
        e.start()
    except BaseException:
        e.stop()
        raise
    _env = e


def teardown_module():
    if _env is not None:
        _env.stop()


def env():
    if _env is None:
        raise Failure("the module's servers did not start")
    return _env


# --------------------------------------------------------------- helpers
def status(key, mailbox, items="MESSAGES UIDNEXT UIDVALIDITY"):
    """STATUS items of mailbox in a direct session on server key, as a
    dict of ints."""
    with env().direct(key) as c:
        r = c.command("STATUS %s (%s)" % (quote(mailbox), items))
        expect_ok(r, "STATUS %s on %s" % (mailbox, key))
        return parse_status(r.untagged, mailbox)


def parse_status(untagged, mailbox):
    for line in untagged:
        if line.startswith("* STATUS "):
            inner = line[line.rindex("(") + 1:line.rindex(")")].split()
            return {inner[i]: int(inner[i + 1])
                    for i in range(0, len(inner), 2)}
    raise Failure("no STATUS line for %s in %r" % (mailbox, untagged))


def count(key, mailbox):
    return status(key, mailbox, "MESSAGES")["MESSAGES"]


def search_subject(key, mailbox, subject):
    """UIDs of the messages of mailbox on server key whose Subject holds
    subject (a direct, read-only session)."""
    with env().direct(key) as c:
        expect_ok(c.command("EXAMINE " + quote(mailbox)),
                  "EXAMINE %s on %s" % (mailbox, key))
        r = c.command("UID SEARCH SUBJECT " + quote(subject))
        expect_ok(r, "UID SEARCH on %s" % key)
        return search_result(r)


def search_result(r):
    for line in r.untagged:
        if line.startswith("* SEARCH"):
            return [int(n) for n in line.split()[2:]]
    raise Failure("no SEARCH line in %r" % r.untagged)


def both(cmd, mailbox, key, select="EXAMINE"):
    """cmd's reply in a proxied session on home and in a direct session on
    server key, both with mailbox (the name on that server) opened by
    select: (proxied Response, direct Response)."""
    e = env()
    with e.proxied() as p, e.direct(key) as d:
        expect_ok(p.command("%s %s" % (select, quote(mailbox))),
                  "proxied %s %s" % (select, mailbox))
        expect_ok(d.command("%s %s" % (select, quote(mailbox))),
                  "%s %s on %s" % (select, mailbox, key))
        rp = p.command(cmd)
        rd = d.command(cmd)
        expect_usable(p, "proxied " + cmd)
        return rp, rd


def expect_same(cmd, mailbox, key, select="EXAMINE"):
    """cmd answers the same untagged lines and tagged text through the
    proxy as on the remote server itself."""
    rp, rd = both(cmd, mailbox, key, select)
    expect_eq(rp.untagged, rd.untagged,
              "%s in %s: untagged lines through the proxy vs on %s"
              % (cmd, mailbox, key))
    expect_eq(rp.text, rd.text, "%s in %s: tagged reply through the proxy "
              "vs on %s" % (cmd, mailbox, key))
    expect_ok(rp, "proxied " + cmd)
    return rp


def select_codes(untagged):
    """{code: value} of the EXISTS count and UIDVALIDITY / UIDNEXT codes
    of a SELECT or EXAMINE reply."""
    out = {}
    for line in untagged:
        m = re.match(r"\* (\d+) EXISTS$", line)
        if m:
            out["EXISTS"] = int(m.group(1))
        m = re.match(r"\* OK \[(UIDVALIDITY|UIDNEXT) (\d+)\]", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


# ====================================== part 1: the remote servers alone
def _plain_token(authzid, authcid, password):
    return base64.b64encode(("%s\0%s\0%s" % (authzid, authcid, password))
                            .encode()).decode()


def test_setup_master_login_forms():
    """X accepts the proxy's master user logging in as alice in both
    forms Dovecot knows, and the session is alice's."""
    e = env()
    for what, send in (
            ("LOGIN alice*proxymaster",
             lambda c: c.login("%s*%s" % (USER, PROXY_MASTER_USER),
                               PROXY_MASTER_PASSWORD)),
            ("AUTHENTICATE PLAIN alice/proxymaster",
             lambda c: c.command("AUTHENTICATE PLAIN " + _plain_token(
                 USER, PROXY_MASTER_USER, PROXY_MASTER_PASSWORD)))):
        with ImapClient(e.x.port) as c:
            r = send(c)
            expect_ok(r, what)
            expect(r.text.endswith("] Logged in"), "%s: %r" % (what, r.text))
            # the session is alice's: her INBOX namespace, her rights
            r = c.command("MYRIGHTS Public/Sales")
            expect_eq(r.untagged, ["* MYRIGHTS Public/Sales "
                                   "lrwstipekxacd"], what + ": MYRIGHTS")
            expect_usable(c, what)


def test_setup_master_login_gets_users_rights():
    """A master login as alice may not append to Public/ReadOnly, where
    alice has only lookup and read; nothing is stored."""
    e = env()
    before = count("x", "Public/ReadOnly")
    with ImapClient(e.x.port) as c:
        expect_ok(c.login("%s*%s" % (USER, PROXY_MASTER_USER),
                          PROXY_MASTER_PASSWORD), "master login")
        r = c.command("MYRIGHTS Public/ReadOnly")
        expect_eq(r.untagged, ["* MYRIGHTS Public/ReadOnly lr"],
                  "MYRIGHTS Public/ReadOnly in a master login as alice")
        r = c.append("Public/ReadOnly", message("Not allowed", "x"))
        expect_tagged(r, "NO [NOPERM] Permission denied",
                      "APPEND to Public/ReadOnly in a master login")
        r = c.command("SELECT Public/ReadOnly")
        expect_tagged(r, "OK [READ-ONLY] Select completed",
                      "SELECT Public/ReadOnly in a master login")
        expect_usable(c)
    expect_eq(count("x", "Public/ReadOnly"), before,
              "messages in Public/ReadOnly on X")


def test_setup_without_acl_user_the_master_rights_apply():
    """Why the remote servers set acl_user = %u: without it Dovecot 2.3
    checks the master user's rights in a master login (here the master
    may append to Public/ReadOnly, and so the proxied alice could)."""
    d = Dovecot("proxy-noacluser", master_users={
        PROXY_MASTER_USER: PROXY_MASTER_PASSWORD}, with_plugin=False,
        acl=["Public/ReadOnly user=alice lr",
             "Public/ReadOnly user=%s %s" % (PROXY_MASTER_USER, ALL)],
        acl_as_login_user=False)
    try:
        d.write_config()
        d.create_public_maildir("ReadOnly")
        d.start()
        with ImapClient(d.port) as c:
            expect_ok(c.login(USER, PASSWORD), "alice's own login")
            r = c.append("Public/ReadOnly", message("Alice", "x"))
            expect_tagged(r, "NO [NOPERM] Permission denied",
                          "APPEND as alice herself")
        with ImapClient(d.port) as c:
            expect_ok(c.login("%s*%s" % (USER, PROXY_MASTER_USER),
                              PROXY_MASTER_PASSWORD), "master login")
            r = c.command("MYRIGHTS Public/ReadOnly")
            expect_eq(r.untagged, ["* MYRIGHTS Public/ReadOnly "
                                   "lrwstipekxacd"],
                      "MYRIGHTS without acl_user: the master's rights")
            r = c.append("Public/ReadOnly", message("Master", "x"))
            expect(r.status == "OK", "APPEND in a master login without "
                   "acl_user: expected OK (the master's rights), got %r"
                   % r.tagged)
    finally:
        stop_servers(d)


def test_setup_seeds_on_remote_servers():
    for key, seeds in SEEDS.items():
        want = {}
        for mailbox, _, _ in seeds:
            want[mailbox] = want.get(mailbox, 0) + 1
        for mailbox, n in want.items():
            expect_eq(count(key, mailbox), n,
                      "messages seeded in %s on %s" % (mailbox, key))


def test_setup_master_wrong_password_refused():
    """Last in the module: Dovecot delays the next logins from an address
    after a failed one (the auth penalty), which would slow the tests
    after it."""
    e = env()
    with ImapClient(e.x.port) as c:
        r = c.login("%s*%s" % (USER, PROXY_MASTER_USER), "wrong")
        expect_tagged(r, "NO [AUTHENTICATIONFAILED] Authentication failed.",
                      "master login with a wrong password")
    with ImapClient(e.x.port) as c:
        # the master user is no mail user of its own
        r = c.login(PROXY_MASTER_USER, PROXY_MASTER_PASSWORD)
        expect_tagged(r, "NO [AUTHENTICATIONFAILED] Authentication failed.",
                      "the master user logging in as itself")

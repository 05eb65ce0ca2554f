# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""MAILBOX-REFERRALS is announced after login (RFC 2193 §3)."""

import re

from common import env, expect, expect_ok, PASSWORD, USER
from harness.imap import ImapClient

CAP = "MAILBOX-REFERRALS"


def _code_caps(tagged):
    m = re.search(r"\[CAPABILITY ([^\]]*)\]", tagged)
    return m.group(1).split() if m else None


def test_capability_command_lists_it():
    e = env()
    with e.client() as c:
        r = c.command("CAPABILITY")
        expect_ok(r, "CAPABILITY")
        caps = [l for l in r.untagged if l.startswith("* CAPABILITY ")]
        expect(len(caps) == 1, "one * CAPABILITY line expected: %r" % r.untagged)
        expect(CAP in caps[0].split()[2:],
               "%s not in %r" % (CAP, caps[0]))


def test_login_ok_carries_it():
    e = env()
    with ImapClient(e.a.port) as c:
        r = c.login(USER, PASSWORD)
        expect_ok(r, "LOGIN")
        caps = _code_caps(r.tagged)
        expect(caps is not None, "LOGIN OK has no [CAPABILITY ...]: %r"
               % r.tagged)
        expect(CAP in caps, "%s not in LOGIN's capability code: %r"
               % (CAP, r.tagged))


def test_authenticate_ok_carries_it():
    e = env()
    with ImapClient(e.a.port) as c:
        r = c.authenticate_plain(USER, PASSWORD)
        expect_ok(r, "AUTHENTICATE PLAIN")
        caps = _code_caps(r.tagged)
        expect(caps is not None, "AUTHENTICATE OK has no [CAPABILITY ...]: %r"
               % r.tagged)
        expect(CAP in caps, "%s not in AUTHENTICATE's capability code: %r"
               % (CAP, r.tagged))


def test_every_server_announces_it():
    e = env()
    for name in ("b", "c"):
        with e.client(name) as c:
            r = c.command("CAPABILITY")
            expect(any(CAP in l.split() for l in r.untagged),
                   "%s missing on %s: %r" % (CAP, name.upper(), r.untagged))

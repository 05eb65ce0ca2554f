# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""The bind password never reaches a log: not when lookups work, not when
the bind fails, not when the directory is down, not with mail_debug on.
Also: a read-only reader account is all the plugin needs. Own slapd and
Dovecot instances."""

from common import (expect, expect_tagged, expect_usable, log_lines, login,
                    own_directory, own_dovecot, referral_response,
                    stop_servers)
from harness.slapd import SUFFIX

REMOTE = ("127.0.0.1", 10998)   # only written into URLs, never contacted
READER = "cn=referral-reader," + SUFFIX
READER_PW = "Xq7-bind-pw-never-logged"
ldap = None
servers = []


def _server(name, dnpass):
    return own_dovecot(name, ldap, registry=servers, debug=True,
                       mailbox_referrals_ldap_dn=READER,
                       mailbox_referrals_ldap_dnpass=dnpass)


def setup_module():
    global ldap
    ldap = own_directory(("Public/Sales", "Public/Down"),
                         ["10 %s:%d" % REMOTE])
    ldap.add_reader(READER, READER_PW)


def teardown_module():
    stop_servers(*servers + [ldap])


def _expect_no_password(d, password, what):
    """Once the session has ended (its last log line is written), no line
    of the log holds password. Dovecot's log process writes after the
    replies, so looking earlier could miss a line."""
    text = d.wait_log(lambda t: log_lines(t, "imap(alice)", "Disconnected"))
    expect(log_lines(text, "imap(alice)", "Disconnected"),
           "%s: the session's end never reached the log:\n%s"
           % (what, text[-2000:]))
    expect(password not in text,
           "%s: the bind password appears in the log:\n%s"
           % (what, "\n".join(l for l in text.splitlines() if password in l)))


def test_reader_account_refers_and_password_not_logged():
    d = _server("secret-ok", READER_PW)
    with login(d) as c:
        expect_tagged(c.command("SELECT Public/Sales"),
                      referral_response([REMOTE], "Public/Sales"),
                      "SELECT Public/Sales bound as a reader")
        r = c.command('RLIST "" "Public/*"')
        expect(any(l.endswith(" Public/Sales") for l in r.untagged),
               "RLIST as a reader: %r" % (r.untagged,))
    _expect_no_password(d, READER_PW, "working binds with mail_debug")


def test_wrong_password_is_unavailable_and_not_logged():
    wrong = "Zz9-wrong-pw-never-logged"
    d = _server("secret-bad", wrong)
    with login(d) as c:
        r = c.command("SELECT Public/Sales")
        expect(r.text.startswith("NO [UNAVAILABLE]"),
               "SELECT with a wrong bind password: %r" % r.tagged)
        expect_usable(c, "after a failed bind")
    # Dovecot's log process writes asynchronously
    text = d.wait_log(lambda t: "Invalid credentials" in t)
    expect("Invalid credentials" in text and READER in text,
           "the failed bind is logged with its DN and reason:\n%s"
           % text[-2000:])
    _expect_no_password(d, wrong, "failed bind")


def test_directory_down_password_not_logged():
    d = _server("secret-down", READER_PW)
    ldap.stop()
    try:
        with login(d) as c:
            r = c.command("SELECT Public/Down")
            expect(r.text.startswith("NO [UNAVAILABLE]"),
                   "SELECT with the directory down: %r" % r.tagged)
    finally:
        ldap.start(create_base=False)
    _expect_no_password(d, READER_PW, "directory down")

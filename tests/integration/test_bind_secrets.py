# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""The bind password never reaches a log: not when lookups work, not when
the bind fails, not when the directory is down, not with mail_debug on.
Also: a read-only reader account is all the plugin needs. Own slapd and
Dovecot instances."""

from common import (check_plugin_built, expect, expect_tagged, expect_usable,
                    ou_referrals_ldif, plugin_settings, referral_entry,
                    referral_response, Failure, PASSWORD, USER)
from harness.dovecot import Dovecot
from harness.imap import ImapClient
from harness.ports import free_port
from harness.slapd import Slapd, SUFFIX

REMOTE = ("127.0.0.1", 10998)   # only written into URLs, never contacted
READER = "cn=referral-reader," + SUFFIX
READER_PW = "Xq7-bind-pw-never-logged"
ldap = None
servers = []


def _server(name, dnpass):
    port = free_port()
    d = Dovecot(name, port=port, debug=True, plugin_settings=plugin_settings(
        ldap, "127.0.0.1:%d" % port,
        mailbox_referrals_ldap_dn=READER,
        mailbox_referrals_ldap_dnpass=dnpass))
    servers.append(d)
    d.start()
    return d


def setup_module():
    global ldap
    check_plugin_built()
    ldap = Slapd(config_format="cnconfig")
    ldap.start()
    ldap.ldapadd(ou_referrals_ldif())
    ldap.add_reader(READER, READER_PW)
    for m in ("Public/Sales", "Public/Down"):
        ldap.ldapadd(referral_entry(None, m, ["10 %s:%d" % REMOTE])[1])


def teardown_module():
    for d in servers:
        d.cleanup()
    if ldap is not None:
        ldap.cleanup()


def _login(d):
    c = ImapClient(d.port)
    r = c.login(USER, PASSWORD)
    if r.status != "OK":
        raise Failure("LOGIN on %s: %r" % (d.name, r.tagged))
    return c


def _expect_no_password(d, password, what):
    text = d.log_text()
    expect(password not in text,
           "%s: the bind password appears in the log:\n%s"
           % (what, "\n".join(l for l in text.splitlines() if password in l)))


def test_reader_account_refers_and_password_not_logged():
    d = _server("secret-ok", READER_PW)
    with _login(d) as c:
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
    with _login(d) as c:
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
        with _login(d) as c:
            r = c.command("SELECT Public/Down")
            expect(r.text.startswith("NO [UNAVAILABLE]"),
                   "SELECT with the directory down: %r" % r.tagged)
    finally:
        ldap.start(create_base=False)
    _expect_no_password(d, READER_PW, "directory down")

# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""The directory goes away (stopped, or frozen with SIGSTOP) in the middle
of a session, then comes back. Uses its own slapd and Dovecot, so the
shared deployment is not disturbed."""

import time

from common import (check_plugin_built, expect, expect_eq, expect_tagged,
                    expect_usable, log_lines, ou_referrals_ldif,
                    plugin_settings, referral_entry, referral_response,
                    settle, Failure, PASSWORD, USER)
from harness.dovecot import Dovecot
from harness.imap import ImapClient, DEFAULT_TIMEOUT
from harness.ports import free_port
from harness.slapd import Slapd

REMOTE = ("127.0.0.1", 10999)   # only written into URLs, never contacted
ldap = None
home = None
session = None


def _add(mailbox):
    ldap.ldapadd(referral_entry(None, mailbox,
                                ["10 %s:%d" % REMOTE])[1])


def setup_module():
    global ldap, home, session
    check_plugin_built()
    ldap = Slapd(config_format="cnconfig")
    ldap.start()
    ldap.ldapadd(ou_referrals_ldif())
    for m in ("Public/Sales", "Public/Warmup", "Public/AfterPause"):
        _add(m)
    port = free_port()
    home = Dovecot("outage", port=port, plugin_settings=plugin_settings(
        ldap, "127.0.0.1:%d" % port))
    home.start()
    session = ImapClient(home.port)
    r = session.login(USER, PASSWORD)
    if r.status != "OK":
        raise Failure("LOGIN: %r" % r.tagged)
    # the session has talked to the directory before it goes away
    expect_tagged(session.command("SELECT Public/Warmup"),
                  referral_response([REMOTE], "Public/Warmup"),
                  "SELECT Public/Warmup before the outage")


def teardown_module():
    if session is not None:
        session.close()
    if home is not None:
        home.cleanup()
    if ldap is not None:
        ldap.cleanup()


def _unavailable(cmd, what):
    r = session.command(cmd)
    expect(r.text.startswith("NO [UNAVAILABLE]"),
           "%s with the directory down: expected NO [UNAVAILABLE] ..., got %r"
           % (what, r.tagged))
    return r


def _outage_lines(text):
    return [l for l in text.splitlines()
            if ("Error:" in l or "Warning:" in l) and "ldap" in l.lower()]


def _referral_eventually(mailbox, timeout=15.0):
    """After the directory is back, a lookup must work again; allow a short
    reconnect delay (retrying the same uncached name)."""
    want = referral_response([REMOTE], mailbox)
    deadline = time.monotonic() + timeout
    attempts = []
    while True:
        r = session.command("SELECT " + mailbox)
        attempts.append(r.text)
        if r.text == want:
            return len(attempts)
        if time.monotonic() > deadline:
            raise Failure("SELECT %s never gave the referral again within "
                          "%ss; expected %r, answers: %r"
                          % (mailbox, timeout, want, attempts[-3:]))
        time.sleep(1)


def test_stopped_directory_gives_unavailable():
    offset = home.log_size()
    ldap.stop()
    r = _unavailable("SELECT Public/Uncached1", "SELECT Public/Uncached1")
    expect(r.elapsed < DEFAULT_TIMEOUT,
           "answer took %.1fs" % r.elapsed)
    expect_usable(session, "after UNAVAILABLE")
    _unavailable("STATUS Public/Uncached2 (MESSAGES)",
                 "STATUS Public/Uncached2")
    _unavailable("SELECT Public/Uncached3", "SELECT Public/Uncached3")
    expect_usable(session, "after three UNAVAILABLE")
    settle(1.0)
    lines = _outage_lines(home.log_text(offset))
    expect_eq(len(lines), 1, "error lines about the LDAP outage for three "
              "commands (lines: %r)" % lines)


def test_restarted_directory_works_again():
    ldap.start()
    _add("Public/AfterRestart")
    _referral_eventually("Public/AfterRestart")
    expect_usable(session, "after the restart")


def test_frozen_directory_times_out():
    # make sure the connection to the directory is up before freezing it
    _referral_eventually("Public/Sales")
    ldap.pause()
    try:
        r = _unavailable("SELECT Public/Uncached4", "SELECT Public/Uncached4")
        # mailbox_referrals_ldap_timeout = 3s: not instantly, not forever
        expect(1.5 <= r.elapsed <= 20,
               "UNAVAILABLE after %.1fs with the directory frozen "
               "(expected about 3s)" % r.elapsed)
        expect_usable(session, "while the directory is frozen")
    finally:
        ldap.resume()


def test_thawed_directory_works_again():
    _referral_eventually("Public/AfterPause")
    expect_usable(session, "after SIGCONT")


def test_no_crash_logged():
    bad = [l for l in home.log_text().splitlines()
           if "Fatal:" in l or "Panic:" in l]
    expect(not bad, "crashes logged:\n" + "\n".join(bad[:20]))

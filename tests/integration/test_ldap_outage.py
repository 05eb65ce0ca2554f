# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""The directory goes away (stopped, or frozen with SIGSTOP) in the middle
of a session, then comes back. Uses its own slapd and Dovecot, so the
shared deployment is not disturbed."""

import time

from common import (expect, expect_eq, expect_no_crash, expect_tagged,
                    expect_usable, log_barrier, log_lines, login,
                    own_directory, own_dovecot, referral_entry,
                    referral_response, stop_servers, Failure)
from harness.imap import DEFAULT_TIMEOUT

REMOTE = ("127.0.0.1", 10999)   # only written into URLs, never contacted
ldap = None
home = None
session = None
servers = []


def _add(mailbox):
    ldap.ldapadd(referral_entry(None, mailbox,
                                ["10 %s:%d" % REMOTE])[1])


def setup_module():
    global ldap, home, session
    ldap = own_directory(("Public/Sales", "Public/Warmup",
                          "Public/AfterPause"), ["10 %s:%d" % REMOTE])
    home = own_dovecot("outage", ldap, registry=servers)
    session = login(home)
    # the session has talked to the directory before it goes away
    expect_tagged(session.command("SELECT Public/Warmup"),
                  referral_response([REMOTE], "Public/Warmup"),
                  "SELECT Public/Warmup before the outage")


def teardown_module():
    if session is not None:
        session.close()
    stop_servers(*servers + [ldap])


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
    lines = _outage_lines(log_barrier(home, session, offset))
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
    offset = home.log_size()
    ldap.pause()
    try:
        r = _unavailable("SELECT Public/Uncached4", "SELECT Public/Uncached4")
        # mailbox_referrals_ldap_timeout = 3s: the plugin waited for the
        # frozen directory (it cannot answer sooner), and then gave up
        # (not forever: ImapClient's own timeout would fail the test).
        expect(r.elapsed >= 1.5,
               "UNAVAILABLE after %.1fs with the directory frozen: the 3s "
               "timeout was not waited for" % r.elapsed)
        expect_usable(session, "while the directory is frozen")
    finally:
        ldap.resume()
    text = home.wait_log(lambda t: log_lines(t, "Timed out"), offset)
    expect(log_lines(text, "Timed out"),
           "the frozen directory is not logged as a timeout:\n%s"
           % "\n".join(_outage_lines(text)))


def test_thawed_directory_works_again():
    _referral_eventually("Public/AfterPause")
    expect_usable(session, "after SIGCONT")


def test_no_crash_logged():
    # the module's session is still open
    expect_no_crash(home, "the directory outages", still_open=1)

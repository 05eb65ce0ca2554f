# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""Named events and Dovecot's stats: a known session, then the exact counts
of the demo's metric blocks in `doveadm stats dump`, and the events' fields
selected by a log_debug filter. Uses its own slapd and Dovecot (the
directory is stopped on the way, and the counts must be this module's
only)."""

import subprocess
import time

from common import (check_plugin_built, expect, expect_eq, expect_ok,
                    expect_tagged, ou_referrals_ldif, plugin_settings,
                    referral_entry, referral_response, Failure, PASSWORD,
                    USER)
from harness import procs
from harness.dovecot import Dovecot
from harness.imap import ImapClient
from harness.ports import free_port
from harness.slapd import Slapd

REMOTE = ("127.0.0.1", 10999)   # only written into URLs, never contacted
UNAVAILABLE = ("NO [UNAVAILABLE] Referral directory is unavailable, "
               "try again later")
STATS_TIMEOUT = 30.0

# Only the events these filters select reach the log, so each line proves
# that the event had exactly these fields (and the category) in the server.
LOG_DEBUG = (
    "(category=mailbox-referrals AND "
    "event=mailbox_referrals_decision_finished AND mailbox=\"Public/Sales\" AND "
    "result=remote AND source=cache AND servers=\"127.0.0.1:10999\") OR "
    "(category=mailbox-referrals AND "
    "event=mailbox_referrals_decision_finished AND mailbox=\"Public/Down\" AND "
    "result=unavailable AND source=directory AND "
    "error=\"Referral directory is unavailable, try again later\") OR "
    "(category=mailbox-referrals AND "
    "event=mailbox_referrals_directory_request_finished AND "
    "operation=list AND entries=2 AND searches=1) OR "
    "(category=mailbox-referrals AND "
    "event=mailbox_referrals_directory_request_finished AND "
    "operation=lookup AND error=*)")

ldap = None
home = None
session_done = False


def setup_module():
    global ldap, home
    check_plugin_built()
    ldap = Slapd(config_format="cnconfig")
    ldap.start()
    ldap.ldapadd(ou_referrals_ldif())
    for mailbox in ("Public/Sales", "Public/Other"):
        ldap.ldapadd(referral_entry(None, mailbox,
                                    ["10 %s:%d" % REMOTE])[1])
    port = free_port()
    home = Dovecot("events", port=port, metrics=True,
                   plugin_settings=plugin_settings(
                       ldap, "127.0.0.1:%d" % port),
                   extra_config="log_debug = %s\n" % LOG_DEBUG)
    home.create_public_maildir("Local")
    home.start()


def teardown_module():
    if home is not None:
        home.cleanup()
    if ldap is not None:
        ldap.cleanup()


def _login():
    c = ImapClient(home.port)
    expect_ok(c.login(USER, PASSWORD), "LOGIN")
    return c


def test_known_session():
    """Each command makes one decision; the comments say which."""
    global session_done
    remote = referral_response([REMOTE], "Public/Sales")
    with _login() as c:
        # remote, from a directory lookup (1 entry)
        expect_tagged(c.command("SELECT Public/Sales"), remote,
                      "SELECT Public/Sales")
        # local, from a directory lookup (0 entries); the first SELECT
        # of a mailbox also opens a second mailbox object in lib-storage
        # (to read its GUID): a second decision, from the cache
        r = c.command("SELECT Public/Local")
        expect_ok(r, "SELECT Public/Local")
        expect_ok(c.command("UNSELECT"), "UNSELECT")
        # local, from the cache: STATUS checks the mailbox and then opens
        # it, one decision for both
        expect_ok(c.command("STATUS Public/Local (MESSAGES)"),
                  "STATUS Public/Local")
        # remote, from the cache
        expect_tagged(c.command("STATUS Public/Sales (MESSAGES)"), remote,
                      "STATUS Public/Sales")
        # no decision, one directory listing (2 entries)
        r = c.command('RLIST "" "Public/*"')
        expect_ok(r, "RLIST")
        # remote, from the cached listing
        expect_tagged(c.command("SELECT Public/Other"),
                      referral_response([REMOTE], "Public/Other"),
                      "SELECT Public/Other")
        c.logout()
    # a new session has empty caches: unavailable, from a failed lookup
    ldap.stop()
    with _login() as c:
        expect_tagged(c.command("SELECT Public/Down"), UNAVAILABLE,
                      "SELECT Public/Down with the directory stopped")
        c.logout()
    # the sessions' imap processes have sent everything once they are gone
    deadline = time.monotonic() + STATS_TIMEOUT
    while _imap_processes():
        if time.monotonic() > deadline:
            raise Failure("imap processes still running %ds after LOGOUT: %r"
                          % (STATS_TIMEOUT, _imap_processes()))
        time.sleep(0.1)
    session_done = True


def _imap_processes():
    out = []
    for pid in procs.children_of(home.master_pid):
        try:
            with open("/proc/%d/comm" % pid) as f:
                if f.read().strip() == "imap":
                    out.append(pid)
        except OSError:
            pass
    return out


# (metric, field) -> (count, sum) after the session; a group that saw no
# event has no line in the dump and counts as (0, 0).
EXPECTED = {
    ("mailbox_referrals_decisions", "duration"): 7,
    ("mailbox_referrals_decisions_remote", "duration"): 3,
    ("mailbox_referrals_decisions_remote_directory", "duration"): 1,
    ("mailbox_referrals_decisions_remote_cache", "duration"): 1,
    ("mailbox_referrals_decisions_remote_listing", "duration"): 1,
    ("mailbox_referrals_decisions_local", "duration"): 3,
    ("mailbox_referrals_decisions_local_directory", "duration"): 1,
    ("mailbox_referrals_decisions_local_cache", "duration"): 2,
    ("mailbox_referrals_decisions_local_listing", "duration"): 0,
    ("mailbox_referrals_decisions_unavailable", "duration"): 1,
    ("mailbox_referrals_decisions_unavailable_directory", "duration"): 1,
    ("mailbox_referrals_directory_requests", "duration"): 4,
    ("mailbox_referrals_directory_requests_lookup", "duration"): 3,
    ("mailbox_referrals_directory_requests_list", "duration"): 1,
    ("mailbox_referrals_directory_failures", "duration"): 1,
}
EXPECTED_SUMS = {
    ("mailbox_referrals_directory_requests", "entries"): 3,
    ("mailbox_referrals_directory_requests_lookup", "entries"): 1,
    # the failed lookup did not get as far as a search
    ("mailbox_referrals_directory_requests_lookup", "searches"): 2,
    ("mailbox_referrals_directory_requests_list", "entries"): 2,
    ("mailbox_referrals_directory_requests_list", "searches"): 1,
}


def stats_dump():
    """{(metric, field): (count, sum)} from `doveadm stats dump`."""
    r = subprocess.run(["doveadm", "-c", home.config_path, "stats", "dump"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    if r.returncode != 0:
        raise Failure("doveadm stats dump failed (%d): %s" % (
            r.returncode, r.stderr.decode(errors="replace").strip()))
    lines = r.stdout.decode().splitlines()
    expect(lines and lines[0].split("\t")[:4] ==
           ["metric_name", "field", "count", "sum"],
           "doveadm stats dump header: %r" % lines[:1])
    out = {}
    for line in lines[1:]:
        cols = line.split("\t")
        out[(cols[0], cols[1])] = (int(cols[2]), int(cols[3]))
    return out


def _differences(dump):
    diffs = []
    for key, count in EXPECTED.items():
        got = dump.get(key, (0, 0))[0]
        if got != count:
            diffs.append("%s %s: count %d, expected %d" % (key + (got, count)))
    for key, total in EXPECTED_SUMS.items():
        got = dump.get(key, (0, 0))[1]
        if got != total:
            diffs.append("%s %s: sum %d, expected %d" % (key + (got, total)))
    return diffs


def test_stats_counts():
    expect(session_done, "the known session did not complete")
    # imap sends events to the stats process asynchronously, which may
    # count them a little after the sessions ended: wait until the counts
    # are complete (they only grow), bounded
    deadline = time.monotonic() + STATS_TIMEOUT
    while True:
        dump = stats_dump()
        diffs = _differences(dump)
        if not diffs:
            break
        if time.monotonic() > deadline:
            raise Failure("doveadm stats dump did not reach the expected "
                          "counts within %ds:\n  %s\nfull dump: %r" % (
                              STATS_TIMEOUT, "\n  ".join(diffs), dump))
        time.sleep(0.2)
    # every decision and request has a duration
    for metric in ("mailbox_referrals_decisions",
                   "mailbox_referrals_directory_requests"):
        expect(dump[(metric, "duration")][1] > 0,
               "%s: duration sum is 0" % metric)


def test_fields_in_debug_log():
    """log_debug selects events by their fields: exactly the lines of the
    events that match, none of the others (e.g. Public/Sales's first,
    uncached decision)."""
    expect(session_done, "the known session did not complete")
    want = [
        "Mailbox Public/Sales is remote on 127.0.0.1:10999 "
        "(answer from cache)",
        "ldap: Directory list finished: 2 entries",
        "ldap: Directory lookup failed after 0 entries",
        "Mailbox Public/Down is unavailable (answer from directory): "
        "Referral directory is unavailable, try again later",
    ]

    def ours():
        return [l.split("Debug: mailbox-referrals: ", 1)[1]
                for l in home.log_text().splitlines()
                if "Debug: mailbox-referrals: " in l]
    deadline = time.monotonic() + 10
    while ours() != want and time.monotonic() < deadline:
        time.sleep(0.1)
    expect_eq(ours(), want, "debug lines selected by log_debug")

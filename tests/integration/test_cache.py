# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""Which operations query the directory, counted in slapd's own log."""

from common import (env, expect, expect_eq, expect_ok, expect_tagged,
                    expect_usable, referral_response, wait_until)
from harness.imap import message


def _count(e, filter_substring=None):
    return e.ldap.count_searches(filter_substring)


def test_private_namespace_sends_no_query():
    e = env()
    with e.client() as c:
        before = _count(e)
        expect_ok(c.command("SELECT INBOX"), "SELECT INBOX")
        expect_ok(c.command("STATUS INBOX (MESSAGES)"), "STATUS INBOX")
        expect_ok(c.command("CREATE Foo"), "CREATE Foo")
        expect_ok(c.append("Foo", message("Private", "private mail")),
                  "APPEND Foo")
        expect_ok(c.command("SELECT Foo"), "SELECT Foo")
        expect_ok(c.command("CLOSE"), "CLOSE")
        expect_ok(c.command("DELETE Foo"), "DELETE Foo")
        after = _count(e)
        expect_eq(after - before, 0,
                  "LDAP searches caused by private-namespace commands "
                  "(new filters: %r)" % e.ldap.search_filters()[before:])
    # The count does move for a public name never looked up before, so
    # the check above can fail.
    with e.client() as c:
        before = _count(e)
        expect_tagged(c.command("SELECT Public/CountProbe"),
                      referral_response([e.B], "Public/CountProbe"),
                      "SELECT Public/CountProbe")
        after = wait_until(lambda: e.ldap.count_searches() > before and
                           e.ldap.count_searches())
        expect(after and after > before,
               "SELECT Public/CountProbe did not reach slapd (count stayed %d)"
               " - the search counter does not work" % before)


def test_positive_answer_cached():
    e = env()
    with e.client() as c:
        before = _count(e)
        want = referral_response([e.B], "Public/Sales")
        expect_tagged(c.command("SELECT Public/Sales"), want, "SELECT #1")
        expect_tagged(c.command("SELECT Public/Sales"), want, "SELECT #2")
        expect_tagged(c.command("STATUS Public/Sales (MESSAGES)"), want,
                      "STATUS")
        delta = _count(e) - before
        expect(delta <= 1, "Public/Sales looked up %d times on one connection "
               "(at most 1 expected with cache_ttl=60s)" % delta)


def test_negative_answer_cached():
    e = env()
    # A local public mailbox with no directory entry, created on disk so
    # that no IMAP command has looked it up before.
    e.a.create_public_maildir("LocalOnly")
    with e.client() as c:
        before = _count(e, "LocalOnly")
        expect_ok(c.command("SELECT Public/LocalOnly"), "SELECT #1")
        expect_ok(c.command("SELECT Public/LocalOnly"), "SELECT #2")
        expect_ok(c.command("STATUS Public/LocalOnly (MESSAGES)"), "STATUS")
        delta = _count(e, "LocalOnly") - before
        expect_eq(delta, 1, "searches for Public/LocalOnly on one connection")
        expect_usable(c)


def test_listing_answers_later_lookups():
    """After a listing of the namespace (one paged search), opening its
    mailboxes costs no further query while the listing is cached."""
    e = env()
    e.a.create_public_maildir("AfterList")
    with e.client() as c:
        before = _count(e)
        r = c.command('LIST "" "Public/*"')
        expect_ok(r, 'LIST "" "Public/*"')
        listed = _count(e)
        expect(listed - before >= 1,
               "LIST did not read the directory (count %d -> %d): the hiding "
               "of remote mailboxes needs it" % (before, listed))
        expect_tagged(c.command("SELECT Public/Sales"),
                      referral_response([e.B], "Public/Sales"),
                      "SELECT Public/Sales after LIST")
        expect_tagged(c.command("STATUS Public/Replica (MESSAGES)"),
                      referral_response([e.C, e.B], "Public/Replica"),
                      "STATUS Public/Replica after LIST")
        expect_ok(c.command("SELECT Public/AfterList"),
                  "SELECT the local Public/AfterList after LIST")
        expect_eq(_count(e) - listed, 0,
                  "searches after the listing (new filters: %r)"
                  % e.ldap.search_filters()[listed:])

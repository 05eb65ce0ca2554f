# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""Hostile mailbox names: LDAP filter escaping (RFC 4515) and robustness.
Every command must get a sane tagged answer and leave the session usable."""

from common import env, expect, expect_no_crash, expect_usable
from harness.imap import Literal

_log_offset = {}


def setup_module():
    e = env()
    _log_offset["a"] = e.a.log_size()


def _new_filters(e, before):
    return [f for _, f in e.ldap.search_filters()[before:]]


def _no_referral(c, *parts, what):
    r = c.command(*parts)
    expect(r.status in ("NO", "BAD"),
           "%s: expected a tagged NO or BAD, got %r" % (what, r.tagged))
    expect("REFERRAL" not in r.tagged,
           "%s must not be referred: %r" % (what, r.tagged))
    expect_usable(c, what)
    return r


def test_wildcard_name_not_referred():
    e = env()
    with e.client() as c:
        before = len(e.ldap.search_filters())
        _no_referral(c, 'SELECT "Public/*"', what='SELECT "Public/*"')
        # A substring filter "Public/*" may be the plugin's own listing of
        # the namespace, so look for the lookup of this name instead: when
        # there is one, its '*' is escaped.
        filters = _new_filters(e, before)
        if filters:
            expect(any("public/\\2a" in f.lower() for f in filters),
                   "no search with the escaped name Public/\\2a; new "
                   "filters: %r" % filters)


def test_filter_injection_not_referred():
    e = env()
    with e.client() as c:
        before = len(e.ldap.search_filters())
        name = "Public/x)(imapReferralMailbox=*"
        _no_referral(c, 'SELECT "%s"' % name, what="SELECT " + name)
        for flt in _new_filters(e, before):
            expect("x)(" not in flt,
                   "unescaped parentheses sent to LDAP in filter %r" % flt)


def test_special_characters_escaped_in_filter():
    e = env()
    with e.client() as c:
        before = len(e.ldap.search_filters())
        r = c.command('SELECT "Public/star*(x)\\\\y"')
        # the exact URL is checked in test_referrals
        expect(r.text.startswith("NO [REFERRAL imap://"),
               'SELECT "Public/star*(x)\\\\y": expected a referral, got %r'
               % r.tagged)
        expect_usable(c)
    filters = _new_filters(e, before)
    low = [f.lower() for f in filters]
    expect(any(all(esc in f for esc in ("\\2a", "\\28", "\\29", "\\5c"))
               for f in low),
           "no search filter with \\2a \\28 \\29 \\5c in slapd's log; new "
           "filters: %r" % filters)


def test_quote_and_paren_in_name():
    e = env()
    with e.client() as c:
        _no_referral(c, 'SELECT "Public/a\\"b(c"', what='name with " and (')
        _no_referral(c, 'STATUS "Public/a\\"b(c" (MESSAGES)',
                     what='STATUS name with " and (')


def test_raw_8bit_bytes_in_quoted_name():
    e = env()
    with e.client() as c:
        _no_referral(c, b'SELECT "Public/\xff\xfe\xc3(x"',
                     what="SELECT with raw 8-bit bytes")
        _no_referral(c, b'SELECT "Public/Caf\xc3\xa9"',
                     what="SELECT with raw UTF-8 instead of mUTF-7")


def test_long_literal_name():
    e = env()
    with e.client() as c:
        name = "Public/" + "x" * (5000 - len("Public/"))
        _no_referral(c, "SELECT ", Literal(name),
                     what="SELECT {5000} name")
        _no_referral(c, "STATUS ", Literal(name), " (MESSAGES)",
                     what="STATUS {5000} name")


def test_deep_hierarchy_name():
    e = env()
    with e.client() as c:
        name = "Public/" + "/".join(["a"] * 300)
        _no_referral(c, "SELECT " + name, what="SELECT 300-level name")
        _no_referral(c, "DELETE " + name, what="DELETE 300-level name")


def test_empty_and_separator_names():
    e = env()
    with e.client() as c:
        _no_referral(c, 'SELECT "Public/"', what='SELECT "Public/"')
        _no_referral(c, 'SELECT "Public//Sales"', what='SELECT "Public//Sales"')


def test_no_crash_logged():
    e = env()
    expect_no_crash(e.a, "the hostile-name tests", _log_offset.get("a", 0))

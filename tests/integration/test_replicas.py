# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""Replicas (RFC 2193 §3: several URLs, preferred first): servers of equal
preference are shuffled per session (load balancing), stable within one
session; mailbox_referrals_shuffle = no keeps the directory's order; a
server holding a replica serves it whatever its preference.

Directory entries (added in setup_module, removed in teardown_module):
  Public/T3Rep       10 r1.example.test:1001, 10 r2.example.test:1002,
                     10 r3.example.test:1003, 20 r4.example.test:1004
                     (never contacted: they only appear in URLs)
  Public/T3RepServe  10 C, 20 r1.example.test:1001, 30 B
"""

import re

from common import (env, expect, expect_eq, expect_ok, expect_tagged,
                    expect_usable, login, own_dovecot, referral_entry,
                    referral_response, stop_servers, undo_changes)
from harness.imap import Literal, message

REP = "Public/T3Rep"
R1, R2, R3, R4 = (("r1.example.test", 1001), ("r2.example.test", 1002),
                  ("r3.example.test", 1003), ("r4.example.test", 1004))
SERVE = "Public/T3RepServe"

_dns = []
_noshuffle = []  # the Dovecot with mailbox_referrals_shuffle = no
_seeded = []  # (server key, mailbox)


def setup_module():
    e = env()
    for rdn, mailbox, servers in (
            ("cn=t3rp-rep", REP, ["10 r1.example.test:1001",
                                  "10 r2.example.test:1002",
                                  "10 r3.example.test:1003",
                                  "20 r4.example.test:1004"]),
            ("cn=t3rp-serve", SERVE, ["10 127.0.0.1:%d" % e.port_c,
                                      "20 r1.example.test:1001",
                                      "30 127.0.0.1:%d" % e.port_b])):
        dn, text = referral_entry(rdn, mailbox, servers)
        e.ldap.ldapadd(text)
        _dns.append(dn)
    # B and C hold Public/T3RepServe
    for key in ("b", "c"):
        with e.client(key) as c:
            expect_ok(c.command("CREATE " + SERVE),
                      "setup: CREATE %s on %s" % (SERVE, key.upper()))
            _seeded.append((key, SERVE))
            expect_ok(c.append(SERVE, message("T3 replica",
                                              "Replica on %s" % key.upper())),
                      "setup: APPEND to %s on %s" % (SERVE, key.upper()))
    # a home server like A, but with mailbox_referrals_shuffle = no
    own_dovecot("t3noshuffle", e.ldap, registry=_noshuffle,
                mailbox_referrals_shuffle="no")


def teardown_module():
    try:
        stop_servers(*_noshuffle)
    finally:
        undo_changes(mailboxes=_seeded, dns=_dns)


# ---------------------------------------------------------------- helpers
_HOSTPORT_RE = re.compile(r"imap://[^@ ]*@([^/ ]+)/")


def _order(resp, what):
    """The (host, port) of each URL of a referral, in order; also checks
    that the whole reply is exactly the referral for that order."""
    expect(resp.text.startswith("NO [REFERRAL "),
           "%s: expected a referral, got %r" % (what, resp.tagged))
    urls = resp.text[len("NO [REFERRAL "):].split("]", 1)[0]
    servers = []
    for hp in _HOSTPORT_RE.findall(urls):
        host, _, port = hp.rpartition(":")
        servers.append((host, int(port)))
    expect_tagged(resp, referral_response(servers, REP), what)
    return tuple(servers)


def _session_order(server, cmds=("SELECT " + REP,)):
    with login(server) as c:
        orders = [_order(c.command(cmd), cmd) for cmd in cmds]
        expect_usable(c)
    return orders


# ----------------------------------------------------------------- tests
def test_directory_keeps_value_order():
    # the premise of the shuffle = no test below
    e = env()
    found = e.ldap.search(filter="(imapReferralMailbox=%s)" % REP,
                          attrs=["imapReferralServer"])
    expect_eq(len(found), 1, "entries for %s" % REP)
    values = [v for k, vs in found[0][1].items()
              if k.lower() == "imapreferralserver" for v in vs]
    expect_eq(values, ["10 r1.example.test:1001", "10 r2.example.test:1002",
                       "10 r3.example.test:1003", "20 r4.example.test:1004"],
              "imapReferralServer values as slapd returns them")


def test_order_stable_within_a_session():
    e = env()
    cmds = ("SELECT " + REP, "EXAMINE " + REP, "STATUS %s (MESSAGES)" % REP,
            "DELETE " + REP, "CREATE " + REP, "SELECT " + REP,
            "SELECT " + REP)
    orders = _session_order(e.a, cmds)
    expect_eq(len(set(orders)), 1,
              "distinct server orders within one session (%r)" % (orders,))
    # APPEND too, before the literal is sent
    with e.client() as c:
        first = _order(c.command("SELECT " + REP), "SELECT")
        r = c.command("APPEND %s " % REP, Literal(message("x", "never sent")))
        expect(not r.continued, "APPEND: continuation sent instead of the "
               "referral: %r" % r.tagged)
        expect_eq(_order(r, "APPEND"), first, "APPEND's order vs SELECT's")
        for _ in range(3):
            expect_eq(_order(c.command("SELECT " + REP), "SELECT"), first,
                      "repeated SELECT's order")
        expect_usable(c)


def test_equal_preferences_shuffled_across_sessions():
    e = env()
    seen = {}
    for i in range(20):
        (order,) = _session_order(e.a)
        expect_eq(sorted(order[:3]), sorted([R1, R2, R3]),
                  "session %d: the three preference-10 servers first "
                  "(order %r)" % (i, order))
        expect_eq(order[3], R4, "session %d: the preference-20 server last"
                  % i)
        seen[order] = seen.get(order, 0) + 1
    expect(len(seen) >= 2,
           "20 sessions on A all gave the same order of r1..r3: %r "
           "(mailbox_referrals_shuffle defaults to yes)" % (seen,))


def test_no_shuffle_keeps_directory_order():
    d = _noshuffle[0]
    want = referral_response([R1, R2, R3, R4], REP)
    for i in range(10):
        with login(d) as c:
            expect_tagged(c.command("SELECT " + REP), want,
                          "session %d: SELECT %s with shuffle = no" % (i, REP))
            expect_usable(c)


def test_home_refers_to_replicas_in_preference_order():
    e = env()
    with e.client() as c:
        expect_tagged(c.command("SELECT " + SERVE),
                      referral_response([e.C, R1, e.B], SERVE),
                      "SELECT %s on A" % SERVE)
        expect_usable(c)


def _serves(key, what):
    e = env()
    with e.client(key) as c:
        r = c.command("SELECT " + SERVE)
        expect_ok(r, "SELECT %s on %s (%s)" % (SERVE, key.upper(), what))
        expect("* 1 EXISTS" in r.untagged,
               "SELECT %s on %s: no '* 1 EXISTS' in %r"
               % (SERVE, key.upper(), r.untagged))
        r = c.command("FETCH 1 BODY[TEXT]")
        expect_ok(r, "FETCH on %s" % key.upper())
        expect(any("Replica on %s" % key.upper() in l for l in r.untagged),
               "FETCH on %s: not the local copy: %r" % (key.upper(),
                                                       r.untagged))
        r = c.command("STATUS %s (MESSAGES)" % SERVE)
        expect_ok(r, "STATUS %s on %s" % (SERVE, key.upper()))
        expect_usable(c)


def test_lowest_preference_replica_serves_locally():
    # B is the last (preference 30) of three servers
    _serves("b", "preference 30 of 3")


def test_preferred_replica_serves_locally():
    _serves("c", "preference 10 of 3")

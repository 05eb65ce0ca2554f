# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""Following a referral: the servers it names serve the mailbox locally
(they recognise themselves), so there is no referral loop (RFC 2193 §3)."""

from common import (check_reply, env, expect, expect_ok, expect_usable,
                    referral_response, Failure, USER)


def _serves(server, mailbox):
    """Log in to server ("b"/"c") as alice, SELECT mailbox: OK with one
    message whose body is the one seeded there."""
    e = env()
    err = e.seed_errors.get((server, mailbox))
    if err:
        raise Failure("seeding %s on %s failed: %s" % (mailbox, server.upper(),
                                                       err))
    with e.client(server) as c:
        r = c.command("SELECT " + mailbox)
        expect_ok(r, "SELECT %s on %s" % (mailbox, server.upper()))
        expect("* 1 EXISTS" in r.untagged,
               "SELECT %s on %s: no '* 1 EXISTS' in %r"
               % (mailbox, server.upper(), r.untagged))
        r = c.command("FETCH 1 BODY[]")
        expect_ok(r, "FETCH 1 BODY[] on %s" % server.upper())
        body = e.seed_body(server, mailbox)
        expect(any(line.startswith("* 1 FETCH") and body in line
                   for line in r.untagged),
               "FETCH 1 BODY[] on %s: seeded text %r not found in %r"
               % (server.upper(), body, r.untagged))
        expect_usable(c)


def test_b_serves_sales_by_connected_address():
    # entry: 10 127.0.0.1:<B>; B's self setting names only its hostname
    _serves("b", "Public/Sales")


def test_b_serves_named_by_self_setting():
    # entry: 10 imap-b.example.test:<B>
    _serves("b", "Public/Named")


def test_b_serves_replica():
    _serves("b", "Public/Replica")


def test_c_serves_replica():
    _serves("c", "Public/Replica")


def test_c_serves_own_mailbox_with_empty_self():
    _serves("c", "Public/OnlyC")


def test_b_refers_mailbox_of_c():
    e = env()
    check_reply("SELECT Public/OnlyC",
                referral_response([e.C], "Public/OnlyC"),
                "SELECT Public/OnlyC on B", server="b")


def test_c_refers_mailbox_of_b():
    e = env()
    check_reply("SELECT Public/Sales",
                referral_response([e.B], "Public/Sales"),
                "SELECT Public/Sales on C", server="c")


def test_follow_url_from_a():
    """The whole client path: A refers, the client parses the URL and
    goes to B, which serves the mailbox."""
    e = env()
    with e.client("a") as c:
        r = c.command("SELECT Public/Sales")
    expect(r.text.startswith("NO [REFERRAL imap://"),
           "A did not refer Public/Sales: %r" % r.tagged)
    url = r.text[len("NO [REFERRAL "):].split("]", 1)[0].split(" ")[0]
    authority, _, path = url[len("imap://"):].partition("/")
    userinfo, _, hostport = authority.rpartition("@")
    host, _, port = hostport.partition(":")
    expect(host == "127.0.0.1" and port == str(e.port_b),
           "URL %r does not point at B (127.0.0.1:%d)" % (url, e.port_b))
    expect(userinfo == USER + ";AUTH=*", "URL userinfo %r" % userinfo)
    _serves("b", path)

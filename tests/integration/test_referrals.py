# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""Exact referral responses from the home server A (RFC 2193 §4.1, URLs as
RFC 5092)."""

from common import (check_reply, env, expect, expect_append_refused,
                    expect_eq, expect_not_listed, expect_not_referred,
                    expect_ok, expect_tagged, expect_usable, log_lines,
                    referral_response, wait_sessions_ended, wait_until,
                    CAROL, USER, STAR_NAME)
from harness.imap import Literal, message


def _sales(e, user=USER):
    return referral_response([e.B], "Public/Sales", user)


def test_select_refers():
    e = env()
    check_reply("SELECT Public/Sales", _sales(e))


def test_examine_refers():
    e = env()
    check_reply("EXAMINE Public/Sales", _sales(e))


def test_status_refers():
    e = env()
    check_reply("STATUS Public/Sales (MESSAGES)", _sales(e))


def test_delete_refers():
    e = env()
    check_reply("DELETE Public/Sales", _sales(e))


def test_append_refers_before_continuation():
    e = env()
    with e.client() as c:
        expect_append_refused(c, "Public/Sales", _sales(e))
        # and the connection still handles a literal normally
        r = c.command("SELECT ", Literal("INBOX"))
        expect_ok(r, "SELECT {5} INBOX after the refused APPEND")


def test_append_with_flags_refers():
    e = env()
    with e.client() as c:
        expect_append_refused(c, "Public/Sales", _sales(e), flags="\\Seen")


def test_referral_is_repeatable_on_one_connection():
    e = env()
    with e.client() as c:
        for cmd in ("SELECT Public/Sales", "STATUS Public/Sales (MESSAGES)",
                    "EXAMINE Public/Sales", "SELECT Public/Sales"):
            expect_tagged(c.command(cmd), _sales(e), cmd + " (repeated)")
        expect_usable(c)


def test_multiple_servers_in_preference_order():
    e = env()
    check_reply("SELECT Public/Replica",
                referral_response([e.C, e.B], "Public/Replica"))


def test_hostname_server():
    e = env()
    want = referral_response([e.B_NAMED], "Public/Named")
    expect(("imap://alice;AUTH=*@imap-b.example.test:%d/Public/Named"
            % e.port_b) in want, "test's own expectation is wrong: " + want)
    check_reply("SELECT Public/Named", want)


def test_port_143_omitted():
    want = ("NO [REFERRAL imap://alice;AUTH=*@imap-143.example.test/"
            "Public/Port143] Remote mailbox on imap-143.example.test")
    expect_eq(referral_response([("imap-143.example.test", 143)],
                                "Public/Port143"), want, "helper")
    check_reply("SELECT Public/Port143", want)


def test_space_is_percent_encoded():
    e = env()
    want = referral_response([e.B], "Public/Sales Team")
    expect("/Public/Sales%20Team]" in want, "helper: " + want)
    check_reply('SELECT "Public/Sales Team"', want)


def test_percent_is_percent_encoded():
    e = env()
    want = referral_response([e.B], "Public/100%")
    expect("/Public/100%25]" in want, "helper: " + want)
    check_reply('SELECT "Public/100%"', want)


def test_utf7_name_becomes_utf8_in_url():
    e = env()
    want = referral_response([e.B], "Public/Caf\u00e9")
    expect("/Public/Caf%C3%A9]" in want, "helper: " + want)
    check_reply("SELECT Public/Caf&AOk-", want,
                "SELECT Public/Caf&AOk- (Café)")


def test_user_with_at_sign_is_encoded():
    e = env()
    want = _sales(e, CAROL)
    expect(want.startswith("NO [REFERRAL imap://carol%40example.com;AUTH=*@"),
           "helper: " + want)
    check_reply("SELECT Public/Sales", want,
                "SELECT Public/Sales as carol@example.com", user=CAROL)


def test_remote_name_is_used_in_url():
    e = env()
    want = "NO [REFERRAL %s] Remote mailbox on 127.0.0.1:%d" % (
        "imap://alice;AUTH=*@127.0.0.1:%d/Archive/Old" % e.port_b, e.port_b)
    check_reply("SELECT Public/Old", want)


def test_special_characters_in_url():
    e = env()
    want = referral_response([e.B], STAR_NAME)
    expect("/Public/star*(x)%5Cy]" in want, "helper: " + want)
    check_reply('SELECT "Public/star*(x)\\\\y"', want)


def test_invalid_server_values_are_skipped_and_logged():
    e = env()
    offset = e.a.log_size()
    check_reply("SELECT Public/Mixed",
                referral_response([e.B], "Public/Mixed"))
    dn = e.dns["mixed"]
    text = wait_until(lambda: log_lines(e.a.log_text(offset), dn,
                                        "imapReferralServer"))
    expect(text, "A's log has no line naming %s and imapReferralServer; "
           "log since the command:\n%s" % (dn, e.a.log_text(offset)[-3000:]))


def test_only_invalid_servers_is_unavailable():
    e = env()
    with e.client() as c:
        r = c.command("SELECT Public/Broken")
        expect(r.text.startswith("NO [UNAVAILABLE]"),
               "SELECT Public/Broken: expected NO [UNAVAILABLE] ..., got %r"
               % r.tagged)
        expect_usable(c)


def test_remote_name_with_crlf_is_rejected():
    e = env()
    offset = e.a.log_size()
    with e.client() as c:
        r = c.command("SELECT Public/BadName")
        expect(r.text.startswith("NO [UNAVAILABLE]"),
               "SELECT Public/BadName: expected NO [UNAVAILABLE] ..., got %r"
               % r.tagged)
        n = expect_usable(c, "after Public/BadName")
        for line in r.untagged + [r.tagged] + n.untagged + [n.tagged]:
            expect("injected" not in line and "Evil" not in line,
                   "directory value leaked into the IMAP stream: %r" % line)
        r = c.command("SELECT Public/Sales")
        expect_tagged(r, _sales(e), "SELECT Public/Sales after Public/BadName")
    dn = e.dns["badname"]
    lines = wait_until(lambda: log_lines(e.a.log_text(offset), dn))
    expect(lines, "A's log does not name %s; log since the command:\n%s"
           % (dn, e.a.log_text(offset)[-3000:]))


def test_private_and_local_mailboxes_not_referred():
    e = env()
    with e.client() as c:
        expect_ok(c.command("SELECT INBOX"), "SELECT INBOX")
        expect_not_referred(c, "SELECT Public/NoSuchEntry",
                            "no entry, no mailbox")
        expect_usable(c)


def test_list_does_not_show_remote_mailboxes():
    # RFC 2193 §5: remote mailboxes should not appear in LIST
    e = env()
    with e.client() as c:
        expect_not_listed(c, "Public/*", ("Sales", "Replica"), "A")


def test_append_nonsync_literal_refers():
    """LITERAL+ ({n+}): the client sends the message without waiting; the
    server must answer the referral and swallow the literal, not run its
    lines as commands."""
    e = env()
    msg = message("LITERAL+", "a99 DELETE INBOX\r\nb99 LOGOUT\r\n")
    data = msg.encode()
    with e.client() as c:
        r = c.command(b"APPEND Public/Sales {%d+}\r\n" % len(data) + data)
        expect_tagged(r, _sales(e), "APPEND Public/Sales {%d+}" % len(data))
        r = expect_usable(c, "APPEND with LITERAL+")
        expect(not any(" BYE " in line for line in r.untagged),
               "the literal's lines were run as commands: %r" % r.untagged)
        expect_ok(c.command("STATUS INBOX (MESSAGES)"),
                  "INBOX still exists after the refused APPEND")


def test_client_disconnecting_mid_command():
    """A client that goes away while its command is being answered (or in
    the middle of a literal) costs nothing: the server keeps serving."""
    e = env()
    log_offset = e.a.log_size()
    c = e.client()
    c.send_raw(b"x1 SELECT Public/Sales\r\nx2 RLIST \"\" \"*\"\r\n"
               b"x3 APPEND Public/Sales {100}\r\n")
    c.close()
    c = e.client()
    c.send_raw(b"y1 APPEND INBOX {100}\r\n")
    c.read_line()  # "+ OK" or similar: then vanish mid-literal
    c.send_raw(b"half a message")
    c.close()
    with e.client() as c:
        expect_tagged(c.command("SELECT Public/Sales"), _sales(e),
                      "SELECT after other clients vanished")
    text = wait_sessions_ended(e.a, log_offset)
    for word in ("Panic", "Fatal", "segfault", "killed with signal"):
        expect(word not in text, "A's log has %r after clients vanished:\n%s"
               % (word, text[-2000:]))

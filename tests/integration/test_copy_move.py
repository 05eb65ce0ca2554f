# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""COPY, MOVE, UID COPY and UID MOVE to a remote destination (RFC 2193 §4.4,
RFC 6851): a referral for the destination, and nothing copied, moved,
flagged or expunged. Local destinations still work.

Directory entries (added in setup_module, removed in teardown_module):
  Public/T3CopyDest   mailbox-scoped, B
  Public/T3CopyTree   subtree, C, remote name Shared/Tree
Local mailboxes on A: Public/T3CopySrc (the source, four messages with
distinct flags), Public/T3CopyLocal and Public/T3MoveSrc (positive control),
and the private T3CopyPriv (a private source).
"""

import re

from common import (env, expect, expect_eq, expect_not_listed, expect_ok,
                    expect_tagged, expect_usable, referral_entry,
                    referral_response, undo_changes, Failure)
from harness.imap import message, quote

SRC = "Public/T3CopySrc"
PRIV_SRC = "T3CopyPriv"
LOCAL_DEST = "Public/T3CopyLocal"
MOVE_SRC = "Public/T3MoveSrc"

# (flags given to APPEND, subject)
_SEED = [
    ("\\Seen", "first"),
    ("\\Flagged", "second"),
    ("\\Answered \\Draft", "third"),
    ("", "fourth"),
    ("\\Seen $T3Label", "fifth"),
]

_dns = []
_created = []  # mailboxes on A, deleted at the end


def _dests(e):
    """(IMAP name on A, expected tagged reply) of the remote destinations."""
    return [
        ("Public/T3CopyDest", referral_response([e.B], "Public/T3CopyDest")),
        ("Public/T3CopyTree/In",
         referral_response([e.C], "Shared/Tree/In")),
    ]


def setup_module():
    e = env()
    for rdn, mailbox, server, opts in (
            ("cn=t3cm-dest", "Public/T3CopyDest", e.B, {}),
            ("cn=t3cm-tree", "Public/T3CopyTree", e.C,
             {"scope": "subtree", "remote_name": "Shared/Tree"})):
        dn, text = referral_entry(rdn, mailbox, ["10 %s:%d" % server], **opts)
        e.ldap.ldapadd(text)
        _dns.append(dn)
    with e.client() as c:
        for box in (SRC, PRIV_SRC, LOCAL_DEST, MOVE_SRC):
            expect_ok(c.command("CREATE " + quote(box)), "setup: CREATE " + box)
            _created.append(box)
        for box in (SRC, PRIV_SRC):
            for flags, subject in _SEED:
                r = c.append(box, message("T3 %s" % subject,
                                          "Body of the %s message in %s"
                                          % (subject, box)),
                             flags=flags or None)
                expect_ok(r, "setup: APPEND to %s" % box)
        expect_ok(c.append(MOVE_SRC, message("T3 move", "to be moved")),
                  "setup: APPEND to %s" % MOVE_SRC)


def teardown_module():
    undo_changes(mailboxes=[("a", box) for box in _created], dns=_dns)


# ---------------------------------------------------------------- helpers
_FETCH_RE = re.compile(r"^\* (\d+) FETCH \(")
_BODY_RE = re.compile(r"BODY\[\] \{(\d+)\}\r\n")


def _parse_fetch(line):
    """(uid, flags without \\Recent, size, body) of one FETCH line."""
    m = _BODY_RE.search(line)
    if not m:
        raise Failure("FETCH line without BODY[] literal: %r" % line)
    n = int(m.group(1))
    raw = line.encode("utf-8", "surrogateescape")
    start = len(line[:m.end()].encode("utf-8", "surrogateescape"))
    body = raw[start:start + n]
    rest = line[:m.start()] + raw[start + n:].decode("utf-8",
                                                     "surrogateescape")
    uid = re.search(r"\bUID (\d+)", rest)
    flags = re.search(r"\bFLAGS \(([^)]*)\)", rest)
    size = re.search(r"\bRFC822\.SIZE (\d+)", rest)
    if not (uid and flags and size):
        raise Failure("FETCH line lacks UID, FLAGS or RFC822.SIZE: %r" % line)
    flag_set = frozenset(f for f in flags.group(1).split()
                         if f.lower() != "\\recent")
    return (int(uid.group(1)), flag_set, int(size.group(1)), body)


def _snapshot(c, what):
    r = c.command("UID FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[])")
    expect_ok(r, "%s: UID FETCH" % what)
    msgs = [_parse_fetch(l) for l in r.untagged if _FETCH_RE.match(l)]
    return sorted(msgs)


def _status(box):
    """(MESSAGES, UIDNEXT, UIDVALIDITY) from a fresh connection."""
    e = env()
    with e.client() as c:
        r = c.command("STATUS %s (MESSAGES UIDNEXT UIDVALIDITY)" % quote(box))
        expect_ok(r, "STATUS " + box)
        line = [l for l in r.untagged if l.startswith("* STATUS ")]
        expect(line, "STATUS %s: no untagged STATUS in %r" % (box, r.untagged))
        vals = dict(re.findall(r"(MESSAGES|UIDNEXT|UIDVALIDITY) (\d+)",
                               line[0]))
        return tuple(int(vals.get(k, -1))
                     for k in ("MESSAGES", "UIDNEXT", "UIDVALIDITY"))


def _expect_unchanged(before, after, what):
    expect_eq(len(after), len(before), "%s: number of messages" % what)
    for b, a in zip(before, after):
        expect_eq(a[0], b[0], "%s: UID" % what)
        expect_eq(sorted(a[1]), sorted(b[1]), "%s: FLAGS of UID %d"
                  % (what, b[0]))
        expect_eq(a[2], b[2], "%s: RFC822.SIZE of UID %d" % (what, b[0]))
        expect_eq(a[3], b[3], "%s: BODY[] of UID %d" % (what, b[0]))


def _no_expunge(lines, what):
    for line in lines:
        up = line.upper()
        expect(" EXPUNGE" not in up and "VANISHED" not in up,
               "%s: untagged expunge: %r" % (what, line))
        m = re.match(r"^\* \d+ FETCH .*FLAGS \(([^)]*)\)", line)
        expect(not (m and "\\deleted" in m.group(1).lower()),
               "%s: a message was flagged \\Deleted: %r" % (what, line))


def _remote_dest_leaves_source_alone(box, commands):
    e = env()
    status_before = _status(box)
    with e.client() as c:
        r = c.command("SELECT " + quote(box))
        expect_ok(r, "SELECT " + box)
        expect("* %d EXISTS" % len(_SEED) in r.untagged,
               "SELECT %s: expected %d messages, got %r"
               % (box, len(_SEED), r.untagged))
        before = _snapshot(c, "before")
        expect_eq(len(before), len(_SEED), "messages in %s before" % box)
        expect_eq(len(set(m[1] for m in before)), len(_SEED),
                  "distinct flag sets seeded in %s" % box)
        for m in before:
            expect(b"Body of the " in m[3],
                   "%s: BODY[] of UID %d not parsed: %r" % (box, m[0], m[3]))
        for dest, want in _dests(e):
            for cmd in commands:
                full = "%s %s" % (cmd, quote(dest))
                r = c.command(full)
                expect_tagged(r, want, full)
                _no_expunge(r.untagged, full)
                n = c.command("NOOP")
                expect_ok(n, "NOOP after " + full)
                _no_expunge(n.untagged, "NOOP after " + full)
                _expect_unchanged(before, _snapshot(c, full),
                                  "%s: source after %s" % (box, full))
        expect_usable(c)
    expect_eq(_status(box), status_before,
              "(MESSAGES, UIDNEXT, UIDVALIDITY) of %s from a fresh "
              "connection" % box)
    # and a fresh session sees the same messages, flags and bodies
    with e.client() as c:
        expect_ok(c.command("EXAMINE " + quote(box)), "EXAMINE " + box)
        _expect_unchanged(before, _snapshot(c, "fresh session"),
                          "%s: source seen from a fresh session" % box)


# ----------------------------------------------------------------- tests
def test_copy_to_remote_refers_and_copies_nothing():
    _remote_dest_leaves_source_alone(SRC, ["COPY 1:*", "COPY 2",
                                           "COPY 1,3:4"])


def test_uid_copy_to_remote_refers_and_copies_nothing():
    _remote_dest_leaves_source_alone(SRC, ["UID COPY 1:*", "UID COPY 2"])


def test_move_to_remote_refers_and_moves_nothing():
    _remote_dest_leaves_source_alone(SRC, ["MOVE 1:*", "MOVE 2",
                                           "MOVE 1,3:4"])


def test_uid_move_to_remote_refers_and_moves_nothing():
    _remote_dest_leaves_source_alone(SRC, ["UID MOVE 1:*", "UID MOVE 2"])


def test_private_source_to_remote_refers():
    _remote_dest_leaves_source_alone(PRIV_SRC, ["COPY 1:*", "MOVE 1:*",
                                                "UID COPY 1:*",
                                                "UID MOVE 1:*"])


def test_remote_dest_not_created_on_a():
    e = env()
    with e.client() as c:
        expect_not_listed(c, "Public/T3Copy*", ("T3CopyDest", "T3CopyTree"),
                          "A after COPY/MOVE to remote destinations")


def test_copy_to_local_destination_works():
    e = env()
    before_dest = _status(LOCAL_DEST)
    with e.client() as c:
        expect_ok(c.command("SELECT " + SRC), "SELECT " + SRC)
        r = c.command("COPY 1:2 " + LOCAL_DEST)
        expect_ok(r, "COPY 1:2 %s (local)" % LOCAL_DEST)
        r = c.command("UID COPY 3 " + LOCAL_DEST)
        expect_ok(r, "UID COPY 3 %s (local)" % LOCAL_DEST)
        expect_usable(c)
    after_dest = _status(LOCAL_DEST)
    expect_eq(after_dest[0], before_dest[0] + 3,
              "messages in %s after copying 3 there" % LOCAL_DEST)
    expect_eq(_status(SRC)[0], len(_SEED), "messages in %s after COPY" % SRC)


def test_move_to_local_destination_works():
    e = env()
    before_dest = _status(LOCAL_DEST)
    with e.client() as c:
        expect_ok(c.command("SELECT " + MOVE_SRC), "SELECT " + MOVE_SRC)
        r = c.command("MOVE 1 " + LOCAL_DEST)
        expect_ok(r, "MOVE 1 %s (local)" % LOCAL_DEST)
        expect(any(re.match(r"^\* 1 EXPUNGE$", l) for l in r.untagged),
               "MOVE (local): no '* 1 EXPUNGE' in %r" % r.untagged)
        expect_usable(c)
    expect_eq(_status(MOVE_SRC)[0], 0, "messages in %s after MOVE" % MOVE_SRC)
    expect_eq(_status(LOCAL_DEST)[0], before_dest[0] + 1,
              "messages in %s after MOVE" % LOCAL_DEST)

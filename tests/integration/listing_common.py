# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""Parsing and checking LIST / LSUB responses, shared by test_listing and
test_subscriptions."""

import re

from common import Failure, expect, expect_eq, expect_tagged
from harness.imap import strip_timing

_LIST_RE = re.compile(r'^\* (LIST|LSUB) \(([^)]*)\) (NIL|"(?:\\.|[^"\\])") (.*)$',
                      re.S)


def astring(text):
    """(value, rest) of an IMAP astring at the start of text."""
    if text.startswith('"'):
        out, i = [], 1
        while text[i] != '"':
            if text[i] == "\\":
                i += 1
            out.append(text[i])
            i += 1
        return "".join(out), text[i + 1:]
    m = re.match(r"\{(\d+)\}\r\n", text)
    if m:
        n = int(m.group(1))
        return text[m.end():m.end() + n], text[m.end() + n:]
    name, _, rest = text.partition(" ")
    return name, (" " + rest if rest else "")


def F(*flags):
    """Flags compared case-insensitively."""
    return frozenset(f.lower() for f in flags)


def parse_list(line):
    """(kind, flags, separator, name, extended data) of a LIST or LSUB
    response line."""
    m = _LIST_RE.match(line)
    if not m:
        raise Failure("not a LIST/LSUB line: %r" % line)
    name, rest = astring(m.group(4))
    return m.group(1), F(*m.group(2).split()), m.group(3), name, rest.strip()


def listing(resp, kind="LIST", extended=False):
    """{name: flags} (or {name: (flags, extended data)}) of the response's
    LIST (LSUB) lines; fails if a name appears twice or a line is not a
    well-formed LIST line with separator "/"."""
    out = {}
    for line in resp.untagged:
        if not line.startswith("* %s " % kind):
            continue
        _, flags, sep, name, rest = parse_list(line)
        expect_eq(sep, '"/"', "separator in %r" % line)
        expect(name not in out, "%s listed twice: %r" % (name, [
            l for l in resp.untagged if name in l]))
        out[name] = (flags, rest) if extended else flags
    return out


def expect_done(resp, want, what):
    """The tagged text must be want. Dovecot 2.3 replaces a final "." of
    its tagged text by " (timing secs).", so "OK List completed." arrives
    as "OK List completed (0.001 + 0.000 secs)."; the final "." of want is
    not compared when the timing is there."""
    if strip_timing(resp.raw_text) != resp.raw_text and want.endswith("."):
        want = want[:-1]
    expect_tagged(resp, want, what)


def show(resp):
    return "\n    ".join(resp.untagged + [resp.tagged])


def expect_listing(resp, want, what, kind="LIST"):
    """The command ended OK and its LIST (LSUB) lines are exactly want,
    {name: flags}."""
    expect_done(resp, "OK %s completed." % ("Lsub" if kind == "LSUB"
                                              else "List"), what)
    got = listing(resp, kind)
    if got != want:
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        wrong = sorted("%s: expected (%s) got (%s)" % (
            n, " ".join(sorted(want[n])), " ".join(sorted(got[n])))
            for n in set(got) & set(want) if got[n] != want[n])
        raise Failure("%s:\n  missing: %r\n  unexpected: %r\n  "
                      "wrong flags: %r\n  response:\n    %s"
                      % (what, missing, extra, wrong, show(resp)))

# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""RLIST (RFC 2193 section 5) and LIST (REMOTE) (RFC 5258) on the home
server A, against directory entries of its own (Public/L4...); plain LIST
hides remote mailboxes. The directory outage is checked on a small slapd and
Dovecot of this module's own (cache TTL 1 s).

Entries added by setup_module (B and C are the shared remote servers):

  Public/L4R/Leaf          B      mailbox scope, nothing below
  Public/L4R/Deep/Leaf     B      (Public/L4R/Deep and Public/L4R exist
                                   nowhere: synthesized parents)
  Public/L4R/Parent        B      with Public/L4R/Parent/Kid (C) below it
  Public/L4R/Tree          B      subtree scope
  Public/L4Cafe            B      "Public/L4Caf\u00e9" in the directory (UTF-8)
  Public/L4M/Both          B      ... but also a local mailbox on A
  Public/L4M/Local/Kid     B      below the local mailbox Public/L4M/Local
  Public/L4M/Mine          A      this server's own entry, local mailbox
  Public/L4M/Ghost         A, B   lists this server: not remote, and does not
                                   exist here
Local mailboxes on A (made on disk before the entries were added, so no
session has a stale cache): Public/L4M/Local, Public/L4M/Both,
Public/L4M/Mine.
"""

import re
import time

from common import (check_plugin_built, crash_lines, env, expect, expect_eq,
                    expect_ok, expect_tagged, expect_usable, ou_referrals_ldif,
                    plugin_settings, referral_entry, Failure,
                    CAROL, PASSWORD, USER)
from harness.dovecot import Dovecot
from listing_common import (astring, expect_done, expect_listing, F,
                            listing, parse_list, show)
from harness.imap import ImapClient, ImapDisconnected, strip_timing
from harness.ports import free_port
from harness.slapd import Slapd
from common import (crash_lines, env, expect, expect_eq, expect_no_crash,
                    expect_ok, expect_usable, login, own_directory,
                    own_dovecot, referral_entry, stop_servers,
                    wait_sessions_ended)
from listing_common import (astring, expect_done, expect_listing, F,
                            listing, parse_list, show)
from harness.imap import ImapDisconnected

CAFE = "Public/L4Caf\u00e9"
CAFE_WIRE = "Public/L4Caf&AOk-"
UNAVAILABLE = ("NO [UNAVAILABLE] Referral directory is unavailable, "
               "try again later")

LOCAL_ON_A = ("L4M/Local", "L4M/Both", "L4M/Mine")


def _entries(e):
    a = "10 127.0.0.1:%d" % e.port_a
    b = "10 127.0.0.1:%d" % e.port_b
    c = "10 127.0.0.1:%d" % e.port_c
    return [
        ("Public/L4R/Leaf", [b], {}),
        ("Public/L4R/Deep/Leaf", [b], {}),
        ("Public/L4R/Parent", [b], {}),
        ("Public/L4R/Parent/Kid", [c], {}),
        ("Public/L4R/Tree", [b], {"scope": "subtree"}),
        (CAFE, [b], {}),
        ("Public/L4M/Both", [b], {}),
        ("Public/L4M/Local/Kid", [b], {}),
        ("Public/L4M/Mine", [a], {}),
        ("Public/L4M/Ghost", [a, b], {}),
    ]


def setup_module():
    e = env()
    for name in LOCAL_ON_A:
        e.a.create_public_maildir(name)
    for mailbox, servers, opts in _entries(e):
        e.ldap.ldapadd(referral_entry(None, mailbox, servers, **opts)[1])


# ----------------------------------------------------- RLIST (section 1)
RLIST_L4R = {
    "Public/L4R": F("\\Noselect", "\\HasChildren"),
    "Public/L4R/Deep": F("\\Noselect", "\\HasChildren"),
    "Public/L4R/Deep/Leaf": F("\\HasNoChildren"),
    "Public/L4R/Leaf": F("\\HasNoChildren"),
    "Public/L4R/Parent": F("\\HasChildren"),
    "Public/L4R/Parent/Kid": F("\\HasNoChildren"),
    "Public/L4R/Tree": F(),
}


def test_rlist_remote_mailboxes_and_flags():
    e = env()
    with e.client() as c:
        r = c.command('RLIST "" "Public/L4R*"')
        expect_listing(r, RLIST_L4R, 'RLIST "" "Public/L4R*"')
        for line in r.untagged:
            expect("\\remote" not in line.lower(),
                   "RLIST must not print \\Remote (RFC 2193 predates it): %r"
                   % line)
        expect_usable(c)


def test_rlist_exact_lines():
    e = env()
    with e.client() as c:
        r = c.command('RLIST "" "Public/L4R/Parent*"')
        expect_done(r, "OK List completed.", "RLIST Public/L4R/Parent*")
        expect_eq(sorted(r.untagged), sorted([
            '* LIST (\\HasChildren) "/" Public/L4R/Parent',
            '* LIST (\\HasNoChildren) "/" Public/L4R/Parent/Kid']),
            'RLIST "" "Public/L4R/Parent*" lines')
        r = c.command('RLIST "" Public/L4R/Tree')
        expect_done(r, "OK List completed.", "RLIST Public/L4R/Tree")
        expect_eq(r.untagged, ['* LIST () "/" Public/L4R/Tree'],
                  "RLIST of a subtree entry (no children attribute)")


def test_rlist_modified_utf7_name():
    e = env()
    with e.client() as c:
        r = c.command('RLIST "" "Public/L4Caf*"')
        expect_done(r, "OK List completed.", 'RLIST "" "Public/L4Caf*"')
        expect_eq(r.untagged, ['* LIST (\\HasNoChildren) "/" ' + CAFE_WIRE],
                  'RLIST "" "Public/L4Caf*" (directory holds %r)' % CAFE)
        r = c.command('RLIST "" ' + CAFE_WIRE)
        expect_done(r, "OK List completed.", "RLIST of the mUTF-7 name")
        expect_eq(r.untagged, ['* LIST (\\HasNoChildren) "/" ' + CAFE_WIRE],
                  "RLIST \"\" %s" % CAFE_WIRE)


def test_rlist_percent_first_level_only():
    e = env()
    with e.client() as c:
        r = c.command('RLIST "" "Public/L4R/%"')
        expect_listing(r, {
            "Public/L4R/Deep": F("\\Noselect", "\\HasChildren"),
            "Public/L4R/Leaf": F("\\HasNoChildren"),
            "Public/L4R/Parent": F("\\HasChildren"),
            "Public/L4R/Tree": F(),
        }, 'RLIST "" "Public/L4R/%"')

        r = c.command('RLIST "" "Public/%"')
        expect_done(r, "OK List completed.", 'RLIST "" "Public/%"')
        got = listing(r)
        deeper = [n for n in got if "/" in n[len("Public/"):]]
        expect(not deeper, 'RLIST "" "Public/%%" listed deeper names: %r'
               % deeper)
        for name, flags in (("Public/L4R", F("\\Noselect", "\\HasChildren")),
                            ("Public/L4M", F("\\Noselect", "\\HasChildren")),
                            (CAFE_WIRE, F("\\HasNoChildren")),
                            ("Public/Sales", F("\\HasNoChildren"))):
            expect(name in got, 'RLIST "" "Public/%%" lacks %s:\n    %s'
                   % (name, show(r)))
            expect_eq(got[name], flags, "flags of %s in RLIST \"\" "
                      "\"Public/%%\"" % name)


def test_rlist_reference():
    e = env()
    with e.client() as c:
        for ref, pat, same in (('"Public/"', '"%"', '"Public/%"'),
                               ('"Public/L4R/"', '"%"', '"Public/L4R/%"'),
                               ('"Public/L4R/"', '"*"', '"Public/L4R/*"'),
                               ('"Public/"', '"L4R*"', '"Public/L4R*"')):
            r1 = c.command("RLIST %s %s" % (ref, pat))
            r2 = c.command('RLIST "" %s' % same)
            expect_done(r1, "OK List completed.", "RLIST %s %s" % (ref, pat))
            expect_done(r2, "OK List completed.", 'RLIST "" %s' % same)
            expect_eq(sorted(r1.untagged), sorted(r2.untagged),
                      'RLIST %s %s against RLIST "" %s' % (ref, pat, same))
            expect(r1.untagged, "RLIST %s %s listed nothing" % (ref, pat))
        r = c.command('RLIST "Public/L4R/" "%"')
        expect_listing(r, {
            "Public/L4R/Deep": F("\\Noselect", "\\HasChildren"),
            "Public/L4R/Leaf": F("\\HasNoChildren"),
            "Public/L4R/Parent": F("\\HasChildren"),
            "Public/L4R/Tree": F(),
        }, 'RLIST "Public/L4R/" "%"')


def test_rlist_contains_everything_list_does():
    e = env()
    with e.client() as c:
        rl = c.command('LIST "" "*"')
        expect_done(rl, "OK List completed.", 'LIST "" "*"')
        rr = c.command('RLIST "" "*"')
        expect_done(rr, "OK List completed.", 'RLIST "" "*"')
        plain = listing(rl)
        remote = listing(rr)
        missing = sorted(set(plain) - set(remote))
        expect(not missing, 'names of LIST "" "*" missing from RLIST: %r'
               % missing)
        expect("INBOX" in remote, "RLIST lacks INBOX")
        for name, flags in RLIST_L4R.items():
            expect_eq(remote.get(name), flags,
                      'flags of %s in RLIST "" "*"' % name)
        expect_eq(remote.get(CAFE_WIRE), F("\\HasNoChildren"),
                  'flags of %s in RLIST "" "*"' % CAFE_WIRE)


def test_rlist_local_and_remote_listed_once():
    e = env()
    with e.client() as c:
        r = c.command('RLIST "" "Public/L4M*"')
        got = listing(r)   # fails on duplicates
        expect_done(r, "OK List completed.", 'RLIST "" "Public/L4M*"')
        want_names = {"Public/L4M", "Public/L4M/Both", "Public/L4M/Local",
                      "Public/L4M/Local/Kid", "Public/L4M/Mine"}
        expect_eq(set(got), want_names, 'names of RLIST "" "Public/L4M*" '
                  '(Public/L4M/Ghost names this server: not remote, and it '
                  'does not exist here)')
        expect("\\noselect" not in got["Public/L4M/Both"],
               "Public/L4M/Both exists (here and remotely) but is \\Noselect")
        expect_eq(got["Public/L4M/Local"], F("\\HasChildren"),
                  "local Public/L4M/Local with the remote Public/L4M/Local/Kid"
                  " below it")
        expect_eq(got["Public/L4M/Local/Kid"], F("\\HasNoChildren"),
                  "Public/L4M/Local/Kid")
        expect_eq(got["Public/L4M/Mine"], F("\\HasNoChildren"),
                  "Public/L4M/Mine (entry names this server)")


# --------------------------------------------- plain LIST (section 2)
def test_list_hides_remote_mailboxes():
    e = env()
    with e.client() as c:
        r = c.command('LIST "" "Public/L4*"')
        expect_done(r, "OK List completed.", 'LIST "" "Public/L4*"')
        got = listing(r)
        expect_eq(sorted(got), ["Public/L4M", "Public/L4M/Local",
                                "Public/L4M/Mine"],
                  'LIST "" "Public/L4*": remote mailboxes (and the local '
                  'Public/L4M/Both, which the directory places on B) must not '
                  'be listed')
        r = c.command('LIST "" "*"')
        got = listing(r)
        leaked = sorted(n for n in got if n in RLIST_L4R or n == CAFE_WIRE
                        or n in ("Public/L4M/Both", "Public/L4M/Local/Kid",
                                 "Public/Sales", "Public/Tree"))
        expect(not leaked, 'LIST "" "*" shows remote mailboxes: %r' % leaked)
        r = c.command('LIST "Public/" "L4M/%"')
        expect_eq(sorted(listing(r)), ["Public/L4M/Local", "Public/L4M/Mine"],
                  'LIST "Public/" "L4M/%"')


def test_list_extended_without_remote_hides_remote():
    e = env()
    with e.client() as c:
        r = c.command('LIST () "" "Public/L4*" RETURN (CHILDREN)')
        expect_done(r, "OK List completed.", "LIST () ... RETURN (CHILDREN)")
        expect_eq(sorted(listing(r)), ["Public/L4M", "Public/L4M/Local",
                                       "Public/L4M/Mine"],
                  'LIST () "" "Public/L4*" RETURN (CHILDREN)')


def test_local_mailbox_placed_elsewhere_later():
    """A mailbox created on A, then given to B in the directory: a fresh
    session hides it from LIST and shows it once in RLIST."""
    e = env()
    name = "Moved-L4-%d" % int(time.time() * 1000 % 1000000)
    e.a.create_public_maildir(name)
    with e.client() as c:
        expect_eq(sorted(listing(c.command('LIST "" "Public/%s"' % name))),
                  ["Public/" + name], "LIST before the entry exists")
    e.ldap.ldapadd(referral_entry(None, "Public/" + name,
                                  ["10 127.0.0.1:%d" % e.port_b])[1])
    with e.client() as c:
        r = c.command('LIST "" "Public/%s"' % name)
        expect_ok(r, "LIST after the entry was added")
        expect_eq(listing(r), {}, "LIST of a local mailbox the directory "
                  "places on B (fresh session)")
        r = c.command('RLIST "" "Public/%s"' % name)
        expect_done(r, "OK List completed.", "RLIST")
        got = listing(r)
        expect_eq(sorted(got), ["Public/" + name], "RLIST of it")
        expect("\\noselect" not in got["Public/" + name],
               "it exists: not \\Noselect (%r)" % r.untagged)


# ---------------------------------------------- LIST (REMOTE) (section 3)
LIST_REMOTE_L4 = {
    "Public/L4R": F("\\NonExistent"),
    "Public/L4R/Deep": F("\\NonExistent"),
    "Public/L4R/Deep/Leaf": F("\\Remote"),
    "Public/L4R/Leaf": F("\\Remote"),
    "Public/L4R/Parent": F("\\Remote"),
    "Public/L4R/Parent/Kid": F("\\Remote"),
    "Public/L4R/Tree": F("\\Remote"),
    CAFE_WIRE: F("\\Remote"),
    "Public/L4M": F("\\NonExistent"),
    "Public/L4M/Both": F("\\Remote"),
    "Public/L4M/Local": F(),
    "Public/L4M/Local/Kid": F("\\Remote"),
    "Public/L4M/Mine": F(),
}

LIST_REMOTE_CHILDREN_L4 = {
    "Public/L4R": F("\\NonExistent", "\\HasChildren"),
    "Public/L4R/Deep": F("\\NonExistent", "\\HasChildren"),
    "Public/L4R/Deep/Leaf": F("\\Remote", "\\HasNoChildren"),
    "Public/L4R/Leaf": F("\\Remote", "\\HasNoChildren"),
    "Public/L4R/Parent": F("\\Remote", "\\HasChildren"),
    "Public/L4R/Parent/Kid": F("\\Remote", "\\HasNoChildren"),
    "Public/L4R/Tree": F("\\Remote"),
    CAFE_WIRE: F("\\Remote", "\\HasNoChildren"),
    "Public/L4M": F("\\NonExistent", "\\HasChildren"),
    "Public/L4M/Both": F("\\Remote", "\\HasNoChildren"),
    "Public/L4M/Local": F("\\HasChildren"),
    "Public/L4M/Local/Kid": F("\\Remote", "\\HasNoChildren"),
    "Public/L4M/Mine": F("\\HasNoChildren"),
}


def test_list_remote():
    e = env()
    with e.client() as c:
        r = c.command('LIST (REMOTE) "" "Public/L4*"')
        expect_listing(r, LIST_REMOTE_L4, 'LIST (REMOTE) "" "Public/L4*"')
        r = c.command('LIST (REMOTE) "" Public/L4R/Leaf')
        expect_done(r, "OK List completed.", "LIST (REMOTE) Public/L4R/Leaf")
        expect_eq(r.untagged, ['* LIST (\\Remote) "/" Public/L4R/Leaf'],
                  "LIST (REMOTE) of one remote mailbox")


def test_list_remote_star_contains_rlist_names():
    e = env()
    with e.client() as c:
        rr = c.command('RLIST "" "*"')
        rx = c.command('LIST (REMOTE) "" "*"')
        expect_done(rx, "OK List completed.", 'LIST (REMOTE) "" "*"')
        expect_eq(sorted(listing(rx)), sorted(listing(rr)),
                  'names of LIST (REMOTE) "" "*" against RLIST "" "*"')


def test_list_remote_return_children():
    e = env()
    with e.client() as c:
        r = c.command('LIST (REMOTE) "" "Public/L4*" RETURN (CHILDREN)')
        expect_listing(r, LIST_REMOTE_CHILDREN_L4,
                        'LIST (REMOTE) "" "Public/L4*" RETURN (CHILDREN)')


def test_list_remote_return_status():
    e = env()
    cmd = ('LIST (REMOTE) "" "Public/L4*" RETURN (CHILDREN SUBSCRIBED '
           'STATUS (MESSAGES UIDNEXT))')
    with e.client() as c:
        r = c.command(cmd)
        expect_done(r, "OK List completed.", cmd)
        got = listing(r)
        expect_eq(set(got), set(LIST_REMOTE_CHILDREN_L4), "names of " + cmd)
        for name, flags in LIST_REMOTE_CHILDREN_L4.items():
            expect_eq(got[name] - F("\\Subscribed"), flags,
                      "flags of %s in %s" % (name, cmd))
        status = {}
        for line in r.untagged:
            if line.startswith("* STATUS "):
                name, rest = astring(line[len("* STATUS "):])
                status[name] = rest.strip()
        expect_eq(sorted(status), ["Public/L4M/Local", "Public/L4M/Mine"],
                  "mailboxes with STATUS lines (local selectable only) in "
                  "%s:\n    %s" % (cmd, show(r)))
        for name, items in status.items():
            expect(re.match(r"^\(MESSAGES \d+ UIDNEXT \d+\)$", items),
                   "STATUS of %s: %r" % (name, items))
        # every STATUS line follows its mailbox's LIST line
        for i, line in enumerate(r.untagged):
            if line.startswith("* STATUS "):
                name = astring(line[len("* STATUS "):])[0]
                expect(i > 0 and parse_list(r.untagged[i - 1])[3] == name,
                       "STATUS line not right after its LIST line: %r"
                       % line)
        expect_usable(c)


def _answers_bad_or_no(commands):
    """Each command must get a tagged BAD or NO, the session going on;
    all commands are tried and every failure reported."""
    e = env()
    problems = []
    for cmd in commands:
        offset = e.a.log_size()
        with e.client() as c:
            try:
                r = c.command(cmd)
                if r.status not in ("BAD", "NO"):
                    problems.append("%s: expected BAD or NO, got %r (%d "
                                    "untagged lines, first %r)" % (
                                        cmd, r.tagged, len(r.untagged),
                                        r.untagged[:2]))
                    continue
                expect_usable(c, cmd)
            except ImapDisconnected as ex:
                problems.append("%s: the server closed the connection "
                                "instead of answering (%s); log: %s" % (
                                    cmd, ex, " | ".join(crash_lines(
                                        wait_sessions_ended(e.a, offset)))))
    expect(not problems, "\n  ".join(problems))


def test_rlist_with_extended_arguments_answers_bad():
    """RLIST has LIST's basic syntax only (RFC 2193 section 5: reference
    and mailbox name): LIST-EXTENDED selection options, a pattern list or
    RETURN options are a syntax error, never a crash."""
    _answers_bad_or_no(['RLIST (REMOTE) "" "*"',
                        'RLIST "" "*" RETURN (CHILDREN)',
                        'RLIST "" ("*")',
                        'RLSUB (REMOTE) "" "*"'])


def test_rlist_rlsub_missing_arguments_answer_bad():
    _answers_bad_or_no(["RLIST", 'RLIST ""', "RLSUB", 'RLSUB ""'])


# ------------------------------------------ arguments (section 4)
# One parser reads the arguments of RLIST, RLSUB and LIST (REMOTE); these
# pin its answers. Bob's subscriptions on A belong to this section.
BOB_SUBSCRIBED = ("Public/L4R/Parent", "Public/L4R/Deep/Leaf",
                  "Public/L4M/Local")
_bob_ready = False


def _bob_client():
    """A session of bob on A, with BOB_SUBSCRIBED subscribed (remote ones
    recorded at home, the default)."""
    global _bob_ready
    e = env()
    c = e.client(user="bob")
    if not _bob_ready:
        for name in BOB_SUBSCRIBED:
            expect_done(c.command("SUBSCRIBE " + name),
                        "OK Subscribe completed.", "SUBSCRIBE %s as bob"
                        % name)
        _bob_ready = True
    return c


def _bad(command, text):
    return "BAD Error in IMAP command %s: %s." % (command, text)


_LEAF = ' "" Public/L4R/Leaf'
BAD_ARGUMENTS = [
    # options are atoms from the table of their own list
    ('LIST (REMOTE FOO) "" "*"', "Unknown LIST selection option"),
    ('LIST (FOO REMOTE) "" "*"', "Unknown LIST selection option"),
    ('LIST (REMOTE "SUBSCRIBED") "" "*"', "Unknown LIST selection option"),
    ('LIST (REMOTE (SUBSCRIBED)) "" "*"', "Unknown LIST selection option"),
    ('LIST (REMOTE CHILDREN) "" "*"', "Unknown LIST selection option"),
    ("LIST (REMOTE)" + _LEAF + " RETURN (FOO)", "Unknown LIST return option"),
    ("LIST (REMOTE)" + _LEAF + " RETURN (REMOTE)",
     "Unknown LIST return option"),
    ("LIST (REMOTE)" + _LEAF + " RETURN (RECURSIVEMATCH)",
     "Unknown LIST return option"),
    # RFC 5258 section 3.1: not alone, nor with REMOTE only
    ('LIST (REMOTE RECURSIVEMATCH) "" "*"',
     "RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE"),
    # STATUS (RFC 5819)
    ("LIST (REMOTE)" + _LEAF + " RETURN (STATUS (MESSAGES) STATUS (UIDNEXT))",
     "STATUS return option given twice"),
    ("LIST (REMOTE)" + _LEAF + " RETURN (STATUS)",
     "STATUS return option needs a list of items"),
    ("LIST (REMOTE)" + _LEAF + " RETURN (STATUS MESSAGES)",
     "STATUS return option needs a list of items"),
    ("LIST (REMOTE)" + _LEAF + " RETURN (STATUS ())", "Empty status list"),
    ("LIST (REMOTE)" + _LEAF + " RETURN (STATUS (foo))",
     "Invalid status item FOO"),
    # RETURN and what follows the pattern
    ("LIST (REMOTE)" + _LEAF + " RETURN",
     "RETURN needs a list of return options"),
    ("LIST (REMOTE)" + _LEAF + " RETURN CHILDREN",
     "RETURN needs a list of return options"),
    ("LIST (REMOTE)" + _LEAF + " RETURN (CHILDREN) RETURN (CHILDREN)",
     "Unexpected arguments after the mailbox pattern"),
    ("LIST (REMOTE)" + _LEAF + " x",
     "Unexpected arguments after the mailbox pattern"),
    # missing arguments
    ("LIST (REMOTE)", "Missing or invalid reference"),
    ('LIST (REMOTE) ""', "Missing or invalid mailbox pattern"),
    ('LIST (REMOTE) () "*"', "Missing or invalid reference"),
    ('LIST (REMOTE) "" ()', "Empty pattern list"),
    ('LIST (REMOTE) "" (("*"))', "Invalid mailbox pattern"),
]
# RLIST and RLSUB have one syntax (RFC 2193 section 5): any deviation gets
# the same answer
BAD_BASIC = ["", '""', '"" "*" x', '(REMOTE) "" "*"', '"" ("*")',
             '"" "*" RETURN (CHILDREN)', '() "" "*"']


def test_bad_arguments_exact_answers():
    e = env()
    cases = [(cmd, _bad("LIST", text)) for cmd, text in BAD_ARGUMENTS]
    for name in ("RLIST", "RLSUB"):
        cases += [((name + " " + args).strip(), _bad(
            name, "%s takes a reference and a mailbox pattern" % name))
            for args in BAD_BASIC]
    problems = []
    with e.client() as c:
        for i, (cmd, want) in enumerate(cases):
            if i % 10 == 9:
                # Dovecot ends a session after 20 BAD answers in a row
                expect_usable(c, "after %s" % cmd)
            r = c.command(cmd)
            got = strip_timing(r.raw_text)
            if got != r.raw_text:
                # the timing statistics replace the final "."
                got += "."
            if got != want or r.untagged:
                problems.append("%s\n      expected %r\n      got      %r%s"
                                % (cmd, want, got, "".join(
                                    "\n      untagged " + l
                                    for l in r.untagged)))
        expect_usable(c)
    expect(not problems, "%d of %d commands answered otherwise:\n  %s"
           % (len(problems), len(cases), "\n  ".join(problems)))


def _expect_lines(resp, want, what, done="OK List completed."):
    """The command ended with done, and its untagged lines are exactly
    want, in any order of the LIST lines; a STATUS line must come right
    after the LIST line of its mailbox (given as a tuple in want)."""
    expect_done(resp, done, what)
    blocks = []
    for line in resp.untagged:
        if line.startswith("* STATUS ") and blocks:
            blocks[-1] = blocks[-1] + (line,)
        else:
            blocks.append((line,))
    want = [w if isinstance(w, tuple) else (w,) for w in want]
    expect_eq(sorted(blocks), sorted(want), "%s, untagged lines" % what)


def test_list_remote_option_words_any_case_and_repeated():
    with _bob_client() as c:
        want = ['* LIST (\\Subscribed \\HasChildren \\Remote) "/" '
                'Public/L4R/Parent']
        for cmd in ('LIST (REMOTE) "" Public/L4R/Parent '
                    'RETURN (CHILDREN SUBSCRIBED)',
                    'list (remote Remote) "" Public/L4R/Parent '
                    'return (children Subscribed CHILDREN subscribed)'):
            _expect_lines(c.command(cmd), want, cmd)
        cmd = 'LIST (REMOTE) "" Public/L4R/Parent RETURN ()'
        _expect_lines(c.command(cmd),
                      ['* LIST (\\Remote) "/" Public/L4R/Parent'], cmd)


def test_list_remote_pattern_list():
    with _bob_client() as c:
        cmd = 'LIST (REMOTE) "" (Public/L4R/Leaf "Public/L4R/T*" Public/L4M)'
        _expect_lines(c.command(cmd), [
            '* LIST (\\Remote) "/" Public/L4R/Leaf',
            '* LIST (\\Remote) "/" Public/L4R/Tree',
            '* LIST (\\NonExistent) "/" Public/L4M'], cmd)


def test_rlist_with_reference_exact():
    with _bob_client() as c:
        cmd = 'RLIST "Public/L4R/" "Parent*"'
        _expect_lines(c.command(cmd), [
            '* LIST (\\HasChildren) "/" Public/L4R/Parent',
            '* LIST (\\HasNoChildren) "/" Public/L4R/Parent/Kid'], cmd)
        cmd = 'RLIST "Public/L4R" "/Deep/%"'
        _expect_lines(c.command(cmd), [
            '* LIST (\\HasNoChildren) "/" Public/L4R/Deep/Leaf'], cmd)
        # the hierarchy separator request (RFC 3501 section 6.3.8)
        for cmd, root in (('RLIST "" ""', '""'),
                          ('RLIST "Public/L4R/" ""', "Public/")):
            _expect_lines(c.command(cmd),
                          ['* LIST (\\Noselect) "/" ' + root], cmd)


def test_rlsub_with_reference_exact():
    with _bob_client() as c:
        # '%' at the end: the unsubscribed parent of a subscribed mailbox
        # is listed \Noselect (RFC 3501 section 6.3.9); '*': it is not
        for cmd, want in (
                ('RLSUB "Public/L4R/" "%"', [
                    '* LSUB () "/" Public/L4R/Parent',
                    '* LSUB (\\Noselect) "/" Public/L4R/Deep']),
                ('RLSUB "Public/L4R/" "*"', [
                    '* LSUB () "/" Public/L4R/Parent',
                    '* LSUB () "/" Public/L4R/Deep/Leaf']),
                ('RLSUB "Public/" "L4M/*"', [
                    '* LSUB () "/" Public/L4M/Local']),
                ('RLSUB "Public/L4R/" "Leaf"', [])):
            _expect_lines(c.command(cmd), want, cmd, "OK Lsub completed.")


def test_list_remote_subscribed_children_status_exact():
    with _bob_client() as c:
        cmd = ('LIST (REMOTE SUBSCRIBED) "" ("Public/L4R*" "Public/L4M*") '
               'RETURN (CHILDREN STATUS (MESSAGES))')
        _expect_lines(c.command(cmd), [
            '* LIST (\\Subscribed \\HasChildren \\Remote) "/" '
            'Public/L4R/Parent',
            '* LIST (\\Subscribed \\HasNoChildren \\Remote) "/" '
            'Public/L4R/Deep/Leaf',
            ('* LIST (\\Subscribed \\HasChildren) "/" Public/L4M/Local',
             "* STATUS Public/L4M/Local (MESSAGES 0)")], cmd)
        cmd = 'LIST (REMOTE SUBSCRIBED) "Public/L4R/" "*"'
        _expect_lines(c.command(cmd), [
            '* LIST (\\Subscribed \\Remote) "/" Public/L4R/Parent',
            '* LIST (\\Subscribed \\Remote) "/" Public/L4R/Deep/Leaf'], cmd)


def test_list_remote_recursivematch_childinfo_exact():
    """RFC 5258 section 3.5: the parent listed for a subscribed child
    carries one ("CHILDINFO" (...)) extended item."""
    with _bob_client() as c:
        cmd = 'LIST (REMOTE SUBSCRIBED RECURSIVEMATCH) "" "Public/L4R/%"'
        _expect_lines(c.command(cmd), [
            '* LIST (\\Subscribed \\Remote) "/" Public/L4R/Parent',
            '* LIST (\\NonExistent) "/" Public/L4R/Deep '
            '("CHILDINFO" ("SUBSCRIBED"))'], cmd)


# Where the directory has nothing, RLIST, RLSUB and LIST (REMOTE) must
# answer exactly what Dovecot's own LIST and LSUB answer for the same
# arguments: the same lines in the same order, the same tagged reply. The
# only deliberate difference is the spelling of the CHILDINFO tag, which we
# quote as RFC 5258's examples do (both are valid astrings). Carol's
# private names and Public/Same5, which no test gives an entry.
SAME_PUBLIC = ("Same5/a", "Same5/a/b", "Same5/c")
SAME_PRIVATE = ("Same5/x", "Same5/x/y", "Same5/z", "Same5/gone/q")
SAME_SUBSCRIBED = ("Same5/x/y", "Same5/gone/q", "Public/Same5/a/b")
SAME_PATTERNS = ['"" "Same5*"', '"Same5/" "%"', '"" "Public/Same5/%"',
                 '"Public/" "Same5/*"', '"" "Public/Same5"', '"" "Nothing5"']
SAME_PATTERN_LISTS = ['"" ("Same5*" "Public/Same5*")',
                      '"Public/" ("Same5/%" "Same5")']
# Odd but valid arguments: NIL (an atom, the name "NIL"), names that are
# not valid modified UTF-7 (matched as sent), LITERAL+ literals, 8-bit
# bytes, and a long pattern list.
SAME_ODD = [b'NIL "Same5*"', b'"" NIL', b'"&" "Same5*"', b'"" "Same5&"',
            b'"" "&Jjo"', b'"" "Same5/&AGE-"', b'"" "&-Same5*"',
            b'"" "Same5/\\*"', b'"" {7+}\r\nSame5/*',
            b'{6+}\r\nSame5/ {1+}\r\n%', b'"" {7+}\r\nSame5\xff*',
            b'"" {7+}\r\nSame5\xc3*']
SAME_ODD_LISTS = [b'"" (' + b" ".join(b'"Same5/x%d*"' % i
                                       for i in range(2000)) + b')',
                  b'"" ({7+}\r\nSame5/* "&" NIL)']
SAME_SELECTIONS = ["", "SUBSCRIBED", "SUBSCRIBED RECURSIVEMATCH"]
SAME_RETURNS = ["", " RETURN (CHILDREN SUBSCRIBED)",
                " RETURN (CHILDREN STATUS (MESSAGES UIDNEXT))"]


def _same_answer(c, dovecot_cmd, ours_cmd, problems):
    """dovecot_cmd and ours_cmd: str, or bytes sent as they are."""
    want = c.command(dovecot_cmd)
    got = c.command(ours_cmd)
    want_lines = [l.replace(" (CHILDINFO (", ' ("CHILDINFO" (')
                  for l in want.untagged]
    if (got.untagged, strip_timing(got.raw_text)) != \
            (want_lines, strip_timing(want.raw_text)):
        problems.append("%s\n      %r %r\n    %s\n      %r %r" % (
            _shown(dovecot_cmd), want_lines, want.raw_text,
            _shown(ours_cmd), got.untagged, got.raw_text))


def _shown(cmd):
    return (cmd if isinstance(cmd, str)
            else cmd.decode("utf-8", "backslashreplace"))[:200]


def test_same_answers_as_dovecot_without_entries():
    e = env()
    for name in SAME_PUBLIC:
        e.a.create_public_maildir(name)
    problems = []
    with e.client(user=CAROL) as c:
        for name in SAME_PRIVATE:
            expect_ok(c.command("CREATE " + name), "CREATE " + name)
        for name in SAME_SUBSCRIBED:
            expect_ok(c.command("SUBSCRIBE " + name), "SUBSCRIBE " + name)
        # a subscription whose mailbox is gone
        expect_ok(c.command("DELETE Same5/gone/q"), "DELETE Same5/gone/q")
        for args in SAME_PATTERNS:
            _same_answer(c, "LIST " + args, "RLIST " + args, problems)
            _same_answer(c, "LSUB " + args, "RLSUB " + args, problems)
        for args in SAME_PATTERNS + SAME_PATTERN_LISTS:
            for sel in SAME_SELECTIONS:
                for ret in SAME_RETURNS:
                    _same_answer(
                        c, "LIST (%s) %s%s" % (sel, args, ret),
                        "LIST (%s) %s%s" % (("REMOTE " + sel).strip(),
                                            args, ret), problems)
        for args in SAME_ODD:
            _same_answer(c, b"LIST " + args, b"RLIST " + args, problems)
            _same_answer(c, b"LSUB " + args, b"RLSUB " + args, problems)
        for args in SAME_ODD + SAME_ODD_LISTS:
            _same_answer(c, b"LIST () " + args, b"LIST (REMOTE) " + args,
                         problems)
        expect_usable(c)
    expect(not problems, "%d answers differ from Dovecot's:\n    %s"
           % (len(problems), "\n    ".join(problems)))


# ------------------------------------- directory unavailable (section 5)
class _Outage:
    """Own slapd (entries Public/O5/Remote*) and Dovecot (cache TTL 1 s)
    with the local mailboxes Public/O5/Local and Public/O5/Both."""

    REMOTE = "10 127.0.0.1:10999"   # written into the directory only

    def __init__(self):
        self.servers = []
        self.session = None
        self.ldap = own_directory(("Public/O5/Remote", "Public/O5/Both"),
                                  [self.REMOTE])
        self.servers.append(self.ldap)
        self.home = own_dovecot("listout", self.ldap, registry=self.servers,
                                mailbox_referrals_cache_ttl="1s")
        for m in ("O5/Local", "O5/Both"):
            self.home.create_public_maildir(m)
        self.before = None
        self.session = login(self.home, "the outage server")

    def cleanup(self):
        if self.session is not None:
            self.session.close()
        stop_servers(*self.servers)


_outage = None


def _outage_env():
    global _outage
    if _outage is None:
        _outage = _Outage()
    return _outage


def teardown_module():
    global _outage
    if _outage is not None:
        _outage.cleanup()
        _outage = None


def _outage_down():
    """The session, with the directory stopped and the cache expired."""
    o = _outage_env()
    if o.ldap.running():
        o.ldap.stop()
        time.sleep(1.5)   # past the 1 s cache TTL
    return o.session


def _expect_local_lines(resp, cmd, kind="LIST",
                        names=("INBOX", "Public/O5/Local")):
    got = listing(resp, kind)
    missing = [n for n in names if n not in got]
    expect(not missing, "%s with the directory stopped: the local %s not "
           "among the lines sent (expected all of %r):\n    %s"
           % (cmd, " and ".join(missing), list(names), show(resp)))


def test_outage_before():
    o = _outage_env()
    c = o.session
    expect_ok(c.command("SUBSCRIBE Public/O5/Local"),
              "SUBSCRIBE Public/O5/Local")
    expect_ok(c.command("SUBSCRIBE INBOX"), "SUBSCRIBE INBOX")
    r = c.command('RLIST "" "*"')
    expect_done(r, "OK List completed.", "RLIST before the outage")
    o.before = listing(r)
    for name in ("INBOX", "Public/O5/Local", "Public/O5/Remote",
                 "Public/O5/Both", "Public/O5"):
        expect(name in o.before, "RLIST before the outage lacks %s:\n    %s"
               % (name, show(r)))


def test_outage_rlist():
    c = _outage_down()
    r = c.command('RLIST "" "*"')
    expect_done(r, UNAVAILABLE, 'RLIST "" "*" with the directory stopped')
    _expect_local_lines(r, 'RLIST "" "*"')
    expect_usable(c, "RLIST during the outage")


def test_outage_rlsub():
    c = _outage_down()
    r = c.command('RLSUB "" "*"')
    expect_done(r, UNAVAILABLE, 'RLSUB "" "*" with the directory stopped')
    _expect_local_lines(r, 'RLSUB "" "*"', "LSUB")
    expect_usable(c, "RLSUB during the outage")


def test_outage_list_remote():
    c = _outage_down()
    r = c.command('LIST (REMOTE) "" "*"')
    expect_done(r, UNAVAILABLE, 'LIST (REMOTE) "" "*" with the directory '
                "stopped")
    _expect_local_lines(r, 'LIST (REMOTE) "" "*"')
    expect_usable(c, "LIST (REMOTE) during the outage")


def test_outage_plain_list_and_lsub():
    c = _outage_down()
    r = c.command('LIST "" "*"')
    expect_done(r, "OK List completed.", 'LIST "" "*" during the outage')
    _expect_local_lines(r, 'LIST "" "*"')
    r = c.command('LSUB "" "*"')
    expect_done(r, "OK Lsub completed.", 'LSUB "" "*" during the outage')
    _expect_local_lines(r, 'LSUB "" "*"', "LSUB")


def test_outage_restarted_directory():
    o = _outage_env()
    c = o.session
    if not o.ldap.running():
        o.ldap.start()
    deadline = time.monotonic() + 15
    while True:
        r = c.command('RLIST "" "*"')
        if r.status == "OK" or time.monotonic() > deadline:
            break
        time.sleep(1)
    expect_done(r, "OK List completed.", 'RLIST "" "*" after slapd was '
                "restarted")
    expect(o.before is not None, "no RLIST from before the outage to compare")
    expect_eq(listing(r), o.before, "RLIST after the restart against RLIST "
              "before the outage")
    expect_usable(c)


def test_outage_no_crash():
    expect_no_crash(_outage_env().home, "the listing outage", still_open=1)

# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""SUBSCRIBE / UNSUBSCRIBE of remote mailboxes, RLSUB and
LIST (REMOTE SUBSCRIBED ...).

By default (mailbox_referrals_subscriptions = home) the home server A keeps
the subscription: RLSUB and LIST (REMOTE SUBSCRIBED) show it, LSUB and
LIST (SUBSCRIBED) do not (RFC 2193 section 3). With
mailbox_referrals_subscriptions = referral (this module's own Dovecot "R",
on the shared directory) both commands answer the referral of RFC 2193
section 4.1, local mailboxes still work.

Entries added by setup_module (all on B):
  Public/L4S/Remote, Public/L4S/Deep/Leaf, Public/L4S/Other (never
  subscribed), Public/L4S/Gone (subscribed, then unsubscribed),
  Public/L4SCafe ("Public/L4SCaf\u00e9")
Local mailboxes: Public/L4S/Local on A and on R.
"""

import re

from common import (env, expect, expect_eq, expect_no_crash, expect_ok,
                    expect_usable, login, own_dovecot, referral_entry,
                    referral_response, stop_servers, Failure)
from listing_common import (astring, expect_done, expect_listing, F,
                            listing, show)

CAFE = "Public/L4SCaf\u00e9"
CAFE_WIRE = "Public/L4SCaf&AOk-"
REMOTE = ("Public/L4S/Remote", "Public/L4S/Deep/Leaf", "Public/L4S/Other",
          "Public/L4S/Gone", "Public/L4S/Moved", CAFE)

R = None     # Dovecot with mailbox_referrals_subscriptions = referral
servers = []


def setup_module():
    e = env()
    e.a.create_public_maildir("L4S/Local")
    for mailbox in REMOTE:
        e.ldap.ldapadd(referral_entry(None, mailbox,
                                      ["10 127.0.0.1:%d" % e.port_b])[1])


def teardown_module():
    global R
    R = None
    stop_servers(*servers)


# --------------------------------------------- home (default) behaviour
def test_subscribe_remote_is_recorded_at_home():
    e = env()
    with e.client() as c:
        for name in ("Public/L4S/Remote", "Public/L4S/Deep/Leaf",
                     "Public/L4S/Local", "Public/L4S/Gone"):
            r = c.command("SUBSCRIBE " + name)
            expect_done(r, "OK Subscribe completed.", "SUBSCRIBE " + name)
        r = c.command("SUBSCRIBE " + CAFE_WIRE)
        expect_done(r, "OK Subscribe completed.", "SUBSCRIBE " + CAFE_WIRE)
        expect_usable(c)


def test_rlsub_shows_remote_subscriptions():
    e = env()
    with e.client() as c:   # a new session: read back from the home server
        r = c.command('RLSUB "" "Public/L4S*"')
        expect_listing(r, {
            "Public/L4S/Remote": F(),
            "Public/L4S/Deep/Leaf": F(),
            "Public/L4S/Local": F(),
            "Public/L4S/Gone": F(),
            CAFE_WIRE: F(),
        }, 'RLSUB "" "Public/L4S*"', "LSUB")
        r = c.command('RLSUB "" "*"')
        expect_done(r, "OK Lsub completed.", 'RLSUB "" "*"')
        got = listing(r, "LSUB")
        for name in ("Public/L4S/Remote", CAFE_WIRE, "Public/L4S/Local"):
            expect(name in got, 'RLSUB "" "*" lacks %s:\n    %s'
                   % (name, show(r)))


def test_rlsub_percent_shows_noselect_parent():
    e = env()
    with e.client() as c:
        r = c.command('RLSUB "" "Public/L4S/%"')
        expect_listing(r, {
            "Public/L4S/Remote": F(),
            "Public/L4S/Local": F(),
            "Public/L4S/Gone": F(),
            # RFC 3501 6.3.9: a parent of a subscribed mailbox, not
            # subscribed itself
            "Public/L4S/Deep": F("\\Noselect"),
        }, 'RLSUB "" "Public/L4S/%"', "LSUB")
        r = c.command('RLSUB "Public/L4S/" "%"')
        r2 = c.command('RLSUB "" "Public/L4S/%"')
        expect_eq(sorted(r.untagged), sorted(r2.untagged),
                  'RLSUB "Public/L4S/" "%" against RLSUB "" "Public/L4S/%"')


def test_lsub_does_not_show_remote():
    e = env()
    with e.client() as c:
        r = c.command('LSUB "" "Public/L4S*"')
        expect_listing(r, {"Public/L4S/Local": F()},
                        'LSUB "" "Public/L4S*"', "LSUB")
        r = c.command('LSUB "" "*"')
        got = listing(r, "LSUB")
        leaked = [n for n in got if n.startswith("Public/L4S/") and
                  n != "Public/L4S/Local" or n == CAFE_WIRE]
        expect(not leaked, 'LSUB "" "*" shows remote mailboxes: %r' % leaked)


def test_list_remote_subscribed():
    e = env()
    with e.client() as c:
        r = c.command('LIST (REMOTE SUBSCRIBED) "" "Public/L4S*"')
        expect_listing(r, {
            "Public/L4S/Remote": F("\\Subscribed", "\\Remote"),
            "Public/L4S/Deep/Leaf": F("\\Subscribed", "\\Remote"),
            "Public/L4S/Gone": F("\\Subscribed", "\\Remote"),
            CAFE_WIRE: F("\\Subscribed", "\\Remote"),
            "Public/L4S/Local": F("\\Subscribed"),
        }, 'LIST (REMOTE SUBSCRIBED) "" "Public/L4S*"')
        r = c.command('LIST (REMOTE SUBSCRIBED) "" "*"')
        expect_done(r, "OK List completed.", 'LIST (REMOTE SUBSCRIBED) "" "*"')
        got = listing(r)
        expect_eq(got.get("Public/L4S/Remote"), F("\\Subscribed", "\\Remote"),
                  'Public/L4S/Remote in LIST (REMOTE SUBSCRIBED) "" "*"')
        expect("Public/L4S/Other" not in got,
               "LIST (REMOTE SUBSCRIBED) lists the unsubscribed "
               "Public/L4S/Other")


def test_list_subscribed_without_remote_hides_remote():
    e = env()
    with e.client() as c:
        r = c.command('LIST (SUBSCRIBED) "" "Public/L4S*"')
        expect_listing(r, {"Public/L4S/Local": F("\\Subscribed")},
                        'LIST (SUBSCRIBED) "" "Public/L4S*"')


def test_list_remote_subscribed_recursivematch():
    e = env()
    cmd = 'LIST (REMOTE SUBSCRIBED RECURSIVEMATCH) "" "Public/L4S/%"'
    with e.client() as c:
        r = c.command(cmd)
        expect_done(r, "OK List completed.", cmd)
        got = listing(r, extended=True)
        expect_eq(sorted(got), ["Public/L4S/Deep", "Public/L4S/Gone",
                                "Public/L4S/Local", "Public/L4S/Remote"],
                  "names of " + cmd)
        expect_eq(got["Public/L4S/Remote"],
                  (F("\\Subscribed", "\\Remote"), ""), "Public/L4S/Remote")
        expect_eq(got["Public/L4S/Local"], (F("\\Subscribed"), ""),
                  "Public/L4S/Local")
        flags, ext = got["Public/L4S/Deep"]
        expect("\\subscribed" not in flags,
               "Public/L4S/Deep is not subscribed: %r" % (flags,))
        expect(re.match(r'^\("?CHILDINFO"? \("SUBSCRIBED"\)\)$', ext, re.I),
               'Public/L4S/Deep: expected ("CHILDINFO" ("SUBSCRIBED")) '
               "(RFC 5258 section 3.5), got %r in:\n    %s"
               % (ext, show(r)))


def test_list_remote_return_subscribed():
    e = env()
    cmd = 'LIST (REMOTE) "" "Public/L4S/*" RETURN (SUBSCRIBED)'
    with e.client() as c:
        r = c.command(cmd)
        expect_listing(r, {
            "Public/L4S/Remote": F("\\Subscribed", "\\Remote"),
            "Public/L4S/Deep": F("\\NonExistent"),
            "Public/L4S/Deep/Leaf": F("\\Subscribed", "\\Remote"),
            "Public/L4S/Gone": F("\\Subscribed", "\\Remote"),
            "Public/L4S/Other": F("\\Remote"),
            "Public/L4S/Moved": F("\\Remote"),
            "Public/L4S/Local": F("\\Subscribed"),
        }, cmd)


def test_list_remote_subscribed_return_children_status():
    e = env()
    cmd = ('LIST (REMOTE SUBSCRIBED) "" "Public/L4S/*" RETURN (CHILDREN '
           'STATUS (MESSAGES UIDNEXT))')
    with e.client() as c:
        r = c.command(cmd)
        expect_done(r, "OK List completed.", cmd)
        got = listing(r)
        expect_eq(sorted(got), ["Public/L4S/Deep/Leaf", "Public/L4S/Gone",
                                "Public/L4S/Local", "Public/L4S/Remote"],
                  "names of " + cmd)
        status = [l for l in r.untagged if l.startswith("* STATUS ")]
        expect_eq([astring(l[len("* STATUS "):])[0] for l in status],
                  ["Public/L4S/Local"], "STATUS lines of " + cmd)


def test_unsubscribe_remote():
    e = env()
    with e.client() as c:
        r = c.command("UNSUBSCRIBE Public/L4S/Gone")
        expect_done(r, "OK Unsubscribe completed.", "UNSUBSCRIBE Public/L4S/Gone")
    with e.client() as c:
        for cmd, kind in (('RLSUB "" "Public/L4S/*"', "LSUB"),
                          ('LIST (REMOTE SUBSCRIBED) "" "Public/L4S/*"',
                           "LIST")):
            r = c.command(cmd)
            expect_ok(r, cmd)
            got = listing(r, kind)
            expect("Public/L4S/Gone" not in got,
                   "%s after UNSUBSCRIBE still shows Public/L4S/Gone:\n    %s"
                   % (cmd, show(r)))
            expect("Public/L4S/Remote" in got, "%s lost Public/L4S/Remote"
                   % cmd)


# ------------------------------------------------ referral behaviour
def _r_server():
    """Dovecot R on the shared directory: first in the default (home)
    mode, so that a remote subscription can be recorded, then restarted
    with mailbox_referrals_subscriptions = referral."""
    global R
    if R is None:
        d = own_dovecot("subsref", env().ldap, registry=servers)
        d.create_public_maildir("L4S/Local")
        with login(d, "R") as c:
            r = c.command("SUBSCRIBE Public/L4S/Moved")
            expect_done(r, "OK Subscribe completed.",
                        "SUBSCRIBE Public/L4S/Moved on R in home mode")
            expect_ok(c.command("SUBSCRIBE Public/L4S/Local"),
                      "SUBSCRIBE Public/L4S/Local on R")
        d.stop()
        d.plugin_settings["mailbox_referrals_subscriptions"] = "referral"
        d.start()
        R = d
    return R


def _r_client():
    return login(_r_server(), "R")


def test_referral_mode_subscribe_remote_refers():
    e = env()
    with _r_client() as c:
        for name, wire in (("Public/L4S/Remote", "Public/L4S/Remote"),
                           ("Public/L4S/Other", "Public/L4S/Other"),
                           (CAFE, CAFE_WIRE)):
            r = c.command("SUBSCRIBE " + wire)
            expect_done(r, referral_response([e.B], name),
                        "SUBSCRIBE %s with subscriptions = referral" % wire)
        expect_usable(c)
        r = c.command('RLSUB "" "Public/L4S/*"')
        expect_ok(r, "RLSUB on R")
        got = listing(r, "LSUB")
        expect("Public/L4S/Remote" not in got,
               "a referred SUBSCRIBE was recorded anyway:\n    %s" % show(r))


def test_referral_mode_unsubscribe_remote_refers():
    e = env()
    with _r_client() as c:
        r = c.command("UNSUBSCRIBE Public/L4S/Moved")
        expect_done(r, referral_response([e.B], "Public/L4S/Moved"),
                    "UNSUBSCRIBE of a subscribed remote mailbox with "
                    "subscriptions = referral")


def test_referral_mode_local_still_works():
    with _r_client() as c:
        r = c.command("UNSUBSCRIBE Public/L4S/Local")
        expect_done(r, "OK Unsubscribe completed.",
                    "UNSUBSCRIBE Public/L4S/Local on R")
        r = c.command("SUBSCRIBE Public/L4S/Local")
        expect_done(r, "OK Subscribe completed.",
                    "SUBSCRIBE Public/L4S/Local on R")
        r = c.command("SUBSCRIBE INBOX")
        expect_done(r, "OK Subscribe completed.", "SUBSCRIBE INBOX on R")
        r = c.command('LSUB "" "*"')
        got = listing(r, "LSUB")
        for name in ("INBOX", "Public/L4S/Local"):
            expect(name in got, "LSUB on R lacks %s:\n    %s"
                   % (name, show(r)))


def test_referral_mode_no_crash():
    if R is None:
        raise Failure("R was never started")
    expect_no_crash(R, "referral mode")

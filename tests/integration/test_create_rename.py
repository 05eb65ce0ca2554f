# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""Subtree entries (imapReferralScope: subtree) and the mailbox scope,
CREATE (RFC 2193 §4.2) and RENAME (RFC 2193 §4.3) on the home server A.

The directory entries of this module all live under Public/T3..., added in
setup_module() and removed again in teardown_module(), together with the
mailboxes the tests create on A. The scope tests also use the shared
entries Public/Tree (subtree) and Public/Sales (mailbox scope).
"""

import os

from common import (check_reply, env, expect, expect_append_refused,
                    expect_eq, expect_not_referred, expect_ok, expect_tagged,
                    expect_usable, referral_response, referral_url,
                    referral_entry, undo_changes)
from harness.imap import quote
from listing_common import listing

# key -> (mailbox, servers (as "b"/"c"/"a" + preference), options)
_ENTRIES = [
    # subtree with a remote name: Public/T3Sub/x/y -> B:/Archive/Sub/x/y
    ("sub", "Public/T3Sub", [(10, "b")],
     {"scope": "subtree", "remote_name": "Archive/Sub"}),
    # most specific entry wins
    ("nest", "Public/T3Nest", [(10, "b")], {"scope": "subtree"}),
    ("nestdeep", "Public/T3Nest/Deep", [(10, "c")], {"scope": "subtree"}),
    ("nestspot", "Public/T3Nest/Deep/Spot", [(10, "b")], {}),
    ("exact", "Public/T3Exact", [(10, "b")], {}),
    # bounded queries
    ("tree", "Public/T3Tree", [(10, "b")], {"scope": "subtree"}),
    # CREATE
    ("newexact", "Public/T3NewExact", [(10, "b")], {}),
    # RENAME
    ("remold", "Public/T3RemOld", [(10, "b")], {}),
    ("renrep", "Public/T3RenRep", [(10, "b"), (20, "c")], {}),
    ("reptree", "Public/T3RepTree", [(10, "c")], {"scope": "subtree"}),
    ("pub", "Public/T3Pub", [(10, "a")], {}),
    ("child", "Public/T3Parent/Child", [(10, "b")], {}),
]

_dns = []
# local mailboxes created on A by this module (deleted at the end)
_created_on_a = set()


def _A(e):
    return ("127.0.0.1", e.port_a)


def _server(e, key):
    return {"a": _A(e), "b": e.B, "c": e.C}[key]


def _server_value(e, pref, key):
    host, port = _server(e, key)
    return "%d %s:%d" % (pref, host, port)


def setup_module():
    e = env()
    for key, mailbox, servers, opts in _ENTRIES:
        dn, text = referral_entry("cn=t3cr-" + key, mailbox,
                                  [_server_value(e, p, s) for p, s in servers],
                                  **opts)
        e.ldap.ldapadd(text)
        _dns.append(dn)
    # A local mailbox that the directory says A serves, and a local parent
    # with a directory entry below it.
    with e.client() as c:
        for name in ("Public/T3Pub", "Public/T3Parent"):
            r = c.command("CREATE " + quote(name))
            expect_ok(r, "setup: CREATE %s on A" % name)
            _created_on_a.add(name)


def teardown_module():
    undo_changes(mailboxes=[("a", name) for name in _created_on_a],
                 dns=_dns)


# ---------------------------------------------------------------- helpers
def _maildir(e, mailbox):
    """A's Maildir++ directory for a Public/ mailbox."""
    assert mailbox.startswith("Public/")
    return e.a.path("public", "." + mailbox[len("Public/"):].replace("/", "."))


def _local_list(c, pattern):
    """Names LIST shows on A for pattern."""
    r = c.command('LIST "" ' + quote(pattern))
    expect_ok(r, "LIST %s" % pattern)
    return list(listing(r))


def _expect_not_on_a(mailbox, what):
    """Neither LIST nor A's disk knows mailbox."""
    e = env()
    with e.client() as c:
        names = _local_list(c, mailbox)
        expect(mailbox not in names,
               "%s: LIST on A shows %s: %r" % (what, mailbox, names))
    path = _maildir(e, mailbox)
    expect(not os.path.exists(path),
           "%s: %s was created on A's disk (%s)" % (what, mailbox, path))


def _expect_on_a(mailbox, what):
    e = env()
    with e.client() as c:
        names = _local_list(c, mailbox)
        expect(mailbox in names,
               "%s: LIST on A does not show %s: %r" % (what, mailbox, names))
    expect(os.path.isdir(_maildir(e, mailbox)),
           "%s: %s is not on A's disk (%s)" % (what, mailbox,
                                                _maildir(e, mailbox)))


def _rename_response(pairs, text):
    """pairs: [(old_server, old_name, new_server, new_name)]."""
    urls = []
    for old_server, old_name, new_server, new_name in pairs:
        urls.append(referral_url(old_server, old_name))
        urls.append(referral_url(new_server, new_name))
    return "NO [REFERRAL %s] %s" % (" ".join(urls), text)


def _hp(server):
    return "%s:%d" % server


# ----------------------------------------------------------- 1. subtrees
def test_subtree_remote_name_maps_prefix():
    e = env()
    want = "NO [REFERRAL imap://alice;AUTH=*@127.0.0.1:%d/Archive/Sub/x/y] " \
        "Remote mailbox on 127.0.0.1:%d" % (e.port_b, e.port_b)
    expect_eq(referral_response([e.B], "Archive/Sub/x/y"), want, "helper")
    check_reply("SELECT Public/T3Sub/x/y", want)


def test_subtree_entry_covers_itself_and_children():
    # without a remote name (the shared Public/Tree: the demo's
    # Public/Projects relies on it) and with one (Public/T3Sub)
    e = env()
    check_reply("SELECT Public/Tree", referral_response([e.B], "Public/Tree"))
    check_reply("SELECT Public/Tree/Child",
                referral_response([e.B], "Public/Tree/Child"))
    check_reply("SELECT Public/T3Sub", referral_response([e.B], "Archive/Sub"))
    check_reply("SELECT Public/T3Sub/x",
                referral_response([e.B], "Archive/Sub/x"))


def test_subtree_prefix_is_not_a_string_prefix():
    e = env()
    with e.client() as c:
        expect_not_referred(c, "SELECT Public/T3SubOther",
                            "not below the subtree Public/T3Sub")
        expect_usable(c)


def test_subtree_honoured_by_examine_status_delete():
    e = env()
    want = referral_response([e.B], "Archive/Sub/x/y")
    with e.client() as c:
        for cmd in ("EXAMINE Public/T3Sub/x/y",
                    "STATUS Public/T3Sub/x/y (MESSAGES UIDNEXT)",
                    "DELETE Public/T3Sub/x/y",
                    "SELECT Public/T3Sub/x/y"):
            expect_tagged(c.command(cmd), want, cmd)
        expect_usable(c)


def test_subtree_honoured_by_append():
    e = env()
    with e.client() as c:
        expect_append_refused(c, "Public/T3Sub/x/y",
                              referral_response([e.B], "Archive/Sub/x/y"),
                              flags="\\Seen")


def test_deeper_subtree_beats_shallower():
    e = env()
    check_reply("SELECT Public/T3Nest/x",
                referral_response([e.B], "Public/T3Nest/x"))
    check_reply("SELECT Public/T3Nest/Deep",
                referral_response([e.C], "Public/T3Nest/Deep"))
    check_reply("SELECT Public/T3Nest/Deep/x/y",
                referral_response([e.C], "Public/T3Nest/Deep/x/y"))


def test_exact_entry_beats_subtree():
    e = env()
    check_reply("SELECT Public/T3Nest/Deep/Spot",
                referral_response([e.B], "Public/T3Nest/Deep/Spot"))
    # the exact entry is mailbox-scoped: below it the deeper subtree rules
    check_reply("SELECT Public/T3Nest/Deep/Spot/x",
                referral_response([e.C], "Public/T3Nest/Deep/Spot/x"))


def test_mailbox_scope_does_not_cover_children():
    # Public/T3Exact and the shared Public/Sales have no scope (= mailbox)
    e = env()
    check_reply("SELECT Public/T3Exact",
                referral_response([e.B], "Public/T3Exact"))
    with e.client() as c:
        for cmd in ("SELECT Public/T3Exact/x",
                    "STATUS Public/T3Exact/x (MESSAGES)",
                    "SELECT Public/Sales/Sub"):
            expect_not_referred(c, cmd, "the entry is mailbox-scoped")
        expect_usable(c)


def _searches(e):
    """Searches slapd has received; complete once a reply has arrived
    (see common.py on slapd's log)."""
    return e.ldap.count_searches(base_substring="ou=referrals")


def test_deep_name_costs_one_search():
    e = env()
    want1 = referral_response([e.B], "Public/T3Tree/a/b/c/d")
    want2 = referral_response([e.B], "Public/T3Tree/a/b/c/e")
    with e.client() as c:
        before = _searches(e)
        expect_tagged(c.command("SELECT Public/T3Tree/a/b/c/d"), want1,
                      "SELECT Public/T3Tree/a/b/c/d #1")
        after1 = _searches(e)
        expect_tagged(c.command("SELECT Public/T3Tree/a/b/c/d"), want1,
                      "SELECT Public/T3Tree/a/b/c/d #2")
        after2 = _searches(e)
        expect_tagged(c.command("SELECT Public/T3Tree/a/b/c/e"), want2,
                      "SELECT Public/T3Tree/a/b/c/e")
        after3 = _searches(e)
        filters = [f for _, f in e.ldap.search_filters("ou=referrals")]
        expect_eq(after1 - before, 1,
                  "slapd searches for a first SELECT Public/T3Tree/a/b/c/d "
                  "(filters: %r)" % filters[before:after1])
        expect_eq(after2 - after1, 0,
                  "slapd searches for the repeated SELECT (cached) "
                  "(filters: %r)" % filters[after1:after2])
        expect_eq(after3 - after2, 1,
                  "slapd searches for SELECT of another deep name "
                  "(filters: %r)" % filters[after2:after3])
        expect_usable(c)


# -------------------------------------------------------------- 2. CREATE
def test_create_exact_entry_refers():
    e = env()
    check_reply("CREATE Public/T3NewExact",
                referral_response([e.B], "Public/T3NewExact"))
    _expect_not_on_a("Public/T3NewExact", "CREATE Public/T3NewExact")
    check_reply("SELECT Public/T3NewExact",
                referral_response([e.B], "Public/T3NewExact"),
                "SELECT Public/T3NewExact after the refused CREATE")


def test_create_below_subtree_refers_with_mapped_name():
    e = env()
    want = referral_response([e.B], "Archive/Sub/NewBox")
    check_reply("CREATE Public/T3Sub/NewBox", want)
    _expect_not_on_a("Public/T3Sub/NewBox", "CREATE Public/T3Sub/NewBox")
    expect(not os.path.exists(_maildir(e, "Public/T3Sub")),
           "CREATE Public/T3Sub/NewBox created the parent Public/T3Sub on "
           "A's disk")
    check_reply("SELECT Public/T3Sub/NewBox", want,
                "SELECT Public/T3Sub/NewBox after the refused CREATE")


def test_create_subtree_entry_name_refers():
    e = env()
    check_reply("CREATE Public/T3Nest/Deep",
                referral_response([e.C], "Public/T3Nest/Deep"))
    _expect_not_on_a("Public/T3Nest/Deep", "CREATE Public/T3Nest/Deep")


def test_create_below_mailbox_entry_is_local():
    # Public/T3Exact is mailbox-scoped: names below it are created on A
    e = env()
    with e.client() as c:
        r = c.command("CREATE Public/T3Exact/Local")
        expect_ok(r, "CREATE Public/T3Exact/Local")
        _created_on_a.add("Public/T3Exact/Local")
    _expect_on_a("Public/T3Exact/Local", "CREATE Public/T3Exact/Local")


def test_create_other_name_is_local():
    e = env()
    with e.client() as c:
        r = c.command("CREATE Public/T3LocalNew")
        expect_ok(r, "CREATE Public/T3LocalNew")
        _created_on_a.add("Public/T3LocalNew")
        expect_ok(c.command("SELECT Public/T3LocalNew"),
                  "SELECT Public/T3LocalNew after CREATE")
    _expect_on_a("Public/T3LocalNew", "CREATE Public/T3LocalNew")


# -------------------------------------------------------------- 3. RENAME
def _create_local(c, name):
    expect_ok(c.command("CREATE " + quote(name)), "CREATE %s on A" % name)
    _created_on_a.add(name)


def test_rename_both_local():
    e = env()
    with e.client() as c:
        _create_local(c, "Public/T3RenLocal")
        r = c.command("RENAME Public/T3RenLocal Public/T3RenLocal2")
        # "OK Rename completed." - Dovecot replaces the final "." by its
        # timing statistics, which Response.text drops.
        expect_tagged(r, "OK Rename completed", "RENAME (both local)")
        _created_on_a.discard("Public/T3RenLocal")
        _created_on_a.add("Public/T3RenLocal2")
        names = _local_list(c, "Public/T3RenLocal*")
        expect_eq(sorted(names), ["Public/T3RenLocal2"],
                  "LIST Public/T3RenLocal* after RENAME")
        expect_ok(c.command("SELECT Public/T3RenLocal2"),
                  "SELECT Public/T3RenLocal2")
    expect(not os.path.exists(_maildir(e, "Public/T3RenLocal")),
           "Public/T3RenLocal still on A's disk after RENAME")


def test_rename_local_to_remote_subtree():
    e = env()
    with e.client() as c:
        _create_local(c, "Public/T3RenSrc")
    want = _rename_response(
        [(_A(e), "Public/T3RenSrc", e.B, "Archive/Sub/Moved")],
        "Cannot rename across servers (%s to %s)" % (_hp(_A(e)), _hp(e.B)))
    check_reply("RENAME Public/T3RenSrc Public/T3Sub/Moved", want)
    _expect_on_a("Public/T3RenSrc", "after the refused RENAME")
    _expect_not_on_a("Public/T3Sub/Moved", "after the refused RENAME")


def test_rename_remote_to_local():
    e = env()
    want = _rename_response(
        [(e.B, "Public/T3RemOld", _A(e), "Public/T3RenLocalDest")],
        "Cannot rename across servers (%s to %s)" % (_hp(e.B), _hp(_A(e))))
    check_reply("RENAME Public/T3RemOld Public/T3RenLocalDest", want)
    _expect_not_on_a("Public/T3RenLocalDest", "after the refused RENAME")


def test_rename_within_remote_subtree():
    e = env()
    want = _rename_response(
        [(e.B, "Archive/Sub/a", e.B, "Archive/Sub/b")],
        "Rename on remote server %s" % _hp(e.B))
    check_reply("RENAME Public/T3Sub/a Public/T3Sub/b", want)


def test_rename_replicas_pair_order():
    # old: B (10), C (20); new: below a subtree on C only.
    # Same-server pairs first: (C, C), then (B, C).
    e = env()
    want = _rename_response(
        [(e.C, "Public/T3RenRep", e.C, "Public/T3RepTree/New"),
         (e.B, "Public/T3RenRep", e.C, "Public/T3RepTree/New")],
        "Rename on remote server %s" % _hp(e.C))
    expect_eq(want,
              "NO [REFERRAL imap://alice;AUTH=*@127.0.0.1:{c}/Public/T3RenRep "
              "imap://alice;AUTH=*@127.0.0.1:{c}/Public/T3RepTree/New "
              "imap://alice;AUTH=*@127.0.0.1:{b}/Public/T3RenRep "
              "imap://alice;AUTH=*@127.0.0.1:{c}/Public/T3RepTree/New] "
              "Rename on remote server 127.0.0.1:{c}".format(
                  b=e.port_b, c=e.port_c), "helper")
    check_reply("RENAME Public/T3RenRep Public/T3RepTree/New", want)


def test_rename_published_local_mailbox_refused():
    e = env()
    check_reply("RENAME Public/T3Pub Public/T3Pub2",
                "NO [CANNOT] Mailbox is published in the referral directory; "
                "an administrator must move its directory entry")
    _expect_on_a("Public/T3Pub", "after the refused RENAME")
    _expect_not_on_a("Public/T3Pub2", "after the refused RENAME")


def test_rename_parent_of_published_entry_refused():
    e = env()
    check_reply("RENAME Public/T3Parent Public/T3Parent2",
                "NO [CANNOT] Mailboxes below it are published in the referral "
                "directory; an administrator must move their entries")
    _expect_on_a("Public/T3Parent", "after the refused RENAME")
    _expect_not_on_a("Public/T3Parent2", "after the refused RENAME")

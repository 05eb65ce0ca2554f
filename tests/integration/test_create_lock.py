# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""CREATE in a public namespace never waits for the directory while holding
the namespace's mailbox-list lock (lib-storage takes it around create_box,
and every user of the namespace shares it). With slapd frozen (SIGSTOP),
twenty sessions CREATE names the directory has to be asked about, while
another user CREATEs a name whose (negative) answer its session has cached
and a third RENAMEs within a namespace listing its session has cached:
those need only the lock, so they must answer OK while the twenty are
still waiting for the directory, before any of their NO [UNAVAILABLE]
replies. (The RENAME checks that releasing and retaking the lock around
the decision works; it does not by itself show that RENAME never waits
under the lock: lib-storage lists the old name's children before taking
the lock, and that listing already meets the frozen directory.) Own slapd
and Dovecot, so the shared deployment is not disturbed."""

import select

from common import (check_plugin_built, expect, expect_eq, expect_ok,
                    ou_referrals_ldif, plugin_settings, Failure, PASSWORD)
from harness.dovecot import Dovecot
from harness.imap import ImapClient, quote, strip_timing
from harness.ports import free_port
from harness.slapd import Slapd

TIMEOUT_SECS = 2
WAITERS = 20
USERS = ["u%02d" % i for i in range(1, WAITERS + 1)]
LOCAL_USER = "local"
LOCAL_NAME = "Public/LockLocal"
RENAME_USER = "renamer"
RENAME_FROM = "Public/LockFrom"
RENAME_TO = "Public/LockTo"
ldap = None
home = None
clients = []


def setup_module():
    global ldap, home
    check_plugin_built()
    ldap = Slapd(config_format="cnconfig")
    ldap.start()
    ldap.ldapadd(ou_referrals_ldif())
    port = free_port()
    users = dict((u, PASSWORD) for u in USERS + [LOCAL_USER, RENAME_USER])
    # debug: the log says when a session has started asking the directory
    home = Dovecot("create-lock", port=port, debug=True,
                   extra_users=users,
                   plugin_settings=plugin_settings(
                       ldap, "127.0.0.1:%d" % port,
                       mailbox_referrals_ldap_timeout="%ds" % TIMEOUT_SECS))
    home.start()


def teardown_module():
    for c in clients:
        c.close()
    if ldap is not None:
        ldap.cleanup()
    if home is not None:
        home.cleanup()


def _login(user):
    c = ImapClient(home.port, timeout=30 + 2 * WAITERS * TIMEOUT_SECS)
    clients.append(c)
    expect_ok(c.login(user, PASSWORD), "LOGIN " + user)
    return c


def test_create_waits_for_the_directory_outside_the_list_lock():
    waiters = [_login(u) for u in USERS]
    local = _login(LOCAL_USER)
    # the local user's session asks about its name while the directory
    # answers: no entry, cached for the session (mailbox_referrals_cache_ttl)
    r = local.command("STATUS %s (MESSAGES)" % quote(LOCAL_NAME))
    expect(r.tagged.startswith(r.tag + " NO Mailbox doesn't exist:"),
           "STATUS of a name not created yet: got %r" % r.tagged)

    renamer = _login(RENAME_USER)
    expect_ok(renamer.command("CREATE %s" % quote(RENAME_FROM)),
              "CREATE " + RENAME_FROM)
    # the namespace's listing, cached for the session: it answers RENAME's
    # questions (both names, entries below the old one)
    expect_ok(renamer.command('RLIST "" "Public/*"'), "RLIST")

    offset = home.log_size()
    ldap.pause()
    try:
        tags = []
        for i, c in enumerate(waiters):
            tag = c.next_tag()
            c.send_raw("%s CREATE %s\r\n" % (tag, quote("Public/Lock%02d" % i)))
            tags.append(tag)
        # at least one session is now asking the frozen directory: without
        # the fix it holds the list lock while it waits
        text = home.wait_log(lambda t: "Searching" in t, offset=offset,
                             timeout=30)
        expect("Searching" in text,
               "no session started asking the directory:\n" + text[-2000:])

        r = local.command("CREATE %s" % quote(LOCAL_NAME))
        expect_eq(strip_timing(r.tagged), r.tag + " OK Create completed",
                  "CREATE of a cached local name while the directory is frozen")
        r = renamer.command("RENAME %s %s" % (quote(RENAME_FROM),
                                              quote(RENAME_TO)))
        expect_eq(strip_timing(r.tagged), r.tag + " OK Rename completed",
                  "RENAME answered by a cached listing, directory frozen")
        # none of the waiting sessions has answered yet: the local CREATE
        # and RENAME did not wait for any of them
        readable, _, _ = select.select([c.sock for c in waiters], [], [], 0)
        answered = [USERS[i] for i, c in enumerate(waiters)
                    if c.sock in readable or c._buf]
        expect_eq(answered, [],
                  "sessions that answered before the local CREATE")

        for c, tag in zip(waiters, tags):
            while True:
                line = c.read_line()
                if line.startswith(tag + " "):
                    break
            expect(line.startswith(tag + " NO [UNAVAILABLE] "),
                   "CREATE with the directory frozen: got %r" % line)
    finally:
        ldap.resume()
    for c in waiters:
        expect_ok(c.command("NOOP"), "session after the outage")

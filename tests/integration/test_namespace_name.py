# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""mailbox_referrals_namespaces may name a namespace by its name ("public")
instead of its prefix ("Public/")."""

from common import (env, expect, expect_ok, expect_tagged, expect_usable,
                    plugin_settings, referral_response, PASSWORD, USER)
from harness.dovecot import Dovecot
from harness.imap import ImapClient
from harness.ports import free_port

d = None


def setup_module():
    global d
    e = env()
    port = free_port()
    d = Dovecot("d", port=port, plugin_settings=plugin_settings(
        e.ldap, "127.0.0.1:%d" % port, namespaces="public"))
    d.start()


def teardown_module():
    if d is not None:
        d.cleanup()


def test_namespace_by_name_refers():
    e = env()
    with ImapClient(d.port) as c:
        expect_ok(c.login(USER, PASSWORD), "LOGIN on D")
        expect_tagged(c.command("SELECT Public/Sales"),
                      referral_response([e.B], "Public/Sales"),
                      "SELECT Public/Sales on D")
        expect_tagged(c.command("SELECT Public/Replica"),
                      referral_response([e.C, e.B], "Public/Replica"),
                      "SELECT Public/Replica on D")
        expect_usable(c)


def test_namespace_by_name_leaves_inbox_alone():
    with ImapClient(d.port) as c:
        expect_ok(c.login(USER, PASSWORD), "LOGIN on D")
        expect_ok(c.command("SELECT INBOX"), "SELECT INBOX on D")

# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""mailbox_referrals_namespaces may name a namespace by its name ("public")
instead of its prefix ("Public/")."""

from common import (env, expect_ok, expect_tagged, expect_usable, login,
                    own_dovecot, referral_response, stop_servers)

servers = []   # D: on the shared directory, namespaces = public


def setup_module():
    own_dovecot("d", env().ldap, registry=servers, namespaces="public")


def teardown_module():
    stop_servers(*servers)


def test_namespace_by_name_refers():
    e = env()
    with login(servers[0], "D") as c:
        expect_tagged(c.command("SELECT Public/Sales"),
                      referral_response([e.B], "Public/Sales"),
                      "SELECT Public/Sales on D")
        expect_tagged(c.command("SELECT Public/Replica"),
                      referral_response([e.C, e.B], "Public/Replica"),
                      "SELECT Public/Replica on D")
        expect_usable(c)


def test_namespace_by_name_leaves_inbox_alone():
    with login(servers[0], "D") as c:
        expect_ok(c.command("SELECT INBOX"), "SELECT INBOX on D")

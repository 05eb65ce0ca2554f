# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""The LDAP schema in both forms (slapd.conf .schema and cn=config .ldif)
loads into a real slapd, and ldap-schema/example.ldif loads into each.

Needs no plugin."""

import os

from common import expect, expect_eq, Failure
from harness import REPO_ROOT, ldif
from harness.slapd import Slapd, SlapdError, SUFFIX

EXAMPLE = os.path.join(REPO_ROOT, "ldap-schema", "example.ldif")
BASE = "ou=referrals," + SUFFIX

servers = {}


def setup_module():
    for form in ("slapdconf", "cnconfig"):
        s = Slapd(config_format=form)
        servers[form] = s
        s.start()
        with open(EXAMPLE) as f:
            s.ldapadd(f.read())


def teardown_module():
    for s in servers.values():
        s.cleanup()


def _check_examples(form):
    s = servers[form]
    found = s.search(BASE, "(objectClass=imapMailboxReferral)")
    expect_eq(len(found), 3, "%s: example entries found" % form)
    mailboxes = sorted(attrs["imapReferralMailbox"][0] for _, attrs in found)
    expect_eq(mailboxes, ["Public/Archive 2025", "Public/Projects",
                          "Public/Sales"], "%s: mailboxes" % form)


def test_slapd_conf_schema_loads_example():
    _check_examples("slapdconf")


def test_cn_config_schema_loads_example():
    _check_examples("cnconfig")


def _check_matching_rules(form):
    s = servers[form]
    eq = s.search(BASE, "(imapReferralMailbox=Public/Sales)")
    expect_eq(len(eq), 1, "%s: equality match on imapReferralMailbox" % form)
    # caseExactMatch: mailbox names are case-sensitive
    expect_eq(s.search(BASE, "(imapReferralMailbox=public/sales)"), [],
              "%s: case-insensitive match must find nothing" % form)
    sub = s.search(BASE, "(imapReferralMailbox=Public/*)")
    expect_eq(len(sub), 3, "%s: substring match on imapReferralMailbox" % form)
    # caseIgnoreIA5Match on servers, caseIgnoreMatch on scope
    expect_eq(len(s.search(BASE, "(imapReferralServer=10 127.0.0.1:10144)")),
              3, "%s: equality match on imapReferralServer" % form)
    expect_eq(len(s.search(BASE, "(imapReferralScope=SUBTREE)")), 1,
              "%s: case-insensitive match on imapReferralScope" % form)


def test_slapd_conf_matching_rules():
    _check_matching_rules("slapdconf")


def test_cn_config_matching_rules():
    _check_matching_rules("cnconfig")


def _check_single_value(form):
    s = servers[form]
    dn = "imapReferralMailbox=Public/Sales," + BASE
    try:
        s.ldapmodify("dn: %s\nchangetype: modify\nadd: imapReferralMailbox\n"
                     "imapReferralMailbox: Public/Other\n" % dn)
    except SlapdError:
        return
    raise Failure("%s: a second imapReferralMailbox value was accepted "
                  "(must be SINGLE-VALUE)" % form)


def test_slapd_conf_mailbox_single_value():
    _check_single_value("slapdconf")


def test_cn_config_mailbox_single_value():
    _check_single_value("cnconfig")


def test_entry_requires_server():
    s = servers["cnconfig"]
    try:
        s.ldapadd(ldif.entry("cn=noserver," + BASE, [
            ("objectClass", "imapMailboxReferral"), ("cn", "noserver"),
            ("imapReferralMailbox", "Public/NoServer")]))
    except SlapdError:
        return
    raise Failure("an entry without imapReferralServer was accepted "
                  "(it is a MUST attribute)")


def test_utf8_and_remote_name_values():
    s = servers["cnconfig"]
    s.ldapadd(ldif.entry("cn=utf8," + BASE, [
        ("objectClass", "imapMailboxReferral"), ("cn", "utf8"),
        ("imapReferralMailbox", "Public/Caf\u00e9"),
        ("imapReferralServer", "10 127.0.0.1:10144"),
        ("imapReferralRemoteName", "Archive/Caf\u00e9")]))
    found = s.search(BASE, "(imapReferralMailbox=Public/Caf\u00e9)")
    expect_eq(len(found), 1, "UTF-8 equality match")
    expect_eq(found[0][1].get("imapReferralRemoteName"), ["Archive/Caf\u00e9"],
              "imapReferralRemoteName read back")

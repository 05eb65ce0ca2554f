# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""doveadm mailbox-referrals lookup|list|check: the real doveadm, run
against a dedicated Dovecot instance's configuration, with the build
tree's doveadm module and real slapd entries.

doveadm loads its plugins only from the directory compiled into it
(/usr/lib/dovecot/modules/doveadm; there is no setting). Each doveadm run
here happens in a private mount namespace (unshare -m) where a temporary
directory holding only the build tree's module is bind-mounted over that
directory, so nothing is installed and parallel runs don't see each other.

Directories (one slapd, switched per run with doveadm's -o):
  ou=referrals  clean: remote, subtree, self entries; `check` finds nothing
  ou=problems   one entry (or local mailbox) per kind of problem
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile

from common import (expect, expect_eq, plugin_settings, referral_entry,
                    check_plugin_built, wait_until, USER)
from harness import ldif
from harness.dovecot import Dovecot, BUILD_MODULE_DIR, MAIL_UID, MAIL_GID
from harness.ports import free_port, LOOPBACK
from harness.slapd import Slapd, SUFFIX

DOVEADM = "/usr/bin/doveadm"
DOVEADM_MODULE_DIR = "/usr/lib/dovecot/modules/doveadm"
MODULE = os.path.join(BUILD_MODULE_DIR,
                      "lib10_doveadm_mailbox_referrals_plugin.so")

CLEAN_BASE = "ou=referrals," + SUFFIX
PROBLEMS_BASE = "ou=problems," + SUFFIX

SELF = "imap1.example.test"
R2 = "10 imap2.example.test"
R3 = "20 imap3.example.test:1143"

# sysexits.h, as doveadm uses them
EX_OK = 0
EX_DATAERR = 65
EX_TEMPFAIL = 75
EX_CONFIG = 78

# bounds a run that would hang; the directory timeout is far below it
RUN_TIMEOUT = 90

ldap = None
d = None
moddir = None


def dn(rdn, base=CLEAN_BASE):
    return "%s,%s" % (rdn, base)


def add(rdn, mailbox, servers, base=CLEAN_BASE, **opts):
    """Add an entry under base; returns its DN."""
    entry_dn, text = referral_entry(rdn, mailbox, servers, **opts)
    entry_dn = entry_dn.replace(CLEAN_BASE, base)
    text = text.replace(CLEAN_BASE, base)
    ldap.ldapadd(text)
    return entry_dn


def setup_module():
    global ldap, d, moddir
    check_plugin_built()
    expect(os.path.exists(MODULE), "doveadm module not built: %s" % MODULE)
    expect(os.path.isdir(DOVEADM_MODULE_DIR),
           "%s is missing: is dovecot-core installed?" % DOVEADM_MODULE_DIR)
    moddir = tempfile.mkdtemp(prefix="mbref-doveadm-modules-")
    os.symlink(MODULE, os.path.join(moddir, os.path.basename(MODULE)))

    ldap = Slapd(config_format="cnconfig")
    ldap.start()
    for ou in ("referrals", "problems"):
        ldap.ldapadd(ldif.entry("ou=%s,%s" % (ou, SUFFIX), [
            ("objectClass", "organizationalUnit"), ("ou", ou)]))

    # clean
    add("cn=sales", "Public/Sales", [R3, R2])
    add("cn=projects", "Public/Projects", [R2], remote_name="Projects",
        scope="subtree")
    add("cn=here", "Public/Here", ["10 %s" % SELF, R2])
    add("cn=cafe", "Public/Caf\u00e9", [R2])

    # problems, one or two of each kind
    add("cn=mixed", "Public/Mixed", ["abc", R2], base=PROBLEMS_BASE)
    add("cn=noserver", "Public/NoServer", ["abc"], base=PROBLEMS_BASE)
    add("cn=badscope", "Public/BadScope", [R2], scope="folder",
        base=PROBLEMS_BASE)
    add("cn=badremote", "Public/BadRemote", [R2],
        remote_name="Evil\r\n* BYE", base=PROBLEMS_BASE)
    # a control character in the name, and so in the DN
    add("cn=bad\x01name", "Public/Bad\x01Name", [R2], base=PROBLEMS_BASE)
    add("cn=dup-a", "Public/Dup", [R2], base=PROBLEMS_BASE)
    add("cn=dup-b", "Public/Dup", [R3], base=PROBLEMS_BASE)
    add("cn=many", "Public/Many",
        ["%d r%d.example.test" % (i, i) for i in range(17)],
        base=PROBLEMS_BASE)
    add("cn=hidden", "Public/Hidden", [R2], base=PROBLEMS_BASE)
    add("cn=gone", "Public/Gone", ["10 %s" % SELF], base=PROBLEMS_BASE)
    add("cn=here", "Public/Here", ["10 %s" % SELF], base=PROBLEMS_BASE)
    # this server holds them under their remote names: clients referred
    # here ask for those (in this namespace, in another, or missing)
    add("cn=renamed", "Public/Renamed", ["10 %s" % SELF],
        remote_name="Public/Local", base=PROBLEMS_BASE)
    add("cn=mine", "Public/Mine", ["10 %s" % SELF], remote_name="Mine",
        base=PROBLEMS_BASE)
    add("cn=moved", "Public/Moved", ["10 %s" % SELF],
        remote_name="Public/Nowhere", base=PROBLEMS_BASE)

    port = free_port()
    d = Dovecot("doveadm", port=port, plugin_settings=plugin_settings(
        ldap, SELF, mailbox_referrals_ldap_base=CLEAN_BASE,
        mailbox_referrals_shuffle="no"))
    d.start()
    for name in ("Here", "Hidden", "Local"):
        d.create_public_maildir(name)
    create_private_maildir(USER, "Mine")


def create_private_maildir(user, name):
    """The user's mailbox <name> in the private namespace, on disk."""
    for sub in ("", "cur", "new", "tmp"):
        path = d.path("mail", user, "." + name, sub)
        os.makedirs(path, exist_ok=True)
    for root, dirs, _ in os.walk(d.path("mail", user)):
        os.chown(root, MAIL_UID, MAIL_GID)


def teardown_module():
    if d is not None:
        d.cleanup()
    if ldap is not None:
        ldap.cleanup()
    if moddir is not None:
        shutil.rmtree(moddir, ignore_errors=True)


def doveadm(*args, settings=None, fmt="tab"):
    """Run doveadm with the instance's config and the build's module;
    returns (exit code, stdout, stderr)."""
    cmd = [DOVEADM, "-c", d.config_path]
    if fmt is not None:
        cmd += ["-f", fmt]
    for key, value in (settings or {}).items():
        cmd += ["-o", "plugin/%s=%s" % (key, value)]
    cmd += list(args)
    script = 'mount --bind "$0" "$1" && shift && exec "$@"'
    full = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            script, moddir, DOVEADM_MODULE_DIR] + cmd
    r = subprocess.run(full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"))



def rows(out):
    """Parse doveadm's tab output: a list of dicts by header."""
    lines = out.split("\n")
    expect(lines[-1] == "", "output does not end with a newline: %r" % out)
    header = lines[0].split("\t")
    result = []
    for line in lines[1:-1]:
        fields = line.split("\t")
        expect_eq(len(fields), len(header), "fields in %r" % line)
        result.append(dict(zip(header, fields)))
    return result


def expect_run(result, code, what):
    rc, out, err = result
    expect(rc == code, "%s: exit code %d, expected %d\nstdout: %r\nstderr: %r"
           % (what, rc, code, out, err))
    return out, err


def expect_no_controls(text, what):
    bad = [c for c in text if (ord(c) < 0x20 and c not in "\t\n")
           or 0x7f <= ord(c) < 0xa0]
    expect(not bad, "%s: control characters in the output: %r" % (what, text))


LOOKUP_HEADER = ("mailbox\tlocation\treason\tdn\tscope\tremote_name\t"
                 "servers\turls\n")


def lookup(mailbox, **kwargs):
    return doveadm("mailbox-referrals", "lookup", "-u", USER, mailbox,
                   **kwargs)


# ------------------------------------------------------------- lookup
def test_lookup_remote():
    out, err = expect_run(lookup("Public/Sales"), EX_OK, "lookup Public/Sales")
    # servers by preference, not in the directory's order
    expect_eq(out, LOOKUP_HEADER +
              "Public/Sales\tremote\tentry\t%s\tmailbox\tPublic/Sales\t"
              "10 imap2.example.test, 20 imap3.example.test:1143\t"
              "imap://alice;AUTH=*@imap2.example.test/Public/Sales "
              "imap://alice;AUTH=*@imap3.example.test:1143/Public/Sales\n"
              % dn("cn=sales"), "lookup output")
    expect_eq(err, "", "stderr")


def test_lookup_json():
    out, err = expect_run(lookup("Public/Caf\u00e9", fmt="json"), EX_OK,
                          "lookup -f json")
    expect_eq(json.loads(out), [{
        "mailbox": "Public/Caf\u00e9",
        "location": "remote",
        "reason": "entry",
        "dn": dn("cn=cafe"),
        "scope": "mailbox",
        "remote_name": "Public/Caf\u00e9",
        "servers": "10 imap2.example.test",
        "urls": "imap://alice;AUTH=*@imap2.example.test/Public/Caf%C3%A9",
    }], "lookup -f json")


def test_lookup_below_subtree_entry():
    out, _ = expect_run(lookup("Public/Projects/2026"), EX_OK, "lookup")
    expect_eq(rows(out), [{
        "mailbox": "Public/Projects/2026", "location": "remote",
        "reason": "entry", "dn": dn("cn=projects"), "scope": "subtree",
        "remote_name": "Projects/2026",
        "servers": "10 imap2.example.test",
        "urls": "imap://alice;AUTH=*@imap2.example.test/Projects/2026",
    }], "lookup below a subtree entry")


def test_lookup_local_without_entry():
    out, _ = expect_run(lookup("Public/Local"), EX_OK, "lookup Public/Local")
    expect_eq(out, LOOKUP_HEADER +
              "Public/Local\tlocal\tno-entry\t\t\t\t\t\n", "lookup output")


def test_lookup_local_self():
    out, _ = expect_run(lookup("Public/Here"), EX_OK, "lookup Public/Here")
    expect_eq(rows(out), [{
        "mailbox": "Public/Here", "location": "local", "reason": "self",
        "dn": dn("cn=here"), "scope": "mailbox", "remote_name": "Public/Here",
        "servers": "10 imap1.example.test, 10 imap2.example.test",
        "urls": "",
    }], "lookup of a mailbox this server holds")


def test_lookup_namespace_not_enabled():
    before = ldap.count_searches("imapReferralMailbox")
    out, _ = expect_run(lookup("INBOX"), EX_OK, "lookup INBOX")
    expect_eq(out, LOOKUP_HEADER +
              "INBOX\tlocal\tnamespace-not-enabled\t\t\t\t\t\n",
              "lookup output")
    # no query for it: the next lookup's query is the only new one
    expect_run(lookup("Public/Local"), EX_OK, "lookup Public/Local")
    wait_until(lambda: ldap.count_searches("imapReferralMailbox") > before)
    expect_eq(ldap.count_searches("imapReferralMailbox"), before + 1,
              "directory searches")


def test_lookup_unusable_entry():
    out, _ = expect_run(lookup("Public/NoServer", settings={
        "mailbox_referrals_ldap_base": PROBLEMS_BASE}), EX_DATAERR,
        "lookup of an entry without a usable server")
    expect_eq(out, LOOKUP_HEADER +
              "Public/NoServer\tunusable\tno valid imapReferralServer\t"
              "%s\tmailbox\tPublic/NoServer\t\t\n"
              % dn("cn=noserver", PROBLEMS_BASE), "lookup output")


def test_lookup_all_users_and_user_file():
    out, _ = expect_run(doveadm("mailbox-referrals", "lookup", "-A",
                                "Public/Here"), EX_OK, "lookup -A")
    expect_eq([(r["Username"], r["reason"]) for r in rows(out)],
              [("alice", "self"), ("bob", "self")], "lookup -A")
    users = os.path.join(moddir, "users")
    with open(users, "w") as f:
        f.write("bob\n")
    out, _ = expect_run(doveadm("mailbox-referrals", "lookup", "-F", users,
                                "Public/Sales"), EX_OK, "lookup -F")
    expect_eq([(r["Username"], r["urls"].split(" ")[0]) for r in rows(out)],
              [("bob", "imap://bob;AUTH=*@imap2.example.test/Public/Sales")],
              "lookup -F: the user's own URLs")


def test_lookup_directory_refused():
    port = free_port()
    out, err = expect_run(lookup("Public/Sales", settings={
        "mailbox_referrals_ldap_uris": "ldap://127.0.0.1:%d" % port}),
        EX_TEMPFAIL, "lookup with the directory down")
    expect_eq(out, LOOKUP_HEADER, "no row")
    expect_eq(err.splitlines(), [
        "doveadm(alice): Error: mailbox-referrals: ldap: Connecting to "
        "ldap://127.0.0.1:%d failed: Can't contact LDAP server - referrals "
        "unavailable until the directory answers again" % port,
        "doveadm(alice): Error: Can't look up Public/Sales: Referral "
        "directory is unavailable, try again later"], "stderr")


def test_lookup_directory_stalled():
    # accepts connections (the kernel does) but never answers: the run
    # ends with the lookup's timeout, well before RUN_TIMEOUT
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        s.listen(5)
        out, err = expect_run(lookup("Public/Sales", settings={
            "mailbox_referrals_ldap_uris":
                "ldap://127.0.0.1:%d" % s.getsockname()[1],
            "mailbox_referrals_ldap_timeout": "2s"}),
            EX_TEMPFAIL, "lookup with a directory that doesn't answer")
    expect_eq(out, LOOKUP_HEADER, "no row")
    expect("failed: Timed out" in err and
           "Referral directory is unavailable" in err,
           "stderr names the timeout: %r" % err)


def test_lookup_usage():
    rc, out, err = doveadm("mailbox-referrals", "lookup", "-u", USER)
    expect_eq(rc, 64, "exit code without a mailbox (EX_USAGE)")
    expect_eq(err, "doveadm mailbox-referrals lookup [-u <user>|-A] "
              "[-S <socket_path>] <mailbox>\n", "usage")
    out, err = expect_run(lookup("Public/A\x01B"), 64, "a name with a "
                          "control character")
    expect("Invalid mailbox name" in err, "stderr: %r" % err)


# --------------------------------------------------------------- list
LIST_HEADER = "mailbox\tscope\tservers\tremote_name\tdn\terror\n"


def list_row(mailbox, rdn, servers="10 imap2.example.test", scope="mailbox",
             remote_name=None):
    return "%s\t%s\t%s\t%s\t%s\t\n" % (mailbox, scope, servers,
                                       remote_name or mailbox, dn(rdn))


def test_list_all():
    out, err = expect_run(doveadm("mailbox-referrals", "list", "-u", USER),
                          EX_OK, "list")
    expect_eq(out, LIST_HEADER +
              list_row("Public/Caf\u00e9", "cn=cafe") +
              list_row("Public/Here", "cn=here",
                       "10 imap1.example.test, 10 imap2.example.test") +
              list_row("Public/Projects", "cn=projects", scope="subtree",
                       remote_name="Projects") +
              list_row("Public/Sales", "cn=sales",
                       "10 imap2.example.test, 20 imap3.example.test:1143"),
              "list")
    expect_eq(err, "", "stderr")


def test_list_pattern():
    for pattern, names in (("Public/P*", ["Public/Projects"]),
                           ("*s", ["Public/Projects", "Public/Sales"]),
                           ("Public/%", ["Public/Caf\u00e9", "Public/Here",
                                         "Public/Projects", "Public/Sales"]),
                           ("%", []),
                           ("Public/Caf\u00e9", ["Public/Caf\u00e9"]),
                           ("Public/H?re", [])):
        out, _ = expect_run(doveadm("mailbox-referrals", "list", "-u", USER,
                                    pattern), EX_OK, "list %s" % pattern)
        expect_eq([r["mailbox"] for r in rows(out)], names,
                  "list %r" % pattern)


def test_list_json_and_invalid_entries():
    out, err = expect_run(doveadm("mailbox-referrals", "list", "-u", USER,
                                  "Public/No*", fmt="json", settings={
                                      "mailbox_referrals_ldap_base":
                                          PROBLEMS_BASE}),
                          EX_OK, "list -f json")
    expect_eq(json.loads(out), [{
        "mailbox": "Public/NoServer", "scope": "mailbox", "servers": "",
        "remote_name": "Public/NoServer",
        "dn": dn("cn=noserver", PROBLEMS_BASE),
        "error": "no valid imapReferralServer"}], "list -f json")
    # sessions log what they skip; so does list, on stderr
    expect("Directory entry" in err, "stderr: %r" % err)
    expect_no_controls(out + err, "list")


def test_list_directory_down():
    out, err = expect_run(doveadm("mailbox-referrals", "list", "-u", USER,
                                  settings={"mailbox_referrals_ldap_uris":
                                            "ldap://127.0.0.1:%d"
                                            % free_port()}),
                          EX_TEMPFAIL, "list with the directory down")
    expect_eq(out, LIST_HEADER, "no rows")
    expect("Can't list the directory entries of namespace 'Public/': "
           "Referral directory is unavailable" in err, "stderr: %r" % err)


def test_list_referrals_disabled():
    out, err = expect_run(doveadm("mailbox-referrals", "list", "-u", USER,
                                  settings={"mailbox_referrals_namespaces":
                                            ""}),
                          EX_CONFIG, "list for a user without referrals")
    expect_eq(err, "doveadm(alice): Error: Mailbox referrals are not enabled "
              "for user alice (mailbox_referrals_namespaces is empty or "
              "mailbox_referrals is not in mail_plugins)\n", "stderr")


# -------------------------------------------------------------- check
CHECK_HEADER = "problem\tmailbox\tdn\tdetail\n"


def test_check_clean():
    out, err = expect_run(doveadm("mailbox-referrals", "check", "-u", USER),
                          EX_OK, "check of a clean directory")
    expect_eq(out, CHECK_HEADER, "no rows")
    expect_eq(err, "", "stderr")


def test_check_problems():
    out, err = expect_run(doveadm("mailbox-referrals", "check", "-u", USER,
                                  settings={"mailbox_referrals_ldap_base":
                                            PROBLEMS_BASE}),
                          EX_DATAERR, "check of a directory with problems")

    def row(kind, mailbox, rdn, detail):
        return "%s\t%s\t%s\t%s\n" % (kind, mailbox, dn(rdn, PROBLEMS_BASE),
                                     detail)
    bad_server = ('Ignoring invalid imapReferralServer value "abc": '
                  'expected "PREFERENCE HOST[:PORT]"')
    expect_eq(out, CHECK_HEADER +
              # control characters shown as \XX, in the DN as RFC 4514 does
              row("invalid-value", "Public/Bad\\01Name", "cn=bad\\01name",
                  "imapReferralMailbox is empty, not UTF-8 or has control "
                  "characters: the entry is ignored") +
              row("invalid-value", "Public/BadRemote", "cn=badremote",
                  'Invalid imapReferralRemoteName value "Evil??* BYE" '
                  '(empty, not UTF-8 or has control characters)') +
              row("invalid-value", "Public/BadScope", "cn=badscope",
                  'Invalid imapReferralScope value "folder" (expected '
                  'mailbox or subtree)') +
              row("duplicate", "Public/Dup", "cn=dup-b",
                  'Same imapReferralMailbox and scope as "%s", which is '
                  'used instead' % dn("cn=dup-a", PROBLEMS_BASE)) +
              row("missing-here", "Public/Gone", "cn=gone",
                  "Names this server, but the mailbox does not exist here") +
              row("local-elsewhere", "Public/Hidden", "cn=hidden",
                  "Exists here, but the directory places it on "
                  "imap2.example.test: clients are referred there and LIST "
                  "hides it") +
              row("too-many-servers", "Public/Many", "cn=many",
                  "17 imapReferralServer values, using the 16 with the "
                  "lowest preference") +
              row("invalid-value", "Public/Mixed", "cn=mixed", bad_server) +
              row("missing-here", "Public/Moved", "cn=moved",
                  'Names this server, but the mailbox does not exist here '
                  'under its imapReferralRemoteName "Public/Nowhere"') +
              row("invalid-value", "Public/NoServer", "cn=noserver",
                  bad_server) +
              row("no-server", "Public/NoServer", "cn=noserver",
                  "No valid imapReferralServer value"),
              "check rows")
    expect_eq(err, "", "stderr")


def test_check_json():
    out, _ = expect_run(doveadm("mailbox-referrals", "check", "-u", USER,
                                fmt="json", settings={
                                    "mailbox_referrals_ldap_base":
                                        PROBLEMS_BASE}),
                        EX_DATAERR, "check -f json")
    problems = json.loads(out)
    expect_eq(len(problems), 11, "problems")
    expect_eq(problems[0], {
        "problem": "invalid-value", "mailbox": "Public/Bad\\01Name",
        "dn": dn("cn=bad\\01name", PROBLEMS_BASE),
        "detail": "imapReferralMailbox is empty, not UTF-8 or has control "
                  "characters: the entry is ignored"}, "first problem")


def test_check_directory_down():
    out, err = expect_run(doveadm("mailbox-referrals", "check", "-u", USER,
                                  settings={"mailbox_referrals_ldap_uris":
                                            "ldap://127.0.0.1:%d"
                                            % free_port()}),
                          EX_TEMPFAIL, "check with the directory down")
    expect_eq(out, CHECK_HEADER, "no rows")
    expect("Referral directory is unavailable" in err, "stderr: %r" % err)


def test_output_formats_escape():
    """Every formatter: no control character from the directory."""
    for fmt in ("tab", "flow", "table", "pager", "json"):
        rc, out, err = doveadm("mailbox-referrals", "check", "-u", USER,
                               fmt=fmt, settings={
                                   "mailbox_referrals_ldap_base":
                                       PROBLEMS_BASE})
        expect_eq(rc, EX_DATAERR, "check -f %s exit code" % fmt)
        expect("Public/Bad\\01Name" in out.replace("\\\\", "\\"),
               "-f %s escapes the name: %r" % (fmt, out))
        expect_no_controls(out.replace("\f", ""), "check -f %s" % fmt)

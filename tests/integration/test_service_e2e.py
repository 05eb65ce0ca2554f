# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""The real directory service (service/) with the real plugin client
(mailbox_referrals_directory = service), against a real slapd with the
syncprov overlay: what IMAP clients see, changes seen by sessions already
open, the service killed and restarted by Dovecot's master, slapd gone
after the first load, the service not configured at all, and that imap
processes never speak LDAP themselves (slapd's log).

Changes are awaited through the service's STATUS generation or by
retrying a command until its answer changes, within a deadline: never a
fixed sleep."""

import os
import re
import shutil
import signal
import tempfile
import time

from common import (check_plugin_built, expect, expect_eq, expect_ok,
                    expect_usable, plugin_settings, referral_entry,
                    referral_response,
                    CORE_MODULES, Failure, IMAP_PLUGIN_MODULE, PASSWORD,
                    PLUGIN_MODULE, USER, wait_until)
from harness import procs
from harness.dovecot import Dovecot, BUILD_SERVICE
from harness.imap import ImapClient, strip_timing
from test_service import (add, connect, make_dovecot, make_slapd,
                          service_pid, wait_change, wait_status, DEADLINE)

IMAP2 = ("imap2.example.com", 143)
IMAP3 = ("imap3.example.com", 1143)
UNAVAILABLE = "NO [UNAVAILABLE] Referral directory is unavailable, " \
    "try again later"

ldap = None
home = None


def setup_module():
    global ldap, home
    check_plugin_built()
    if not os.path.exists(BUILD_SERVICE):
        raise Failure("%s not built; run ./quickstart build" % BUILD_SERVICE)
    ldap = make_slapd(syncprov=True)
    add(ldap, "Public/Remote", ["10 imap2.example.com"])
    add(ldap, "Public/Moving", ["10 imap2.example.com"])
    add(ldap, "Public/Tree", ["10 imap2.example.com",
                              "20 imap3.example.com:1143"], scope="subtree")
    home = make_dovecot("e2e", ldap,
                        mailbox_referrals_directory="service",
                        mailbox_referrals_directory_timeout="3s")
    home.start()
    home.create_public_maildir("Here")
    # a local copy of a mailbox the directory places elsewhere: it must
    # never be served, nor listed by plain LIST
    home.create_public_maildir("Remote")
    wait_status(home, lambda s: s["state"] == "synced" and
                s["entries"] == 3, "first load")


def teardown_module():
    for obj in (home, ldap):
        if obj is not None:
            obj.cleanup()


def _client(dovecot=None):
    c = ImapClient((dovecot or home).port)
    expect_ok(c.login(USER, PASSWORD), "LOGIN")
    return c


def _select(c, mailbox):
    return strip_timing(c.command("SELECT %s" % mailbox).text)


def _ldap_sessions():
    """slapd's connections and binds so far (its log, -d stats)."""
    text = ldap.log_text()
    return (len(re.findall(r" ACCEPT from ", text)),
            len(re.findall(r" BIND dn=", text)))


def _imap_libraries(dovecot):
    """The shared objects mapped by each imap process of dovecot."""
    out = {}
    for pid in procs.children_of(dovecot.master_pid):
        try:
            with open("/proc/%d/comm" % pid) as f:
                if f.read().strip() != "imap":
                    continue
            with open("/proc/%d/maps" % pid) as f:
                out[pid] = {os.path.basename(l.split()[-1]) for l in f
                            if ".so" in l}
        except OSError:
            continue
    return out


def _ldap_libraries(libraries):
    return sorted(l for l in libraries
                  if l.startswith(("libldap", "liblber", "libsasl2")) or
                  "mailbox_referrals_ldap" in l)


# ---------------------------------------------------------------- tests
def test_select_remote_subtree_and_local():
    with _client() as c:
        expect_eq(_select(c, "Public/Remote"),
                  referral_response([IMAP2], "Public/Remote"),
                  "SELECT of a remote mailbox (a local copy exists)")
        expect_eq(_select(c, "Public/Tree/Below"),
                  referral_response([IMAP2, IMAP3], "Public/Tree/Below"),
                  "SELECT below a subtree entry")
        expect_eq(_select(c, "Public/Tree"),
                  referral_response([IMAP2, IMAP3], "Public/Tree"),
                  "SELECT of the subtree entry's own mailbox")
        r = c.command("SELECT Public/Here")
        expect_ok(r, "SELECT of a local mailbox without an entry")
        expect_ok(c.command("SELECT INBOX"), "SELECT INBOX")
        c.logout()


def test_rlist_and_list_remote_show_remote_plain_list_hides_them():
    with _client() as c:
        r = c.command('RLIST "" "Public/*"')
        expect_ok(r, "RLIST")
        expect_eq(sorted(r.untagged), [
            '* LIST () "/" Public/Tree',
            '* LIST (\\HasNoChildren) "/" Public/Here',
            '* LIST (\\HasNoChildren) "/" Public/Moving',
            '* LIST (\\HasNoChildren) "/" Public/Remote',
        ], "RLIST Public/*")
        r = c.command('LIST (REMOTE) "" "Public/*"')
        expect_ok(r, "LIST (REMOTE)")
        expect_eq(sorted(r.untagged), [
            '* LIST () "/" Public/Here',
            '* LIST (\\Remote) "/" Public/Moving',
            '* LIST (\\Remote) "/" Public/Remote',
            '* LIST (\\Remote) "/" Public/Tree',
        ], "LIST (REMOTE) Public/*")
        r = c.command('LIST "" "Public/*"')
        expect_ok(r, "plain LIST")
        expect_eq(sorted(r.untagged), [
            '* LIST (\\HasNoChildren) "/" Public/Here',
        ], "plain LIST Public/* (the local copy of Public/Remote hidden)")
        c.logout()


def test_imap_processes_never_connect_to_ldap():
    """Sessions looking up, listing and refusing covered names cost slapd
    nothing: its log shows no new connection and no new bind, the
    service's connection being older than them."""
    before = _ldap_sessions()
    for _ in range(3):
        with _client() as c:
            expect(_select(c, "Public/Remote").startswith("NO [REFERRAL "),
                   "SELECT Public/Remote refers")
            expect_ok(c.command('RLIST "" "Public/*"'), "RLIST")
            expect_ok(c.command('LIST "" "*"'), "LIST *")
            expect_ok(c.command("SELECT Public/Here"), "SELECT Public/Here")
            c.logout()
    expect_eq(_ldap_sessions(), before,
              "slapd's (connections, binds) across three imap sessions")


def test_imap_process_maps_no_libldap():
    """With the service, an imap process that looked up, listed and
    refused covered names has not loaded libldap, liblber, SASL or the
    LDAP backend's module; with ldap, the same session has."""
    with _client() as c:
        expect(_select(c, "Public/Remote").startswith("NO [REFERRAL "),
               "SELECT Public/Remote refers")
        expect_ok(c.command('RLIST "" "Public/*"'), "RLIST")
        maps = _imap_libraries(home)
        expect(maps, "an imap process of the session")
        for pid, libs in maps.items():
            expect("lib20_mailbox_referrals_plugin.so" in libs,
                   "imap %d has the mail plugin: %r" % (pid, sorted(libs)))
            expect_eq(_ldap_libraries(libs), [],
                      "LDAP libraries in imap %d with the service" % pid)
        c.logout()
    ldap_home = Dovecot("e2e-ldap", plugin_settings=plugin_settings(
        ldap, "127.0.0.1:%d" % home.port))
    try:
        ldap_home.start()
        with _client(ldap_home) as c:
            expect(_select(c, "Public/Remote").startswith("NO [REFERRAL "),
                   "SELECT Public/Remote refers with ldap")
            libs = set()
            for found in _imap_libraries(ldap_home).values():
                libs |= found
            found = _ldap_libraries(libs)
            expect("lib22_mailbox_referrals_ldap_plugin.so" in found and
                   any(l.startswith("libldap") for l in found),
                   "the LDAP backend's module and libldap with ldap: %r"
                   % found)
            c.logout()
    finally:
        ldap_home.cleanup()


def test_plugin_works_without_the_ldap_module():
    """A module directory holding every plugin module but the LDAP
    backend's: the service works; ldap fails the login with the reason in
    the log."""
    moddir = tempfile.mkdtemp(prefix="mbref-modules-")
    os.chmod(moddir, 0o755)
    for path in (PLUGIN_MODULE, IMAP_PLUGIN_MODULE) + CORE_MODULES:
        os.symlink(path, os.path.join(moddir, os.path.basename(path)))
    port = home.port
    with_service = make_dovecot("e2e-nomod", ldap,
                                mailbox_referrals_directory="service")
    with_service.mail_plugin_dir = moddir
    with_ldap = Dovecot("e2e-nomod-ldap", mail_plugin_dir=moddir,
                        plugin_settings=plugin_settings(
                            ldap, "127.0.0.1:%d" % port))
    try:
        with_service.start()
        with_service.wait_service_synced()
        with _client(with_service) as c:
            expect_eq(_select(c, "Public/Remote"),
                      referral_response([IMAP2], "Public/Remote"),
                      "SELECT Public/Remote without the ldap module")
            c.logout()
        with_ldap.start()
        with ImapClient(with_ldap.port) as c:
            # Dovecot's answer to a user whose mail plugin failed: the
            # session ends at once, nothing is served
            r = c.login(USER, PASSWORD)
            expect_eq(strip_timing(r.text),
                      "OK Logged in, but initialization failed.",
                      "LOGIN with ldap and no module")
            expect_eq(c.read_line(), "* BYE Internal error occurred. "
                      "Refer to server log for more information.",
                      "the session ends")
        with_ldap.wait_log(
            lambda t: "mailbox_referrals_directory: Can't load the ldap "
            "backend: Plugin 'mailbox_referrals_ldap' not found from "
            "directory " + moddir in t)
    finally:
        with_service.cleanup()
        with_ldap.cleanup()
        shutil.rmtree(moddir, ignore_errors=True)


def _session_libraries():
    """The shared objects of the one imap process of home (the test's
    session), by file name."""
    maps = _imap_libraries(home)
    expect_eq(len(maps), 1, "imap processes: the session's only")
    return next(iter(maps.values()))


def test_core_modules_loaded_at_first_use():
    """Dovecot loads the mail and IMAP plugins' own modules in every
    session; their core modules are loaded by the sessions that use them:
    the mail plugin's at the first mailbox (or listing) in a namespace
    where referrals apply, the IMAP plugin's at the first RLIST, RLSUB or
    LIST."""
    core, imap_core = (os.path.basename(p) for p in CORE_MODULES)
    expect(wait_until(lambda: not _imap_libraries(home)),
           "the earlier tests' imap processes have exited")
    with _client() as c:
        expect_ok(c.command("SELECT INBOX"), "SELECT INBOX")
        libs = _session_libraries()
        expect(os.path.basename(PLUGIN_MODULE) in libs and
               os.path.basename(IMAP_PLUGIN_MODULE) in libs,
               "both plugins loaded: %r" % sorted(libs))
        expect(core not in libs and imap_core not in libs,
               "no core module after LOGIN, SELECT INBOX: %r"
               % sorted(libs))
        expect_eq(_select(c, "Public/Remote"),
                  referral_response([IMAP2], "Public/Remote"),
                  "SELECT Public/Remote")
        libs = _session_libraries()
        expect(core in libs and imap_core not in libs,
               "the mail plugin's core only, after SELECT Public/Remote: "
               "%r" % sorted(libs))
        expect_ok(c.command('RLIST "" "Public/*"'), "RLIST")
        expect(imap_core in _session_libraries(),
               "the IMAP plugin's core after RLIST")
        c.logout()


def test_invalid_settings_fail_the_login():
    """Settings that only the core modules use are checked at login all
    the same: an invalid one fails the login, with the reason in the
    log."""
    cases = [
        ({"mailbox_referrals_proxy": "sometimes"},
         "mailbox_referrals_proxy: Invalid value 'sometimes' (expected "
         "no, unaware or all)"),
        ({"mailbox_referrals_directory_timeout": "0"},
         "mailbox_referrals_directory_timeout: must not be 0"),
    ]
    for settings, reason in cases:
        bad = make_dovecot("e2e-bad", ldap,
                           mailbox_referrals_directory="service", **settings)
        try:
            bad.start()
            with ImapClient(bad.port) as c:
                r = c.login(USER, PASSWORD)
                expect_eq(strip_timing(r.text),
                          "OK Logged in, but initialization failed.",
                          "LOGIN with %r" % settings)
                expect_eq(c.read_line(), "* BYE Internal error occurred. "
                          "Refer to server log for more information.",
                          "the session ends")
            bad.wait_log(lambda t: "mailbox-referrals: Invalid settings: " +
                         reason in t)
        finally:
            bad.cleanup()


def test_change_seen_by_the_next_command_of_an_open_session():
    with _client() as c:
        expect_eq(_select(c, "Public/Moving"),
                  referral_response([IMAP2], "Public/Moving"),
                  "SELECT before the change")
        s = connect(home)
        try:
            generation = s.status()["generation"]
        finally:
            s.close()
        ldap.ldapmodify(
            "dn: imapReferralMailbox=Public/Moving,ou=referrals,"
            "dc=example,dc=com\nchangetype: modify\n"
            "replace: imapReferralServer\n"
            "imapReferralServer: 5 imap3.example.com:1143\n")
        wait_change(home, generation, "the modification reaches the service")
        expect_eq(_select(c, "Public/Moving"),
                  referral_response([IMAP3], "Public/Moving"),
                  "SELECT after the change, same session")
        c.logout()


def test_oversized_values_fail_closed():
    """A server value of 1 MB (the schema allows 256 characters) leaves
    its entry without a usable server: SELECT of its mailbox, which also
    exists here, answers NO [UNAVAILABLE], never the local copy. A
    100 KB mailbox name (the schema allows 4096) is not listed."""
    home.create_public_maildir("Huge")
    s = connect(home)
    try:
        generation = s.status()["generation"]
    finally:
        s.close()
    add(ldap, "Public/Huge", ["10 " + "h" * (1 << 20)])
    status = wait_change(home, generation, "the 1 MB server value")
    # under a cn= RDN: slapd refuses a DN of that size
    ldap.ldapadd(referral_entry("cn=longname", "Public/" + "n" * 100000,
                                ["10 imap2.example.com"])[1])
    wait_change(home, status["generation"], "the 100 KB name")
    with _client() as c:
        expect_eq(_select(c, "Public/Huge"),
                  "NO [UNAVAILABLE] Remote mailbox has no usable server "
                  "in the directory",
                  "SELECT of a mailbox whose entry has a 1 MB server")
        r = c.command('RLIST "" "Public/*"')
        expect_ok(r, "RLIST")
        expect_eq(sorted(r.untagged), [
            '* LIST () "/" Public/Tree',
            '* LIST (\\HasNoChildren) "/" Public/Here',
            '* LIST (\\HasNoChildren) "/" Public/Huge',
            '* LIST (\\HasNoChildren) "/" Public/Moving',
            '* LIST (\\HasNoChildren) "/" Public/Remote',
        ], "RLIST with oversized values in the directory")
        expect_usable(c, "after the oversized values")
        c.logout()


def test_service_killed_fails_closed_then_works_again():
    pid = service_pid(home)
    expect(pid is not None, "the service runs")
    with _client() as c:
        expect_eq(_select(c, "Public/Remote"),
                  referral_response([IMAP2], "Public/Remote"),
                  "SELECT before the kill")
        os.kill(pid, signal.SIGKILL)
        referral = referral_response([IMAP2], "Public/Remote")
        answers = []
        deadline = time.monotonic() + DEADLINE
        while True:
            got = _select(c, "Public/Remote")
            answers.append(got)
            # the local copy of Public/Remote is never served
            expect(got in (referral, UNAVAILABLE),
                   "answer after the kill: %r" % got)
            new_pid = service_pid(home)
            if got == referral and new_pid not in (None, pid):
                break
            if time.monotonic() > deadline:
                raise Failure("no referral within %ds after the kill: %r"
                              % (DEADLINE, answers[-3:]))
            time.sleep(0.1)
        expect_usable(c, "the session after the service's restart")
        expect_ok(c.command("SELECT Public/Here"), "SELECT Public/Here")
        c.logout()
    # a new session is served too
    with _client() as c:
        expect_eq(_select(c, "Public/Tree/Below"),
                  referral_response([IMAP2, IMAP3], "Public/Tree/Below"),
                  "a new session after the restart")
        c.logout()


def test_slapd_stopped_the_replica_answers():
    wait_status(home, lambda s: s["state"] == "synced", "synced")
    ldap.stop()
    try:
        with _client() as c:
            expect_eq(_select(c, "Public/Remote"),
                      referral_response([IMAP2], "Public/Remote"),
                      "SELECT with slapd stopped")
            r = c.command('RLIST "" "Public/T*"')
            expect_ok(r, "RLIST with slapd stopped")
            expect_eq(r.untagged, ['* LIST () "/" Public/Tree'],
                      "RLIST Public/T* with slapd stopped")
            expect_ok(c.command("SELECT Public/Here"),
                      "SELECT Public/Here with slapd stopped")
            c.logout()
    finally:
        ldap.start()
    wait_status(home, lambda s: s["state"] == "synced", "synced again")


def test_service_not_configured_is_unavailable():
    """mailbox_referrals_directory = service without the service block:
    no socket. Names of Public/ fail closed, INBOX is unaffected."""
    port = home.port
    bare = Dovecot("e2e-bare", plugin_settings={
        "mailbox_referrals_namespaces": "Public/",
        "mailbox_referrals_self": "127.0.0.1:%d" % port,
        "mailbox_referrals_directory": "service",
    })
    try:
        bare.start()
        bare.create_public_maildir("Remote")
        expect(not os.path.exists(bare.service_socket), "no socket")
        with _client(bare) as c:
            expect_eq(_select(c, "Public/Remote"), UNAVAILABLE,
                      "SELECT Public/Remote without the service")
            expect_eq(strip_timing(c.command("CREATE Public/New").text),
                      UNAVAILABLE, "CREATE Public/New without the service")
            expect_ok(c.command("SELECT INBOX"), "SELECT INBOX")
            expect_ok(c.command("CREATE Private"), "CREATE Private")
            expect_usable(c, "without the service")
            c.logout()
        text = bare.log_text()
        expect(bare.service_socket in text and
               "No such file or directory" in text,
               "the missing socket is logged: %r" % text[-2000:])
    finally:
        bare.cleanup()

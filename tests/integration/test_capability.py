# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""MAILBOX-REFERRALS in CAPABILITY (RFC 2193 section 3), named exactly
once wherever it appears.

The shared servers (no imap_capability setting) list it after login only:
the login process loads no mail plugins. This module's own Dovecot "K"
follows the README's advice, imap_capability = +MAILBOX-REFERRALS, and
lists it before login too; the plugin must then not add it a second time.
K is restarted with other spellings of the setting to pin the comparison
(whole word, any case). The IMAP module declares that it belongs to the
imap binary: doveadm, given it in mail_plugins, refuses it with Dovecot's
own clear error."""

import re
import subprocess

from common import (check_plugin_built, env, expect, expect_eq, expect_ok,
                    plugin_settings, PASSWORD, USER)
from harness.dovecot import BUILD_MODULE_DIR, Dovecot
from harness.imap import ImapClient
from harness.ports import free_port

CAP = "MAILBOX-REFERRALS"
DOVEADM = "/usr/bin/doveadm"


def _words(caps):
    return caps.upper().split()


def _code_caps(line):
    """The words of the [CAPABILITY ...] code of a greeting or tagged
    reply, or None."""
    m = re.search(r"\[CAPABILITY ([^\]]*)\]", line)
    return _words(m.group(1)) if m else None


def _capability_command(c, what):
    r = c.command("CAPABILITY")
    expect_ok(r, what)
    lines = [l for l in r.untagged if l.startswith("* CAPABILITY ")]
    expect(len(lines) == 1, "%s: one * CAPABILITY line expected: %r"
           % (what, r.untagged))
    return _words(lines[0][len("* CAPABILITY "):])


def _expect_count(words, count, what, name=CAP):
    expect(words is not None, "%s: no capability list" % what)
    expect_eq(words.count(name), count, "%s: times %s is named in %r"
              % (what, name, " ".join(words)))


def _check_server(port, before_login, name, what):
    """The greeting's code and CAPABILITY before login name CAP
    before_login times; after login (the code of the LOGIN or AUTHENTICATE
    reply, and CAPABILITY) exactly once. name: how the list spells it (upper
    case compared)."""
    with ImapClient(port) as c:
        _expect_count(_code_caps(c.greeting), before_login,
                      "%s: greeting" % what, name)
        _expect_count(_capability_command(c, what), before_login,
                      "%s: CAPABILITY before login" % what, name)
    # a client that has seen CAPABILITY gets no code in the LOGIN reply:
    # a new connection for each way of logging in
    for how in ("LOGIN", "AUTHENTICATE PLAIN"):
        with ImapClient(port) as c:
            log_in = c.login if how == "LOGIN" else c.authenticate_plain
            r = log_in(USER, PASSWORD)
            expect_ok(r, "%s: %s" % (what, how))
            _expect_count(_code_caps(r.tagged), 1,
                          "%s: %s reply's code" % (what, how), name)
            _expect_count(_capability_command(c, what), 1,
                          "%s: CAPABILITY after %s" % (what, how), name)


# ------------------------------------------- without imap_capability
def test_shared_server_after_login_only():
    e = env()
    _check_server(e.a.port, 0, CAP, "A")


def test_every_server_announces_it():
    e = env()
    for name in ("b", "c"):
        with e.client(name) as c:
            _expect_count(_capability_command(c, name.upper()), 1,
                          "CAPABILITY after login on %s" % name.upper())


# ---------------------------------------------- with imap_capability
_K = None


def _k(capability):
    """Dovecot K on the shared directory, (re)started with
    imap_capability = capability."""
    global _K
    e = env()
    if _K is None:
        port = free_port()
        _K = Dovecot("cap", port=port, plugin_settings=plugin_settings(
            e.ldap, "127.0.0.1:%d" % port))
    _K.stop()
    _K.extra_config = "protocol imap {\n  imap_capability = %s\n}\n" % (
        capability,)
    _K.start()
    return _K


def teardown_module():
    global _K
    if _K is not None:
        _K.cleanup()
        _K = None


def test_readme_setting_lists_it_once():
    _check_server(_k("+" + CAP).port, 1, CAP, "imap_capability = +" + CAP)


def test_setting_in_lower_case_lists_it_once():
    _check_server(_k("+mailbox-referrals").port, 1, CAP,
                  "imap_capability = +mailbox-referrals")


def test_similar_capability_is_not_it():
    """A capability that contains the name is another capability: the
    plugin still adds its own after login."""
    other = "X-" + CAP + "-DRAFT"
    k = _k("+" + other)
    _check_server(k.port, 0, CAP, "imap_capability = +" + other)
    _check_server(k.port, 1, other, "imap_capability = +" + other)


# ------------------------------------- the IMAP module outside imap
def test_imap_module_refused_outside_imap():
    """imap_mailbox_referrals in the global mail_plugins: imap works (and
    names the capability once), doveadm refuses the module with the
    loader's error instead of failing on unresolved symbols."""
    check_plugin_built()
    e = env()
    port = free_port()
    d = Dovecot("bindep", port=port, with_plugin=False,
                plugin_settings=plugin_settings(e.ldap,
                                                "127.0.0.1:%d" % port),
                extra_config="mail_plugin_dir = %s\nmail_plugins = "
                "$mail_plugins mailbox_referrals imap_mailbox_referrals\n"
                % BUILD_MODULE_DIR)
    try:
        d.start()
        _check_server(d.port, 0, CAP, "global mail_plugins")
        r = subprocess.run([DOVEADM, "-c", d.config_path, "mailbox", "list",
                            "-u", USER], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        err = r.stderr.decode(errors="replace")
        expect(r.returncode != 0, "doveadm with the IMAP module in "
               "mail_plugins succeeded: %r" % err)
        want = ("Can't load plugin imap_mailbox_referrals_plugin: Plugin is "
                "intended to be used only by imap binary (we're doveadm)")
        expect(want in err, "doveadm's error lacks %r:\n%s" % (want, err))
        expect("undefined symbol" not in err,
               "doveadm failed on symbols: %s" % err)
    finally:
        d.cleanup()

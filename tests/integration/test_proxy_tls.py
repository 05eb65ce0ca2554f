# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""The proxy's connections to remote servers over TLS
(mailbox_referrals_proxy_ssl = starttls | imaps), verified against
Dovecot's ssl_client_ca_file: the passed-through connection of SELECT,
EXAMINE, FETCH (these tests), and imapc's (test_imapc_connection_over_tls).

Own PKI (test_tls.make_pki: a CA, a server certificate it signs for
IP:127.0.0.1, and a second CA that signed nothing here), own slapd, one
remote server offering STARTTLS on its imap port and TLS on an imaps port,
with a master passdb for the proxy, and one home server per proxy
configuration. The remote server's log says whether a login came over TLS
("Login: ... TLS"), so the tests see that the proxy's session used it.
"""

import os
import re
import tempfile

from common import (check_plugin_built, expect, expect_eq, expect_ok,
                    expect_tagged, expect_usable, login, own_directory,
                    plugin_settings, referral_entry, stop_servers,
                    wait_until, USER)
from harness.dovecot import Dovecot
from harness.imap import ImapClient, message
from harness.ports import free_port
from test_tls import make_pki

MASTER, MASTER_PW = "mbref-proxy", "tls-master-secret"
MAILBOX = "Public/Sales"

pki = {}
state = {}
servers = []


def _remote_config(masters, imaps_port):
    return """
passdb {{
  driver = passwd-file
  master = yes
  args = scheme=PLAIN username_format=%u {masters}
}}
auth_master_user_separator = *
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
service imap-login {{
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
  }}
}}
""".format(masters=masters, cert=pki["cert"], key=pki["key"],
           imaps=imaps_port)


def setup_module():
    check_plugin_built()
    pki_dir = tempfile.mkdtemp(prefix="mbref-proxy-tls-")
    state["pki_dir"] = pki_dir
    pki.update(make_pki(pki_dir))
    masters = os.path.join(pki_dir, "masters")
    with open(masters, "w") as f:
        f.write("%s:{PLAIN}%s\n" % (MASTER, MASTER_PW))
    os.chmod(masters, 0o644)
    ldap = own_directory()
    servers.append(ldap)
    imaps_port = free_port()
    remote = Dovecot("ptls-remote", with_plugin=False,
                     extra_config=_remote_config(masters, imaps_port))
    servers.append(remote)
    remote.start()
    remote.create_public_maildir("Sales")
    with ImapClient(remote.port) as c:
        expect_ok(c.login(USER, "secret"), "LOGIN on the remote server")
        expect_ok(c.append(MAILBOX, message("Over TLS", "tls body\n")),
                  "APPEND on the remote server")
    state.update(ldap=ldap, remote=remote, imaps_port=imaps_port)


def teardown_module():
    stop_servers(*reversed(servers))
    servers.clear()


def _home(name, ssl, ca, port):
    """A home server proxying to the remote server's port (the imap port
    for STARTTLS, the imaps port for imaps), trusting ca."""
    ldap = state["ldap"]
    mailbox = "Public/%s" % name.capitalize()
    ldap.ldapadd(referral_entry("cn=%s" % name, mailbox,
                                ["10 127.0.0.1:%d" % port],
                                remote_name=MAILBOX)[1])
    home_port = free_port()
    d = Dovecot("ptls-" + name, port=home_port,
                extra_config="ssl_client_ca_file = %s\n" % ca,
                plugin_settings=plugin_settings(
                    ldap, "127.0.0.1:%d" % home_port,
                    mailbox_referrals_proxy="unaware",
                    mailbox_referrals_proxy_master_user=MASTER,
                    mailbox_referrals_proxy_password=MASTER_PW,
                    mailbox_referrals_proxy_ssl=ssl))
    servers.append(d)
    d.start()
    return d, mailbox


def _tls_logins():
    return len(re.findall(r"Login: user=<%s>, method=PLAIN, .* TLS," % USER,
                          state["remote"].log_text()))


def _expect_proxied_over_tls(d, mailbox, what):
    before = _tls_logins()
    c = login(d, what)
    r = c.command("EXAMINE " + mailbox)
    expect_ok(r, "%s: EXAMINE through the proxy" % what)
    expect("* 1 EXISTS" in r.untagged,
           "%s: the remote mailbox's message: %r" % (what, r.untagged))
    r = c.command("FETCH 1 BODY.PEEK[TEXT]")
    expect_ok(r, "%s: FETCH" % what)
    expect(any("tls body" in line for line in r.untagged),
           "%s: the remote message's body: %r" % (what, r.untagged))
    c.logout()
    # the remote server logs the proxy's login (master login: user=alice)
    wait_until(lambda: _tls_logins() > before)


def _expect_refused(d, mailbox, port, what):
    c = login(d, what)
    r = c.command("EXAMINE " + mailbox)
    expect_tagged(r, "NO [UNAVAILABLE] Remote server 127.0.0.1:%d is "
                  "unavailable" % port, "%s: EXAMINE" % what)
    expect_usable(c, what)
    c.logout()
    # the log service may write the lines after the reply went out
    def logged(text):
        return ("Remote server 127.0.0.1:%d: TLS: Received invalid SSL "
                "certificate: unable to get local issuer certificate" % port
                in text)
    text = d.wait_log(logged)
    expect(logged(text), "%s: the proxy logs the server and the "
           "certificate failure:\n%s" % (what, text))


def test_starttls_verified():
    remote = state["remote"]
    d, mailbox = _home("starttls", "starttls", pki["ca"], remote.port)
    _expect_proxied_over_tls(d, mailbox, "STARTTLS")


def test_imaps_verified():
    d, mailbox = _home("imaps", "imaps", pki["ca"], state["imaps_port"])
    _expect_proxied_over_tls(d, mailbox, "imaps")


def test_starttls_untrusted_certificate_refused():
    remote = state["remote"]
    d, mailbox = _home("badca", "starttls", pki["other_ca"], remote.port)
    _expect_refused(d, mailbox, remote.port, "STARTTLS, wrong CA")


def test_imaps_untrusted_certificate_refused():
    port = state["imaps_port"]
    d, mailbox = _home("badcaimaps", "imaps", pki["other_ca"], port)
    _expect_refused(d, mailbox, port, "imaps, wrong CA")


def test_imapc_connection_over_tls():
    """APPEND goes through the proxy's imapc storage, whose connection
    uses TLS too."""
    remote = state["remote"]
    d, mailbox = _home("appendtls", "starttls", pki["ca"], remote.port)
    before = _tls_logins()
    c = login(d, "APPEND over STARTTLS")
    r = c.append(mailbox, message("Appended over TLS", "appended body\n"))
    expect_ok(r, "APPEND through the proxy over STARTTLS")
    c.logout()
    wait_until(lambda: _tls_logins() > before)
    with ImapClient(remote.port) as rc:
        expect_ok(rc.login(USER, "secret"), "LOGIN on the remote server")
        expect_ok(rc.command("EXAMINE " + MAILBOX), "EXAMINE on the remote")
        r = rc.command('SEARCH SUBJECT "Appended over TLS"')
        expect(any(l.startswith("* SEARCH ") and len(l.split()) == 3
                   for l in r.untagged),
               "the appended message on the remote server: %r" % r.untagged)

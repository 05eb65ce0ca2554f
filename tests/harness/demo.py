# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""The demo deployment behind ./quickstart demo and ./quickstart stop.

    python3 -m harness.demo start|stop|status      (with tests/ on sys.path)

  slapd   ldap://127.0.0.1:3890, dc=example,dc=com, cn=admin / secret,
          schema loaded, ldap-schema/example.ldif loaded
  home    Dovecot on 127.0.0.1:10143
  remote  Dovecot on 127.0.0.1:10144, holding Public/Sales, Public/Projects,
          Public/Projects/2026 and Public/Archive/2025, seeded over IMAP

Both have the stats metric blocks of harness.dovecot.METRICS_CONFIG, and
run the directory service (mailbox_referrals_directory = service) from the
installed executable; slapd has the syncprov overlay, so the services
follow changes of the directory at once.

Both Dovecot instances load the installed plugin modules (make install).
Everything lives in $MAILBOX_REFERRALS_DEMO_DIR (default
/tmp/mailbox-referrals-demo) and keeps running after this script exits.
"""

import json
import os
import shutil
import sys
import urllib.parse

from . import REPO_ROOT
from .dovecot import Dovecot, INSTALLED_MODULE_DIR, INSTALLED_SERVICE
from .imap import ImapClient, message, quote
from .ports import port_is_open, wait_port_closed
from .slapd import Slapd, SUFFIX, ROOTDN, ROOTPW

DEMO_DIR = os.environ.get("MAILBOX_REFERRALS_DEMO_DIR",
                          "/tmp/mailbox-referrals-demo")
LDAP_PORT = 3890
HOME_PORT = 10143
REMOTE_PORT = 10144
USER, PASSWORD = "alice", "secret"
EXAMPLE_LDIF = os.path.join(REPO_ROOT, "ldap-schema", "example.ldif")
STATE_FILE = os.path.join(DEMO_DIR, "demo.json")

SEEDS = [
    ("Public/Sales", "Welcome to Sales",
     "Hello Alice,\n\nthis message lives on the remote server "
     "(127.0.0.1:10144).\nYour home server (127.0.0.1:10143) sent you here "
     "with an RFC 2193 referral.\n"),
    ("Public/Projects", "Projects overview",
     "Public/Projects and everything below it live on the remote server.\n"),
    ("Public/Projects/2026", "Plans for 2026",
     "Covered by the Public/Projects entry (imapReferralScope: subtree).\n"),
    ("Public/Archive/2025", "Archive 2025",
     "Known at home as \"Public/Archive 2025\" (imapReferralRemoteName).\n"),
]


def _settings(self_address):
    return {
        "mailbox_referrals_namespaces": "Public/",
        "mailbox_referrals_self": self_address,
        "mailbox_referrals_ldap_uris": "ldap://127.0.0.1:%d" % LDAP_PORT,
        "mailbox_referrals_ldap_dn": ROOTDN,
        "mailbox_referrals_ldap_dnpass": ROOTPW,
        "mailbox_referrals_ldap_base": "ou=referrals," + SUFFIX,
        "mailbox_referrals_ldap_scope": "subtree",
        "mailbox_referrals_ldap_timeout": "3s",
        "mailbox_referrals_cache_ttl": "60s",
        # the imap processes ask the service, the only one to speak LDAP
        "mailbox_referrals_directory": "service",
    }


# As the README advises: every user of the demo has referrals enabled, so
# the login process may advertise the capability before login too (the
# greeting of the printed session shows it).
CAPABILITY_CONFIG = """\
protocol imap {
  imap_capability = +MAILBOX-REFERRALS
}
"""


def _servers():
    ldap = Slapd(workdir=os.path.join(DEMO_DIR, "ldap"), port=LDAP_PORT,
                 config_format="cnconfig", syncprov=True, detached=True)
    home = Dovecot("home", workdir=os.path.join(DEMO_DIR, "home"),
                   port=HOME_PORT, mail_plugin_dir=INSTALLED_MODULE_DIR,
                   plugin_settings=_settings("127.0.0.1:%d" % HOME_PORT),
                   metrics=True, extra_config=CAPABILITY_CONFIG,
                   directory_service=True,
                   service_executable=INSTALLED_SERVICE, detached=True)
    remote = Dovecot("remote", workdir=os.path.join(DEMO_DIR, "remote"),
                     port=REMOTE_PORT, mail_plugin_dir=INSTALLED_MODULE_DIR,
                     plugin_settings=_settings("127.0.0.1:%d" % REMOTE_PORT),
                     metrics=True, extra_config=CAPABILITY_CONFIG,
                     directory_service=True,
                     service_executable=INSTALLED_SERVICE, detached=True)
    return ldap, home, remote


def running():
    """True when all three demo servers are up."""
    if not os.path.exists(STATE_FILE):
        return False
    ldap, home, remote = _servers()
    return (ldap.running() and home.running() and remote.running() and
            all(port_is_open(p) for p in (LDAP_PORT, HOME_PORT, REMOTE_PORT)))


def stop(quiet=False):
    ldap, home, remote = _servers()
    stopped = []
    for name, server in (("home", home), ("remote", remote), ("slapd", ldap)):
        if os.path.isdir(server.workdir) and server.running():
            server.stop()
            stopped.append(name)
    try:
        os.unlink(STATE_FILE)
    except OSError:
        pass
    if not quiet:
        print("Stopped: %s." % ", ".join(stopped) if stopped
              else "The demo is not running.")


def _seed(remote):
    with ImapClient(remote.port) as c:
        r = c.login(USER, PASSWORD)
        if r.status != "OK":
            raise RuntimeError("LOGIN on the remote server: " + r.tagged)
        for mailbox, subject, body in SEEDS:
            r = c.command("CREATE " + quote(mailbox))
            if r.status != "OK":
                raise RuntimeError("CREATE %s on the remote server: %s"
                                   % (mailbox, r.tagged))
            r = c.append(mailbox, message(subject, body))
            if r.status != "OK":
                raise RuntimeError("APPEND %s on the remote server: %s"
                                   % (mailbox, r.tagged))
        c.logout()


def start():
    if running():
        print("The demo is already running (state in %s)." % DEMO_DIR)
        print()
        show()
        return 0
    # Half-started or stale: clean up what is ours, then start afresh.
    stop(quiet=True)
    for port in (LDAP_PORT, HOME_PORT, REMOTE_PORT):
        if not wait_port_closed(port, timeout=10):
            print("Port 127.0.0.1:%d is in use by something else; the demo "
                  "needs ports %d, %d and %d." % (port, LDAP_PORT, HOME_PORT,
                                                  REMOTE_PORT),
                  file=sys.stderr)
            return 1
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    os.makedirs(DEMO_DIR)
    os.chmod(DEMO_DIR, 0o755)
    ldap, home, remote = _servers()
    try:
        ldap.start()
        with open(EXAMPLE_LDIF) as f:
            ldap.ldapadd(f.read())
        home.start()
        remote.start()
        # the services load the directory once started: wait for both
        home.wait_service_synced()
        remote.wait_service_synced()
        _seed(remote)
    except Exception:
        for server in (home, remote, ldap):
            server.stop()
        raise
    with open(STATE_FILE, "w") as f:
        json.dump({"ldap": ldap.url, "home": home.address,
                   "remote": remote.address, "dir": DEMO_DIR}, f, indent=2)
    print("Demo started (state in %s)." % DEMO_DIR)
    print()
    show()
    return 0


def transcript():
    """A real session: the referral at home, then following it."""
    lines = []
    with ImapClient(HOME_PORT, transcript=lines) as c:
        c.command("LOGIN %s %s" % (USER, PASSWORD))
        r = c.command("SELECT Public/Sales")
        c.command('SELECT "Public/Archive 2025"')
        c.command('LIST "" "Public/*"')
        c.command('RLIST "" "Public/*"')
        c.logout()
    out = ["--- IMAP session with the home server, 127.0.0.1:%d ---" % HOME_PORT]
    out += lines
    if "[REFERRAL " not in r.tagged:
        out.append("(no referral came back: see %s/home/dovecot.log)"
                   % DEMO_DIR)
        return out
    url = r.tagged.split("[REFERRAL ", 1)[1].split("]", 1)[0].split(" ")[0]
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname, parsed.port or 143
    mailbox = urllib.parse.unquote(parsed.path[1:])
    out.append("")
    out.append("--- following %s: IMAP session with %s:%d ---"
               % (url, host, port))
    lines = []
    with ImapClient(port, host=host, transcript=lines) as c:
        c.command("LOGIN %s %s" % (USER, PASSWORD))
        c.command("SELECT " + quote(mailbox))
        c.command("FETCH 1 BODY[]")
        c.logout()
    for line in lines:
        # show a literal's lines one by one, as a terminal would
        out.extend(line.split("\r\n"))
    return out


def show():
    try:
        session = transcript()
    except Exception as e:
        session = ["(could not run the example session: %s)" % e]
    print("\n".join(session))
    print("""
The demo deployment:
  LDAP    ldap://127.0.0.1:{ldap}  base {suffix}
          bind {rootdn} / {rootpw}
          referral entries under ou=referrals,{suffix}
  home    IMAP 127.0.0.1:{home}   (users alice and bob, password secret)
  remote  IMAP 127.0.0.1:{remote}
  Both ask their directory service (mailbox_referrals_directory = service),
  which follows slapd's changes (syncprov): an ldapmodify of an entry is
  seen by the next command of a running session.

Try it yourself:
  telnet 127.0.0.1 {home}
    a1 LOGIN alice secret
    a2 SELECT Public/Sales
    a3 SELECT Public/Projects/2026
    a4 RLIST "" "*"
    a5 LIST (REMOTE) "" "*"
    a6 LOGOUT
  or point any IMAP client at 127.0.0.1 port {home} (no TLS), user alice,
  password secret, and open a folder under Public/.
  ldapsearch -x -H ldap://127.0.0.1:{ldap} -b ou=referrals,{suffix}

Stats: doveadm -c {dir}/home/dovecot.conf stats dump
Logs:  {dir}/home/dovecot.log  {dir}/remote/dovecot.log  {dir}/ldap/slapd.log
Stop:  ./quickstart stop""".format(ldap=LDAP_PORT, suffix=SUFFIX, rootdn=ROOTDN,
                                  rootpw=ROOTPW, home=HOME_PORT,
                                  remote=REMOTE_PORT, dir=DEMO_DIR))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else "start"
    if cmd == "start":
        return start()
    if cmd == "stop":
        stop()
        return 0
    if cmd == "status":
        if running():
            show()
            return 0
        print("The demo is not running.")
        return 1
    print("usage: python3 -m harness.demo start|stop|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

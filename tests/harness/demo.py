# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""The demo deployment behind ./quickstart demo and ./quickstart stop.

    python3 -m harness.demo start|stop|status      (with tests/ on sys.path)

  slapd   ldap://127.0.0.1:3890, dc=example,dc=com, cn=admin / secret,
          schema loaded, ldap-schema/example.ldif loaded
  home    Dovecot on 127.0.0.1:10143
  remote  Dovecot on 127.0.0.1:10144, holding Public/Sales, Public/Projects,
          Public/Projects/2026 and Public/Archive/2025, seeded over IMAP

Both Dovecot servers run the same configuration (only
mailbox_referrals_self differs): the stats metric blocks of
harness.dovecot.METRICS_CONFIG, the directory service
(mailbox_referrals_directory = service) from the installed executable,
and the proxy for sessions that do not follow referrals
(mailbox_referrals_proxy = unaware) with the master user mbref-proxy,
which both servers' master passdb (PROXY_MASTERS) accepts; its password
is generated at start (PROXY_PASSWORD_CONF). slapd has the
syncprov overlay, so the services follow changes of the directory at once.

The started demo runs a session of each kind and checks it: a client that
does not follow referrals reads the remote Public/Sales through the home
server, one that sent RLIST is referred and reads it on the remote server.
start returns 1 when either did not happen.

Both Dovecot instances load the installed plugin modules (make install).
Everything lives in $MAILBOX_REFERRALS_DEMO_DIR (default
/tmp/mailbox-referrals-demo) and keeps running after this script exits.
"""

import base64
import grp
import hashlib
import json
import os
import re
import secrets
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

# The proxy's master user (mailbox_referrals_proxy_master_user). Its
# password is generated anew at every start, never a fixed one that a
# copied demo configuration would carry into production. Both servers
# include PROXY_PASSWORD_CONF (mailbox_referrals_proxy_password, readable
# by root only, as README advises for the secret) and check logins against
# PROXY_MASTERS, which holds only its salted hash.
PROXY_MASTER_USER = "mbref-proxy"
PROXY_MASTERS = os.path.join(DEMO_DIR, "proxy-masters")
PROXY_PASSWORD_CONF = os.path.join(DEMO_DIR, "proxy-password.conf")

SALES_TEXT = "this message lives on the remote server"
SEEDS = [
    ("Public/Sales", "Welcome to Sales",
     "Hello Alice,\n\n" + SALES_TEXT + " (127.0.0.1:10144).\n"
     "A client that follows RFC 2193 referrals was sent there by your home\n"
     "server (127.0.0.1:10143); any other client reads it through the home\n"
     "server.\n"),
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
        # sessions that have not sent RLIST, RLSUB or LIST (REMOTE) get
        # remote mailboxes through this server; the others get referrals
        "mailbox_referrals_proxy": "unaware",
        # (its password: PROXY_PASSWORD_CONF)
        "mailbox_referrals_proxy_master_user": PROXY_MASTER_USER,
        # a session through the proxy gets the user's ACL rights, not the
        # master user's; inert here (the demo loads no acl plugin), set as
        # README's remote-server configuration has it
        "acl_user": "%u",
    }


# As the README advises: every user of the demo has referrals enabled, so
# the login process may advertise the capability before login too (the
# greeting of the printed session shows it).
CAPABILITY_CONFIG = """\
protocol imap {
  imap_capability = +MAILBOX-REFERRALS
}
"""

# The other server's proxy logs in as the user, authenticated as the
# master user (SASL PLAIN with the user as authorization identity). pass =
# yes: the user must also pass the ordinary passdb (exist, not be
# disabled), as in a login of their own. The separator lets an
# administrator try the master login by hand: LOGIN alice*mbref-proxy ...
PROXY_CONFIG = """\
passdb {
  driver = passwd-file
  master = yes
  pass = yes
  args = scheme=SSHA512 username_format=%%u %s
}
auth_master_user_separator = *
!include %s
""" % (PROXY_MASTERS, PROXY_PASSWORD_CONF)


def _write_proxy_secret(password):
    """PROXY_PASSWORD_CONF with password, for root only (Dovecot's config
    process reads it), and PROXY_MASTERS with PROXY_MASTER_USER and the
    salted SHA-512 hash of password, for root and the auth processes'
    group. {SSHA512} (base64 of the digest of password + salt, then the
    salt) is made here, so that the password never appears on a command
    line as with doveadm pw -p; one round suffices for a random 144-bit
    password."""
    fd = os.open(PROXY_PASSWORD_CONF, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# Generated by ./quickstart demo at every start.\n"
                "plugin {\n  mailbox_referrals_proxy_password = %s\n}\n"
                % password)
    salt = secrets.token_bytes(16)
    digest = hashlib.sha512(password.encode() + salt).digest()
    with open(PROXY_MASTERS, "w") as f:
        f.write("%s:{SSHA512}%s\n" % (
            PROXY_MASTER_USER, base64.b64encode(digest + salt).decode()))
    os.chown(PROXY_MASTERS, 0, grp.getgrnam("dovecot").gr_gid)
    os.chmod(PROXY_MASTERS, 0o640)


def _servers():
    ldap = Slapd(workdir=os.path.join(DEMO_DIR, "ldap"), port=LDAP_PORT,
                 config_format="cnconfig", syncprov=True, detached=True)
    home = Dovecot("home", workdir=os.path.join(DEMO_DIR, "home"),
                   port=HOME_PORT, mail_plugin_dir=INSTALLED_MODULE_DIR,
                   plugin_settings=_settings("127.0.0.1:%d" % HOME_PORT),
                   metrics=True, extra_config=CAPABILITY_CONFIG + PROXY_CONFIG,
                   directory_service=True,
                   service_executable=INSTALLED_SERVICE, detached=True)
    remote = Dovecot("remote", workdir=os.path.join(DEMO_DIR, "remote"),
                     port=REMOTE_PORT, mail_plugin_dir=INSTALLED_MODULE_DIR,
                     plugin_settings=_settings("127.0.0.1:%d" % REMOTE_PORT),
                     metrics=True,
                     extra_config=CAPABILITY_CONFIG + PROXY_CONFIG,
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
        return 0 if show() else 1
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
    _write_proxy_secret(secrets.token_urlsafe(24))
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
    return 0 if show() else 1


def _session(port, commands, out, host="127.0.0.1"):
    """Run commands (after LOGIN) on host:port; append the exchange to out,
    a literal's lines one by one as a terminal would show them. Returns
    the Responses of commands."""
    lines = []
    responses = []
    with ImapClient(port, host=host, transcript=lines) as c:
        c.command("LOGIN %s %s" % (USER, PASSWORD))
        for command in commands:
            responses.append(c.command(command))
        c.logout()
    for line in lines:
        out.extend(line.split("\r\n"))
    return responses


def _listed_without_remote(response, mailbox):
    """True when a LIST response has mailbox, without \\Remote."""
    for line in response.untagged:
        m = re.match(r'\* LIST \(([^)]*)\) \S+ (.*)$', line)
        if m and m.group(2) in (mailbox, quote(mailbox)):
            return "\\remote" not in m.group(1).lower()
    return False


def _fetched(response, text):
    return response.status == "OK" and \
        any(text in line for line in response.untagged)


def transcript():
    """Real sessions with the home server, one of each kind of client, and
    what they must show. Returns (lines, problems); problems is empty when
    the client that does not follow referrals read the remote Public/Sales
    through the home server and the one that does was referred and read
    it on the remote server."""
    out = []
    problems = []

    out.append("--- 1. A client that does not follow referrals (Thunderbird, "
               "Outlook, Python's")
    out.append("---    imaplib and most others) with the home server "
               "127.0.0.1:%d." % HOME_PORT)
    out.append("---    It sent no RLIST: the home server serves Public/Sales "
               "from 127.0.0.1:%d." % REMOTE_PORT)
    listed, selected, fetched = _session(
        HOME_PORT, ['LIST "" "Public/*"', "SELECT Public/Sales",
                    "FETCH 1 BODY[]"], out)
    if not _listed_without_remote(listed, "Public/Sales"):
        problems.append("plain LIST does not list Public/Sales")
    if selected.status != "OK":
        problems.append("SELECT Public/Sales did not answer OK")
    if not _fetched(fetched, SALES_TEXT):
        problems.append("FETCH did not return the remote server's message")

    out.append("")
    out.append("--- 2. A client that follows referrals with the home server "
               "127.0.0.1:%d." % HOME_PORT)
    out.append("---    It sent RLIST: the home server refers it to the "
               "mailbox's server.")
    _, referred, renamed = _session(
        HOME_PORT, ['RLIST "" "Public/*"', "SELECT Public/Sales",
                    'SELECT "Public/Archive 2025"'], out)
    prefix = "NO [REFERRAL imap://%s;AUTH=*@127.0.0.1:%d/" % (USER,
                                                               REMOTE_PORT)
    if not referred.raw_text.startswith(prefix + "Public/Sales] "):
        problems.append("SELECT Public/Sales was not referred to "
                        "127.0.0.1:%d" % REMOTE_PORT)
    if not renamed.raw_text.startswith(prefix + "Public/Archive/2025] "):
        problems.append('SELECT "Public/Archive 2025" was not referred to '
                        "Public/Archive/2025")
    if referred.raw_text.startswith(prefix):
        url = referred.raw_text.split("[REFERRAL ", 1)[1].split("]", 1)[0]
        parsed = urllib.parse.urlsplit(url)
        host, port = parsed.hostname, parsed.port or 143
        mailbox = urllib.parse.unquote(parsed.path[1:])
        out.append("")
        out.append("--- 3. It follows %s" % url)
        out.append("---    to %s:%d." % (host, port))
        _, fetched = _session(port, ["SELECT " + quote(mailbox),
                                     "FETCH 1 BODY[]"], out, host=host)
        if not _fetched(fetched, SALES_TEXT):
            problems.append("FETCH on the remote server did not return the "
                            "message")
    return out, problems


def show():
    """Print the sessions of transcript() and how to use the demo. Returns
    False when the sessions did not show what they should."""
    try:
        session, problems = transcript()
    except Exception as e:
        session = ["(could not run the example sessions: %s)" % e]
        problems = [str(e)]
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
  Both serve remote mailboxes through themselves to sessions that have not
  sent RLIST, RLSUB or LIST (REMOTE) (mailbox_referrals_proxy = unaware),
  logging in to the other server as the user, authenticated as the master
  user {master}, whose password is generated at every start:
    password  {secret} (both servers include it)
    its hash  {masters} (both servers' master passdb)

Try it yourself:
  telnet 127.0.0.1 {home}
    a1 LOGIN alice secret
    a2 SELECT Public/Sales                 served through the home server
    a3 FETCH 1 BODY[TEXT]
    a4 RLIST "" "*"                        this session follows referrals now
    a5 SELECT Public/Projects/2026         NO [REFERRAL ...]
    a6 LIST (REMOTE) "" "*"
    a7 LOGOUT
  python3 -c 'import imaplib; m = imaplib.IMAP4("127.0.0.1", {home}); \\
    m.login("alice", "secret"); m.select("Public/Sales"); \\
    print(m.fetch("1", "(BODY[TEXT])")[1][0][1].decode())'
  or point any IMAP client at 127.0.0.1 port {home} (no TLS), user alice,
  password secret, and open a folder under Public/.
  ldapsearch -x -H ldap://127.0.0.1:{ldap} -b ou=referrals,{suffix}

Stats: doveadm -c {dir}/home/dovecot.conf stats dump
Logs:  {dir}/home/dovecot.log  {dir}/remote/dovecot.log  {dir}/ldap/slapd.log
Stop:  ./quickstart stop""".format(ldap=LDAP_PORT, suffix=SUFFIX, rootdn=ROOTDN,
                                  rootpw=ROOTPW, home=HOME_PORT,
                                  remote=REMOTE_PORT, dir=DEMO_DIR,
                                  master=PROXY_MASTER_USER,
                                  masters=PROXY_MASTERS,
                                  secret=PROXY_PASSWORD_CONF))
    if problems:
        print("\nThe demo's sessions did not show what they should:",
              file=sys.stderr)
        for problem in problems:
            print("  - " + problem, file=sys.stderr)
        print("See %s/home/dovecot.log and %s/remote/dovecot.log."
              % (DEMO_DIR, DEMO_DIR), file=sys.stderr)
    return not problems


def main(argv):
    cmd = argv[1] if len(argv) > 1 else "start"
    if cmd == "start":
        return start()
    if cmd == "stop":
        stop()
        return 0
    if cmd == "status":
        if running():
            return 0 if show() else 1
        print("The demo is not running.")
        return 1
    print("usage: python3 -m harness.demo start|stop|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""Shared deployment and helpers for the integration tests.

The main deployment (started once per run, on first use):

  slapd   cn=config form, our schema from ldap-schema/mailbox-referrals.ldif,
          ou=referrals,dc=example,dc=com with the entries of ENTRIES
  A       home server,  mailbox_referrals_self = 127.0.0.1:<A>
  B       remote server, mailbox_referrals_self = imap-b.example.test:<B>
          (it must also know itself as 127.0.0.1:<B>, the address the
          client connected to)
  C       third server, empty mailbox_referrals_self

B and C hold the mailboxes their entries point at, seeded over IMAP.
"""

import itertools
import os
import re
import threading
import time

from harness import REPO_ROOT, ldif
from harness.dovecot import (Dovecot, BUILD_MODULE_DIR, PROXY_MASTER_USER,
                             PROXY_MASTER_PASSWORD)
from harness.imap import ImapClient, Literal, message, quote
from harness.ports import free_port
from harness.slapd import Slapd, SUFFIX, ROOTDN, ROOTPW

REFERRALS_BASE = "ou=referrals," + SUFFIX
PLUGIN_MODULE = os.path.join(BUILD_MODULE_DIR,
                             "lib20_mailbox_referrals_plugin.so")
IMAP_PLUGIN_MODULE = os.path.join(BUILD_MODULE_DIR,
                                  "lib21_imap_mailbox_referrals_plugin.so")
# what the two modules above load when a session first needs them
CORE_MODULES = tuple(os.path.join(BUILD_MODULE_DIR, name) for name in (
    "lib20_mailbox_referrals_core_plugin.so",
    "lib21_imap_mailbox_referrals_core_plugin.so"))

USER = "alice"
PASSWORD = "secret"
CAROL = "carol@example.com"


# ------------------------------------------------------------ assertions
class Failure(AssertionError):
    pass


def expect(cond, message):
    if not cond:
        raise Failure(message)


def expect_eq(got, want, what="value"):
    if got != want:
        raise Failure("%s:\n  expected: %r\n  got:      %r" % (what, want, got))


def expect_ok(resp, what):
    expect(resp.status == "OK", "%s: expected a tagged OK, got %r (untagged %r)"
           % (what, resp.tagged, resp.untagged[-5:]))


def expect_tagged(resp, want, what):
    """The tagged line without its tag (and without Dovecot's timing
    statistics) must equal want."""
    if resp.text != want and resp.text.lower() == want.lower():
        raise Failure("%s: tagged response differs only in letter case "
                      "(RFC 3986 2.1: percent-encodings should use uppercase "
                      "hex digits):\n  expected: %r\n  got:      %r"
                      % (what, want, resp.text))
    expect_eq(resp.text, want, "%s: tagged response" % what)


def expect_usable(client, what="session"):
    """NOOP must answer a tagged OK, with only untagged lines before it."""
    r = client.command("NOOP")
    expect_ok(r, "%s: NOOP afterwards" % what)
    for line in r.untagged:
        expect(line.startswith("* "),
               "%s: unexpected line before NOOP's answer: %r" % (what, line))
    return r


# ------------------------------------------------------------- encoding
_URL_PATH_SAFE = set(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    "-._~!$&'()*+,=:@/")
_URL_USER_SAFE = set(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    "-._~!$&'()*+,=")


def _pct(text, safe):
    out = []
    for b in text.encode("utf-8"):
        ch = chr(b)
        out.append(ch if b < 128 and ch in safe else "%%%02X" % b)
    return "".join(out)


def url_path(mailbox):
    """RFC 5092 enc-mailbox of a UTF-8 mailbox name (bchar kept)."""
    return _pct(mailbox, _URL_PATH_SAFE)


def url_user(user):
    """RFC 5092 enc-user ('@' and ';' and ':' percent-encoded)."""
    return _pct(user, _URL_USER_SAFE)


def host_port(host, port):
    """HOST[:PORT] as the referral shows it: port 143 is left out."""
    return host if port == 143 else "%s:%d" % (host, port)


def referral_url(server, mailbox, user=USER):
    """server: (host, port)."""
    return "imap://%s;AUTH=*@%s/%s" % (url_user(user), host_port(*server),
                                       url_path(mailbox))


def referral_response(servers, mailbox, user=USER):
    """The expected tagged text (without tag) of a referral, servers in
    preference order."""
    return "NO [REFERRAL %s] Remote mailbox on %s" % (
        " ".join(referral_url(s, mailbox, user) for s in servers),
        ", ".join(host_port(*s) for s in servers))


# ------------------------------------------------------------ deployment
def plugin_settings(ldap, self_value, namespaces="Public/", **extra):
    """The plugin { } settings of a server on ldap (a Slapd, or an LDAP
    URI as a string)."""
    settings = {
        "mailbox_referrals_namespaces": namespaces,
        "mailbox_referrals_self": self_value,
        "mailbox_referrals_ldap_uris": ldap if isinstance(ldap, str)
        else ldap.url,
        "mailbox_referrals_ldap_dn": ROOTDN,
        "mailbox_referrals_ldap_dnpass": ROOTPW,
        "mailbox_referrals_ldap_base": REFERRALS_BASE,
        "mailbox_referrals_ldap_scope": "subtree",
        "mailbox_referrals_ldap_timeout": "3s",
        "mailbox_referrals_cache_ttl": "60s",
        # the in-process backend (its module); tests of the directory
        # service override this
        "mailbox_referrals_directory": "ldap",
    }
    settings.update(extra)
    return settings


def proxy_settings(policy="unaware", master_user=PROXY_MASTER_USER,
                   password=PROXY_MASTER_PASSWORD, timeout="10s", **extra):
    """The plugin { } settings of issue 7's proxy (README, "Proxying for
    referral-unaware clients"), to add to plugin_settings(): the policy,
    the master user the home server logs in with on the remote servers
    and its password, and the connect and command timeout. A remote server
    needs the same master user (Dovecot(master_users=...)), and the same
    mailbox_referrals_proxy_master_user, so that it never proxies or
    refers further a session that a proxy opened on it."""
    settings = {
        "mailbox_referrals_proxy": policy,
        "mailbox_referrals_proxy_master_user": master_user,
        "mailbox_referrals_proxy_password": password,
        "mailbox_referrals_proxy_timeout": timeout,
    }
    settings.update(extra)
    return settings


def check_plugin_built():
    missing = [p for p in (PLUGIN_MODULE, IMAP_PLUGIN_MODULE) + CORE_MODULES
               if not os.path.exists(p)]
    if missing:
        raise Failure("plugin not built (missing %s); run ./quickstart build"
                      % ", ".join(missing))


def referral_entry(rdn, mailbox, servers, remote_name=None, scope=None,
                   extra=()):
    """LDIF of one imapMailboxReferral entry under ou=referrals.
    rdn: "cn=..." (cn value added to the entry) or None for
    imapReferralMailbox=<mailbox> (escaped as a DN value)."""
    attrs = [("objectClass", "imapMailboxReferral"),
             ("imapReferralMailbox", mailbox),
             ("imapReferralServer", list(servers))]
    if rdn is None:
        dn = "imapReferralMailbox=%s,%s" % (ldif.escape_dn_value(mailbox),
                                            REFERRALS_BASE)
    else:
        dn = "%s,%s" % (rdn, REFERRALS_BASE)
        attrs.append(("cn", rdn.split("=", 1)[1]))
    if remote_name is not None:
        attrs.append(("imapReferralRemoteName", remote_name))
    if scope is not None:
        attrs.append(("imapReferralScope", scope))
    attrs.extend(extra)
    return dn, ldif.entry(dn, attrs)


def ou_referrals_ldif():
    return ldif.entry(REFERRALS_BASE, [("objectClass", "organizationalUnit"),
                                       ("ou", "referrals")])


# Injection attempt carried by an imapReferralRemoteName.
BADNAME_REMOTE = "Archive/Evil\r\n* BYE injected\r\nX"
STAR_NAME = "Public/star*(x)\\y"


class MainEnv:
    """slapd + A + B + C, as described in the module docstring."""

    def __init__(self):
        check_plugin_built()
        self.ldap = Slapd(config_format="cnconfig")
        self.port_a, self.port_b, self.port_c = (free_port(), free_port(),
                                                 free_port())
        self.a = self.b = self.c = None
        self.dns = {}
        self.seed_errors = {}

    # servers as (host, port)
    @property
    def B(self):
        return ("127.0.0.1", self.port_b)

    @property
    def C(self):
        return ("127.0.0.1", self.port_c)

    @property
    def B_NAMED(self):
        return ("imap-b.example.test", self.port_b)

    def entries(self):
        b = "10 127.0.0.1:%d" % self.port_b
        c = "10 127.0.0.1:%d" % self.port_c
        return [
            ("sales", None, "Public/Sales", [b], {}),
            ("named", None, "Public/Named",
             ["10 imap-b.example.test:%d" % self.port_b], {}),
            ("replica", None, "Public/Replica",
             ["20 127.0.0.1:%d" % self.port_b, c], {}),
            ("salesteam", "cn=sales-team", "Public/Sales Team", [b], {}),
            ("percent", "cn=percent", "Public/100%", [b], {}),
            ("cafe", "cn=cafe", "Public/Caf\u00e9", [b], {}),
            ("old", "cn=old", "Public/Old", [b],
             {"remote_name": "Archive/Old"}),
            ("star", "cn=star", STAR_NAME, [b], {}),
            ("mixed", "cn=mixed", "Public/Mixed",
             ["abc", "10 127.0.0.1:99999", "10 bad host", "x 127.0.0.1:1", b],
             {}),
            ("broken", "cn=broken", "Public/Broken", ["abc", "10 [::1"], {}),
            ("badname", "cn=badname", "Public/BadName", [b],
             {"remote_name": BADNAME_REMOTE}),
            ("port143", "cn=port143", "Public/Port143",
             ["10 imap-143.example.test"], {}),
            ("onlyc", "cn=onlyc", "Public/OnlyC", [c], {}),
            ("tree", "cn=tree", "Public/Tree", [b], {"scope": "subtree"}),
            ("probe", "cn=count-probe", "Public/CountProbe", [b], {}),
        ]

    def start(self):
        self.ldap.start()
        self.ldap.ldapadd(ou_referrals_ldif())
        for key, rdn, mailbox, servers, opts in self.entries():
            dn, text = referral_entry(rdn, mailbox, servers, **opts)
            self.dns[key] = dn
            self.ldap.ldapadd(text)
        self.a = Dovecot("a", port=self.port_a, plugin_settings=plugin_settings(
            self.ldap, "127.0.0.1:%d" % self.port_a),
            extra_users={CAROL: PASSWORD})
        self.b = Dovecot("b", port=self.port_b, plugin_settings=plugin_settings(
            self.ldap, "imap-b.example.test:%d" % self.port_b))
        self.c = Dovecot("c", port=self.port_c, plugin_settings=plugin_settings(
            self.ldap, ""))
        for d in (self.a, self.b, self.c):
            d.start()
        self.seed()
        return self

    # What B and C hold; each message's body names the server and mailbox.
    SEEDS = {
        "b": ["Public/Sales", "Public/Named", "Public/Replica"],
        "c": ["Public/Replica", "Public/OnlyC"],
    }

    @staticmethod
    def seed_body(server, mailbox):
        return "Seeded on %s in %s" % (server.upper(), mailbox)

    def seed(self):
        """Create the seeded mailboxes over IMAP as alice. Errors are kept
        in seed_errors (the tests that follow referrals report them)."""
        for key, mailboxes in self.SEEDS.items():
            server = getattr(self, key)
            with ImapClient(server.port) as c:
                r = c.login(USER, PASSWORD)
                if r.status != "OK":
                    for m in mailboxes:
                        self.seed_errors[(key, m)] = "LOGIN: " + r.tagged
                    continue
                for m in mailboxes:
                    r = c.command("CREATE " + quote(m))
                    if r.status != "OK":
                        self.seed_errors[(key, m)] = "CREATE: " + r.tagged
                        continue
                    r = c.append(m, message("Welcome " + m,
                                            self.seed_body(key, m)))
                    if r.status != "OK":
                        self.seed_errors[(key, m)] = "APPEND: " + r.tagged

    def stop(self):
        for d in (self.a, self.b, self.c):
            if d is not None:
                d.cleanup()
        self.ldap.cleanup()

    def client(self, server="a", user=USER, login=True):
        d = getattr(self, server)
        c = ImapClient(d.port)
        if login:
            r = c.login(user, PASSWORD)
            expect_ok(r, "LOGIN %s on %s" % (user, server.upper()))
        return c


# ------------------------------------------- servers of a module's own
def own_directory(mailboxes=(), servers=(), **slapd_args):
    """A started slapd of a module's own (cn=config form unless
    config_format is given) with ou=referrals and one mailbox-scoped entry
    per mailbox, each naming servers ("PREF HOST:PORT" values)."""
    check_plugin_built()
    slapd_args.setdefault("config_format", "cnconfig")
    ldap = Slapd(**slapd_args)
    ldap.start()
    ldap.ldapadd(ou_referrals_ldif())
    for mailbox in mailboxes:
        ldap.ldapadd(referral_entry(None, mailbox, list(servers))[1])
    return ldap


def own_dovecot(name, ldap, registry=None, debug=False, namespaces="Public/",
                **settings):
    """A started home server of a module's own: Dovecot "name" on a free
    port, mailbox_referrals_self naming that port, on ldap (a Slapd or an
    LDAP URI); settings override plugin_settings(). It is appended to
    registry (a list the module's teardown stops) before it starts, so
    that a failed start is cleaned up too."""
    port = free_port()
    d = Dovecot(name, port=port, debug=debug, plugin_settings=plugin_settings(
        ldap, "127.0.0.1:%d" % port, namespaces=namespaces, **settings))
    if registry is not None:
        registry.append(d)
    d.start()
    return d


def stop_servers(*servers):
    """Stop and clean up the servers given (None is skipped), Dovecot
    instances side by side (a stop takes about a second), then the
    others; every one is tried, the first error is raised at the end."""
    dovecots = [s for s in servers if isinstance(s, Dovecot)]
    others = [s for s in servers if s is not None and s not in dovecots]
    errors = []

    def cleanup(server):
        try:
            server.cleanup()
        except Exception as e:  # keep stopping the others
            errors.append(e)

    threads = [threading.Thread(target=cleanup, args=(d,)) for d in dovecots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in others:
        cleanup(s)
    if errors:
        raise errors[0]


def login(server, what=None, timeout=None, user=USER):
    """A session on server (a Dovecot, e.g. one of a module's own),
    logged in as user; LOGIN must answer OK."""
    c = ImapClient(server.port, **({"timeout": timeout} if timeout else {}))
    r = c.login(user, PASSWORD)
    if r.status != "OK":
        c.close()
        raise Failure("LOGIN on %s: %r" % (what or server.name, r.tagged))
    return c


# ---------------------------------------- changes to the shared deployment
def undo_changes(mailboxes=(), dns=()):
    """Teardown of a module that changed the shared deployment: delete the
    mailboxes it created, (server key, name) pairs ("a", "b", "c"),
    deepest first, then remove its directory entries. Every step is
    tried: what fails here must not fail the modules after it."""
    e = env()
    try:
        by_server = {}
        for key, name in mailboxes:
            by_server.setdefault(key, []).append(name)
        for key, names in sorted(by_server.items()):
            with e.client(key) as c:
                for name in sorted(names, key=len, reverse=True):
                    c.command("DELETE " + quote(name))
    finally:
        for dn in dns:
            try:
                e.ldap.ldapdelete(dn)
            except Exception:
                pass


_env = None
_env_error = None


def env():
    """The main deployment, started on first use and shared by all test
    modules; a failed start is reported by every test that needs it."""
    global _env, _env_error
    if _env_error is not None:
        raise Failure("main deployment failed to start: %s" % _env_error)
    if _env is None:
        e = MainEnv()
        try:
            e.start()
        except Exception as ex:
            _env_error = "%s: %s" % (type(ex).__name__, ex)
            e.stop()
            raise Failure("main deployment failed to start: %s" % _env_error)
        _env = e
    return _env


def shutdown():
    global _env
    if _env is not None:
        _env.stop()
        _env = None


# slapd (-d 256) writes a request's line into its log before it answers
# the request (measured: after each of 300 SELECTs on a loaded machine, the
# count of searches had already grown by one), so counts of slapd's log
# taken after a reply are complete without waiting. Dovecot's log is
# written by its log process after the reply: see log_barrier() and
# wait_sessions_ended().


def wait_until(predicate, timeout=30.0, interval=0.1):
    """predicate()'s value once it is true, or its last value when it was
    not true within timeout. It returns as soon as the condition holds:
    the timeout only bounds a failing test, and is generous because
    Dovecot's log process lags behind on a loaded machine."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


_barrier_ids = itertools.count(1)


def log_barrier(server, client, offset=0):
    """server's log text from offset on, once everything that client's
    session logged so far is in it: the session sends an ID command with a
    marker that Dovecot logs (imap_id_log), and the marker is waited for.
    The lines of one process reach the log in order, so after the marker
    nothing the session logged earlier can still be on its way: a test
    counting or excluding log lines looks at this text, not after a
    sleep."""
    marker = "mbref-barrier-%d-%d" % (os.getpid(), next(_barrier_ids))
    expect_ok(client.command('ID ("name" "%s")' % marker),
              "ID %s (log barrier)" % marker)
    text = server.wait_log(lambda t: marker in t, offset)
    expect(marker in text, "the log barrier %s never reached %s's log"
           % (marker, server.name))
    return text


_LOGIN_RE = re.compile(
    r"imap-login: Info: Login: .*\bmpid=(\d+),.*\bsession=<([^>]*)>")
_SESSION_END_RE = re.compile(
    r"imap\([^)]*\)<\d+><([^>]*)>: Info: (?:Disconnected|Logged out)")
_PROCESS_GONE_RE = re.compile(
    r"service\(imap\): child (\d+) (?:killed with signal|returned error)")


def sessions_ended(text, still_open=0):
    """True when every IMAP session that logged in within text, but
    still_open of them, has also logged its end there or its process was
    reported dead by the master."""
    gone = set(_PROCESS_GONE_RE.findall(text))
    ended = set(_SESSION_END_RE.findall(text))
    running = [sid for pid, sid in _LOGIN_RE.findall(text)
               if sid not in ended and pid not in gone]
    return len(running) <= still_open


def wait_sessions_ended(server, offset=0, still_open=0):
    """server's log text from offset on, once every session that logged
    in since offset (but the still_open sessions a module keeps) has
    logged its end or died: only then can a test say that no crash was
    logged, since a process's last lines reach the log after its client
    is gone."""
    text = server.wait_log(lambda t: sessions_ended(t, still_open), offset)
    expect(sessions_ended(text, still_open), "sessions on %s logged in and "
           "never logged their end:\n%s" % (server.name, text[-3000:]))
    return text


def log_lines(text, *needles):
    """Lines of text containing every needle (case-insensitive)."""
    out = []
    for line in text.splitlines():
        low = line.lower()
        if all(n.lower() in low for n in needles):
            out.append(line)
    return out


def crash_lines(text):
    return [l for l in text.splitlines()
            if "Fatal:" in l or "Panic:" in l or "killed with signal" in l]


def expect_no_crash(server, what, offset=0, still_open=0):
    """server's log (from offset on) has no Fatal, Panic or killed
    process, once every session since offset (but still_open) has
    ended."""
    bad = crash_lines(wait_sessions_ended(server, offset, still_open))
    expect(not bad, "%s: crashes logged on %s:\n%s"
           % (what, server.name, "\n".join(bad[:20])))


# ------------------------------------------------------- common checks
def check_reply(cmd, want, what=None, server="a", user=USER):
    """A session of its own on a server of the shared deployment: cmd must
    answer exactly want (tagged text) and leave the session usable."""
    e = env()
    with e.client(server, user=user) as c:
        r = c.command(cmd)
        expect_tagged(r, want, what or cmd)
        expect_usable(c, what or cmd)
        return r


def expect_append_refused(c, mailbox, want, flags=None, subject="Refused"):
    """APPEND to mailbox with a synchronizing literal: the server must
    answer the tagged text want instead of "+" (the message is never
    sent), and the session must go on."""
    msg = message(subject, "This literal must never be sent.")
    cmd = "APPEND %s %s" % (quote(mailbox), "(%s) " % flags if flags else "")
    what = "%s{%d}" % (cmd, len(msg))
    r = c.command(cmd, Literal(msg))
    expect(not r.continued, "%s: the server sent '+' (continuation) instead "
           "of the referral; answer was %r" % (what, r.tagged))
    expect_tagged(r, want, what)
    expect_usable(c, what)
    return r


def expect_not_referred(c, cmd, why):
    """cmd must get a plain NO, not a referral."""
    r = c.command(cmd)
    expect(r.status == "NO" and "REFERRAL" not in r.tagged,
           "%s: %s, expected a plain NO, got %r" % (cmd, why, r.tagged))
    return r


def expect_not_listed(c, pattern, words, what):
    """LIST "" pattern answers OK and none of its lines holds any of
    words (RFC 2193 section 5: remote mailboxes are not listed)."""
    r = c.command('LIST "" ' + quote(pattern))
    expect_ok(r, "%s: LIST %s" % (what, pattern))
    for line in r.untagged:
        expect(not any(w in line for w in words),
               "%s: LIST %s shows a remote mailbox: %r"
               % (what, pattern, line))
    return r

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

import os
import time

from harness import REPO_ROOT, ldif
from harness.dovecot import Dovecot, BUILD_MODULE_DIR
from harness.imap import ImapClient, Literal, message, quote
from harness.ports import free_port
from harness.slapd import Slapd, SUFFIX, ROOTDN, ROOTPW

REFERRALS_BASE = "ou=referrals," + SUFFIX
PLUGIN_MODULE = os.path.join(BUILD_MODULE_DIR,
                             "lib20_mailbox_referrals_plugin.so")
IMAP_PLUGIN_MODULE = os.path.join(BUILD_MODULE_DIR,
                                  "lib21_imap_mailbox_referrals_plugin.so")

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
    settings = {
        "mailbox_referrals_namespaces": namespaces,
        "mailbox_referrals_self": self_value,
        "mailbox_referrals_ldap_uris": ldap.url,
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


def check_plugin_built():
    missing = [p for p in (PLUGIN_MODULE, IMAP_PLUGIN_MODULE)
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


def settle(seconds=0.3):
    """Give slapd's and Dovecot's log writers a moment."""
    time.sleep(seconds)


def wait_until(predicate, timeout=5.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


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

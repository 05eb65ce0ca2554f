# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""TLS to the directory: STARTTLS (mailbox_referrals_ldap_tls) and
ldaps:// URIs, certificate verification against
mailbox_referrals_ldap_tls_ca_cert_file,
mailbox_referrals_ldap_tls_require_cert, and a directory that refuses
binds without TLS.

Own PKI, made with openssl in the first slapd's directory at setup: a CA,
a server certificate it signs (CN=localhost, SAN IP:127.0.0.1 and
DNS:localhost) and a second CA that signed nothing here. Own slapd
instances, both offering STARTTLS on ldap:// and listening on ldaps://:

  ldap    cn=config form, no TLS requirement
  secure  slapd.conf form, the database requires TLS (security tls=1)

and one Dovecot per plugin configuration, each binding with its own reader
DN so that slapd's log (-d 256) shows which connections were its own.
"""

import os
import re
import subprocess

from common import (check_plugin_built, expect, expect_tagged, expect_usable,
                    log_lines, login, ou_referrals_ldif, own_dovecot,
                    referral_entry, referral_response, stop_servers,
                    wait_until, Failure)
from harness.slapd import Slapd, SUFFIX

REMOTE = ("127.0.0.1", 10997)   # only written into URLs, never contacted
MAILBOX = "Public/Sales"
UNAVAILABLE = ("NO [UNAVAILABLE] Referral directory is unavailable, "
               "try again later")
STARTTLS_OID = "1.3.6.1.4.1.1466.20037"
READER_PW = "tls-reader-pw"

pki = {}
ldap = None
secure = None
servers = []


# ------------------------------------------------------------------ PKI
def _openssl(*args):
    r = subprocess.run(("openssl",) + args, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise Failure("openssl %s failed (%d):\n%s" % (
            " ".join(args[:2]), r.returncode,
            r.stdout.decode(errors="replace")))


_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes")


def _make_ca(directory, name):
    key = os.path.join(directory, name + ".key")
    pem = os.path.join(directory, name + ".pem")
    _openssl("req", "-x509", "-new", *_EC_KEY, "-keyout", key, "-out", pem,
             "-days", "2", "-subj", "/CN=mbref test %s" % name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return key, pem


def make_pki(directory):
    """ca.pem signs server.pem (for 127.0.0.1 and localhost);
    other-ca.pem is a CA that signed nothing here. The imap processes
    (uid 5000) must read the CA files: the directory (mkdtemp: 0700)
    becomes traversable; the keys stay 0600."""
    os.chmod(directory, 0o711)
    ca_key, ca_pem = _make_ca(directory, "ca")
    _, other_pem = _make_ca(directory, "other-ca")
    key = os.path.join(directory, "server.key")
    csr = os.path.join(directory, "server.csr")
    pem = os.path.join(directory, "server.pem")
    ext = os.path.join(directory, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-new", *_EC_KEY, "-keyout", key, "-out", csr,
             "-subj", "/CN=localhost")
    _openssl("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
             "-set_serial", "2", "-days", "2", "-out", pem, "-extfile", ext)
    return {"ca": ca_pem, "other_ca": other_pem, "cert": pem, "key": key}


# ---------------------------------------------------------------- setup
def _load(s):
    s.start()
    s.ldapadd(ou_referrals_ldif())
    s.ldapadd(referral_entry(None, MAILBOX, ["10 %s:%d" % REMOTE])[1])


def setup_module():
    global ldap, secure
    check_plugin_built()
    # relative TLS paths: in the slapd's own directory, made just below
    ldap = Slapd(config_format="cnconfig", tls_cert_file="server.pem",
                 tls_key_file="server.key", tls_ca_file="ca.pem", ldaps=True)
    pki.update(make_pki(ldap.workdir))
    _load(ldap)
    secure = Slapd(config_format="slapdconf", tls_cert_file=pki["cert"],
                   tls_key_file=pki["key"], tls_ca_file=pki["ca"], ldaps=True,
                   extra_db_config=["security tls=1"], client_starttls=True)
    _load(secure)


def teardown_module():
    # ldap's directory holds the PKI: it goes last
    stop_servers(*servers + [secure, ldap])


def _reader(directory, name):
    """A reader account of its own, so that slapd's log tells this
    Dovecot's connections apart."""
    dn = "cn=%s,%s" % (name, SUFFIX)
    directory.add_reader(dn, READER_PW)
    return dn


def _server(name, directory, uris, **tls):
    dn = _reader(directory, "reader-" + name)
    tls.update(mailbox_referrals_ldap_uris=uris,
               mailbox_referrals_ldap_dn=dn,
               mailbox_referrals_ldap_dnpass=READER_PW)
    d = own_dovecot("tls-" + name, directory, registry=servers, **tls)
    d.reader_dn = dn
    return d


def _expect_referral(d, what):
    with login(d) as c:
        expect_tagged(c.command("SELECT " + MAILBOX),
                      referral_response([REMOTE], MAILBOX),
                      "%s: SELECT %s" % (what, MAILBOX))
        expect_usable(c, what)


def _expect_unavailable(d, what):
    """SELECT gets NO [UNAVAILABLE], the session stays usable; returns the
    plugin's error line(s) from the Dovecot log."""
    offset = d.log_size()
    with login(d) as c:
        expect_tagged(c.command("SELECT " + MAILBOX), UNAVAILABLE,
                      "%s: SELECT %s" % (what, MAILBOX))
        expect_usable(c, what)
        # and it keeps answering (no crash, no stale state)
        expect_tagged(c.command("SELECT " + MAILBOX), UNAVAILABLE,
                      "%s: SELECT %s again" % (what, MAILBOX))
    text = d.wait_log(lambda t: "referrals unavailable" in t, offset)
    errors = log_lines(text, "Error:", "referrals unavailable")
    expect(errors, "%s: no error line about the failure in the Dovecot "
           "log:\n%s" % (what, text[-2000:]))
    crashes = log_lines(text, "Panic:") + log_lines(text, "Fatal:")
    expect(not crashes, "%s: %s" % (what, crashes))
    return errors


# ------------------------------------------------------ slapd's log
_CONN_RE = re.compile(r"\bconn=(\d+) ")


def _connections(directory):
    """{conn id: [its log lines from 'conn=' on]} of slapd's log."""
    conns = {}
    for line in directory.log_text().splitlines():
        m = _CONN_RE.search(line)
        if m:
            conns.setdefault(m.group(1), []).append(line[m.start():])
    return conns


def _bind_connections(directory, dn):
    """The connections on which dn sent a BIND, as {id: lines}."""
    needle = ('BIND dn="%s" method=' % dn).lower()
    return {cid: lines for cid, lines in _connections(directory).items()
            if any(needle in l.lower() for l in lines)}


def _index(lines, *needles):
    for i, line in enumerate(lines):
        if all(n in line for n in needles):
            return i
    return None


def _expect_tls_binds(directory, dn, port, starttls, what):
    """Every connection bound as dn was accepted on port, had TLS
    established before the BIND (after a successful STARTTLS extended
    operation when starttls, without one otherwise), and slapd saw the
    bind with a security strength factor > 0."""
    def complete():
        # slapd may still be writing a connection's last lines
        conns = _bind_connections(directory, dn)
        done = conns and all(_index(lines, "SRCH base=") is not None
                             for lines in conns.values())
        return conns if done else None
    conns = wait_until(complete) or _bind_connections(directory, dn)
    expect(conns, "%s: slapd's log has no BIND as %s:\n%s"
           % (what, dn, directory.log_tail(40)))
    for cid, lines in sorted(conns.items()):
        show = "%s: connection %s in slapd's log:\n  %s" % (
            what, cid, "\n  ".join(lines))
        expect(_index(lines, "ACCEPT from", "(IP=127.0.0.1:%d)" % port)
               is not None, "not accepted on port %d; %s" % (port, show))
        tls = _index(lines, "TLS established")
        bind = _index(lines, 'mech=SIMPLE')
        expect(tls is not None and bind is not None and tls < bind,
               "TLS not established before the bind; " + show)
        m = re.search(r"\bssf=(\d+)", lines[bind])
        expect(m and int(m.group(1)) > 0,
               "the bind has no security strength factor; " + show)
        ext = _index(lines, "EXT oid=" + STARTTLS_OID)
        if starttls:
            expect(ext is not None and ext < tls,
                   "no STARTTLS extended operation before TLS; " + show)
            op = lines[ext].split()[1]   # op=N
            expect(_index(lines, op + " RESULT", "err=0") is not None,
                   "STARTTLS did not succeed; " + show)
        else:
            expect(ext is None, "STARTTLS on an ldaps connection; " + show)
        expect(_index(lines, "SRCH base=") is not None,
               "no search after the bind; " + show)


def _expect_no_bind(directory, dn, what):
    """dn never bound: the plugin did not fall back to clear text."""
    conns = _bind_connections(directory, dn)
    expect(not conns, "%s: slapd received a BIND as %s:\n%s" % (
        what, dn, "\n".join(l for ls in conns.values() for l in ls)))


# ---------------------------------------------------------------- tests
def test_starttls_with_ca_file_refers():
    d = _server("starttls", ldap, ldap.url,
                mailbox_referrals_ldap_tls="yes",
                mailbox_referrals_ldap_tls_ca_cert_file=pki["ca"])
    _expect_referral(d, "STARTTLS")
    _expect_tls_binds(ldap, d.reader_dn, ldap.port, True, "STARTTLS")


def test_ldaps_with_ca_file_refers():
    d = _server("ldaps", ldap, ldap.ldaps_url,
                mailbox_referrals_ldap_tls_ca_cert_file=pki["ca"])
    _expect_referral(d, "ldaps")
    _expect_tls_binds(ldap, d.reader_dn, ldap.ldaps_port, False, "ldaps")


def test_starttls_wrong_ca_is_unavailable():
    d = _server("starttls-wrong-ca", ldap, ldap.url,
                mailbox_referrals_ldap_tls="yes",
                mailbox_referrals_ldap_tls_ca_cert_file=pki["other_ca"])
    errors = _expect_unavailable(d, "STARTTLS, wrong CA")
    expect(any("STARTTLS on %s failed" % ldap.url in l for l in errors),
           "STARTTLS, wrong CA: the error line does not name the STARTTLS "
           "failure:\n%s" % "\n".join(errors))
    _expect_no_bind(ldap, d.reader_dn, "STARTTLS, wrong CA")


def test_ldaps_wrong_ca_is_unavailable():
    d = _server("ldaps-wrong-ca", ldap, ldap.ldaps_url,
                mailbox_referrals_ldap_tls_ca_cert_file=pki["other_ca"])
    errors = _expect_unavailable(d, "ldaps, wrong CA")
    expect(any(ldap.ldaps_url in l and "failed" in l for l in errors),
           "ldaps, wrong CA: the error line does not name the URI:\n%s"
           % "\n".join(errors))
    _expect_no_bind(ldap, d.reader_dn, "ldaps, wrong CA")


def test_require_cert_never_accepts_wrong_ca():
    d = _server("starttls-never", ldap, ldap.url,
                mailbox_referrals_ldap_tls="yes",
                mailbox_referrals_ldap_tls_ca_cert_file=pki["other_ca"],
                mailbox_referrals_ldap_tls_require_cert="never")
    _expect_referral(d, "STARTTLS, wrong CA, tls_require_cert = never")
    _expect_tls_binds(ldap, d.reader_dn, ldap.port, True,
                      "STARTTLS, wrong CA, tls_require_cert = never")


def test_directory_requiring_tls():
    what = "directory requiring TLS, without mailbox_referrals_ldap_tls"
    plain = _server("secure-plain", secure, secure.url,
                    mailbox_referrals_ldap_tls_ca_cert_file=pki["ca"])
    errors = _expect_unavailable(plain, what)
    expect(any("Bind to %s as %s failed: Confidentiality required"
               % (secure.url, plain.reader_dn) in l for l in errors),
           "%s: the error line does not give the refused bind:\n%s"
           % (what, "\n".join(errors)))
    # slapd logs a RESULT after sending it: wait for the lines to appear
    def refused():
        conns = _bind_connections(secure, plain.reader_dn)
        done = conns and all(_index(lines, "RESULT tag=97") is not None
                             for lines in conns.values())
        return conns if done else None
    conns = wait_until(refused) or _bind_connections(secure, plain.reader_dn)
    expect(conns, "%s: slapd's log has no BIND as %s" % (what,
                                                         plain.reader_dn))
    for lines in conns.values():
        expect(_index(lines, "TLS established") is None and
               _index(lines, "RESULT tag=97", "err=13") is not None,
               "%s: expected a clear-text bind refused with err=13:\n  %s"
               % (what, "\n  ".join(lines)))

    what = "directory requiring TLS, with STARTTLS"
    d = _server("secure-starttls", secure, secure.url,
                mailbox_referrals_ldap_tls="yes",
                mailbox_referrals_ldap_tls_ca_cert_file=pki["ca"])
    _expect_referral(d, what)
    _expect_tls_binds(secure, d.reader_dn, secure.port, True, what)

    what = "directory requiring TLS, over ldaps"
    d = _server("secure-ldaps", secure, secure.ldaps_url,
                mailbox_referrals_ldap_tls_ca_cert_file=pki["ca"])
    _expect_referral(d, what)
    _expect_tls_binds(secure, d.reader_dn, secure.ldaps_port, False, what)


def test_missing_ca_file_is_named():
    """A CA file the mail user cannot read (here: none at all) is what
    libldap fails on when it builds the TLS context: the log says so."""
    d = _server("missing-ca", ldap, ldap.url,
                mailbox_referrals_ldap_tls="yes",
                mailbox_referrals_ldap_tls_ca_cert_file=pki["ca"] + ".missing")
    errors = _expect_unavailable(d, "STARTTLS, missing CA file")
    expect(any("Creating the TLS context failed" in l and
               "mail user can read" in l for l in errors),
           "missing CA file: the error line does not point at the file:\n%s"
           % "\n".join(errors))
    _expect_no_bind(ldap, d.reader_dn, "STARTTLS, missing CA file")

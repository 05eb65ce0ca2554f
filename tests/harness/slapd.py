# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""A real OpenLDAP slapd on 127.0.0.1, run from its own directory.

    ldap = Slapd(config_format="cnconfig")   # or "slapdconf"
    ldap.start()
    ldap.ldapadd(ldif.entry(...))
    n = ldap.count_searches("imapReferralMailbox")
    ldap.stop()

Extra database settings (both config formats), e.g. a narrowly-scoped
reader allowed to page past the size limit:

    reader = "cn=imap,dc=example,dc=com"
    ldap = Slapd(access=['to attrs=userPassword by anonymous auth by * none',
                         'to * by dn.exact="%s" read by * none' % reader],
                 limits=['dn.exact="%s" size.prtotal=unlimited' % reader],
                 nosync=True)
    ldap.start()
    ldap.add_reader(reader, "readerpw")
    rc, entries, err = ldap.search_as(reader, "readerpw", base=...)

TLS (both config formats): give the server certificate and key, and the
CA certificate file slapd announces; the server then offers STARTTLS on
its ldap:// port, and with ldaps=True also listens on ldaps://127.0.0.1
(ldaps_url; a free port unless ldaps_port is given):

    ldap = Slapd(tls_cert_file=cert, tls_key_file=key, tls_ca_file=ca,
                 ldaps=True)

When the database requires TLS (e.g. extra_db_config=["olcSecurity:
tls=1"] or ["security tls=1"]), client_starttls=True makes the harness's
own client tools (ldapadd, search, ...) use STARTTLS (-ZZ) and trust
tls_ca_file.

The server runs in the foreground (-d 256, i.e. "stats") with its output
in <workdir>/slapd.log, so tests can count the operations it received.
Our schema is loaded either through cn=config (slapadd -n0 of an LDIF that
includes ldap-schema/mailbox-referrals.ldif) or through a slapd.conf that
includes ldap-schema/mailbox-referrals.schema.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse

from . import REPO_ROOT, ldif, procs
from .ports import LOOPBACK, free_port

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SYSTEM_SCHEMA_DIR = "/etc/ldap/schema"
MODULE_DIR = "/usr/lib/ldap"
SYSTEM_SCHEMAS = ("core", "cosine", "inetorgperson")

SUFFIX = "dc=example,dc=com"
ROOTDN = "cn=admin,dc=example,dc=com"
ROOTPW = "secret"

# Client tools must not read /etc/ldap/ldap.conf or ~/.ldaprc.
_CLIENT_ENV = dict(os.environ, LDAPNOINIT="1")

_SRCH_RE = re.compile(r'\bSRCH base="(?P<base>[^"]*)".*?filter="(?P<filter>.*)"')


class SlapdError(Exception):
    pass


class Slapd:
    def __init__(self, workdir=None, port=None, config_format="cnconfig",
                 repo=REPO_ROOT, debug_level="256", detached=False,
                 extra_schema_files=(), limits=(), access=(), nosync=False,
                 extra_db_config=(), tls_cert_file=None, tls_key_file=None,
                 tls_ca_file=None, ldaps=False, ldaps_port=None,
                 client_starttls=False, syncprov=False):
        """workdir: directory for config, data and log (a new temporary
        directory when None; removed by cleanup() only in that case).
        port: fixed port, or None for a free one.
        config_format: "cnconfig" (-F, slapadd -n0) or "slapdconf" (-f).
        detached: the server survives this Python process (for the demo).
        limits: database limits, each '<who> <limit> ...' as in
        slapd.conf(5) "limits" (olcLimits in cn=config), e.g.
        'dn.exact="cn=imap,dc=example,dc=com" size.prtotal=unlimited'.
        access: database access rules, each 'to <what> by <who> <access>
        ...' as in slapd.access(5), in order (olcAccess {0}, {1}, ...).
        With none, slapd's default applies (everybody may read).
        nosync: do not sync the database to disk after each write
        (dbnosync / olcDbNoSync), for loading many entries fast.
        extra_db_config: further lines for the database section, written
        as they are: "olcXxx: value" lines for cnconfig, slapd.conf
        directives for slapdconf.
        tls_cert_file, tls_key_file, tls_ca_file: server certificate,
        its key and the CA certificate file (TLSCertificateFile,
        TLSCertificateKeyFile, TLSCACertificateFile; olcTLS... in
        cn=config); with a certificate slapd offers STARTTLS. Relative
        paths are taken from workdir, so that a test can construct the
        Slapd and then generate the files into its workdir.
        ldaps: also listen on ldaps://127.0.0.1:<ldaps_port> (a free
        port when ldaps_port is None); needs a certificate.
        client_starttls: the harness's client tools use STARTTLS and
        verify the server against tls_ca_file (the readiness probe, an
        anonymous search of the root DSE, stays in clear text).
        syncprov: load the syncprov overlay on the database, so that
        clients can follow it with RFC 4533 (the directory service).
        """
        if config_format not in ("cnconfig", "slapdconf"):
            raise ValueError("config_format must be cnconfig or slapdconf")
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="mbref-slapd-")
        os.makedirs(self.workdir, exist_ok=True)
        self.port = port or free_port()
        self.config_format = config_format
        self.repo = repo
        self.debug_level = str(debug_level)
        self.detached = detached
        self.extra_schema_files = tuple(extra_schema_files)
        self.limits = tuple(limits)
        self.access = tuple(access)
        self.nosync = bool(nosync)
        self.extra_db_config = tuple(extra_db_config)
        self.tls_cert_file = tls_cert_file
        self.tls_key_file = tls_key_file
        self.tls_ca_file = tls_ca_file
        if (ldaps or client_starttls) and not (tls_cert_file and
                                               tls_key_file):
            raise ValueError("ldaps and client_starttls need tls_cert_file "
                             "and tls_key_file")
        if client_starttls and not tls_ca_file:
            raise ValueError("client_starttls needs tls_ca_file")
        self.ldaps_port = (ldaps_port or free_port()) if ldaps else None
        self.client_starttls = bool(client_starttls)
        self.syncprov = bool(syncprov)
        self.proc = None
        self.paused = False

    # ------------------------------------------------------------ paths
    @property
    def url(self):
        return "ldap://%s:%d" % (LOOPBACK, self.port)

    @property
    def ldaps_url(self):
        """ldaps://127.0.0.1:<ldaps_port>, or None without ldaps."""
        if self.ldaps_port is None:
            return None
        return "ldaps://%s:%d" % (LOOPBACK, self.ldaps_port)

    @property
    def listen_urls(self):
        urls = [self.url + "/"]
        if self.ldaps_port is not None:
            urls.append(self.ldaps_url + "/")
        return urls

    @property
    def log_path(self):
        return os.path.join(self.workdir, "slapd.log")

    @property
    def data_dir(self):
        return os.path.join(self.workdir, "data")

    @property
    def config_dir(self):
        return os.path.join(self.workdir, "slapd.d")

    @property
    def config_file(self):
        return os.path.join(self.workdir, "slapd.conf")

    @property
    def pid_file(self):
        # written by us (the process we started), not by slapd
        return os.path.join(self.workdir, "harness-slapd.pid")

    @property
    def schema_ldif(self):
        return os.path.join(self.repo, "ldap-schema", "mailbox-referrals.ldif")

    @property
    def schema_file(self):
        return os.path.join(self.repo, "ldap-schema",
                            "mailbox-referrals.schema")

    def __repr__(self):
        return "<Slapd %s %s>" % (self.url, self.workdir)

    # ----------------------------------------------------------- config
    def configured(self):
        if self.config_format == "cnconfig":
            return os.path.exists(os.path.join(self.config_dir, "cn=config.ldif"))
        return os.path.exists(self.config_file)

    def _configure_cnconfig(self):
        def file_url(path):
            return "file://" + urllib.parse.quote(os.path.abspath(path))

        includes = [os.path.join(SYSTEM_SCHEMA_DIR, s + ".ldif")
                    for s in SYSTEM_SCHEMAS]
        includes.append(self.schema_ldif)
        includes.extend(self.extra_schema_files)
        text = """\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {w}/slapd.pid
olcArgsFile: {w}/slapd.args
{tls}
dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {moddir}
olcModuleLoad: back_mdb
{syncprov_module}
dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{includes}

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcDbDirectory: {data}
olcSuffix: {suffix}
olcRootDN: {rootdn}
olcRootPW: {rootpw}
olcDbIndex: objectClass eq
olcDbIndex: imapReferralMailbox eq,sub
olcDbMaxSize: 104857600
""".format(w=self.workdir, moddir=MODULE_DIR, data=self.data_dir,
           suffix=SUFFIX, rootdn=ROOTDN, rootpw=ROOTPW,
           syncprov_module="olcModuleLoad: syncprov\n" if self.syncprov
           else "",
           tls="".join("%s: %s\n" % kv for kv in self._tls_settings("olc")),
           includes="\n\n".join("include: " + file_url(p) for p in includes))
        text += "".join(l + "\n" for l in self._cnconfig_db_lines())
        if self.syncprov:
            text += ("\ndn: olcOverlay=syncprov,olcDatabase={1}mdb,cn=config\n"
                     "objectClass: olcOverlayConfig\n"
                     "objectClass: olcSyncProvConfig\n"
                     "olcOverlay: syncprov\n")
        path = os.path.join(self.workdir, "config.ldif")
        with open(path, "w") as f:
            f.write(text)
        if os.path.isdir(self.config_dir):
            shutil.rmtree(self.config_dir)
        os.makedirs(self.config_dir)
        r = subprocess.run([SLAPADD, "-n0", "-F", self.config_dir, "-l", path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        if r.returncode != 0:
            raise SlapdError("slapadd -n0 failed (%d):\n%s" % (
                r.returncode, r.stdout.decode(errors="replace")))

    def _configure_slapdconf(self):
        lines = ["include %s/%s.schema" % (SYSTEM_SCHEMA_DIR, s)
                 for s in SYSTEM_SCHEMAS]
        lines.append("include %s" % self.schema_file)
        lines.extend("include %s" % p for p in self.extra_schema_files)
        lines += [
            "pidfile %s/slapd.pid" % self.workdir,
            "argsfile %s/slapd.args" % self.workdir,
            "modulepath %s" % MODULE_DIR,
            "moduleload back_mdb",
        ]
        if self.syncprov:
            lines.append("moduleload syncprov")
        lines += ["%s %s" % kv for kv in self._tls_settings("")]
        lines += [
            "database mdb",
            'suffix "%s"' % SUFFIX,
            'rootdn "%s"' % ROOTDN,
            "rootpw %s" % ROOTPW,
            "directory %s" % self.data_dir,
            "maxsize 104857600",
            "index objectClass eq",
            "index imapReferralMailbox eq,sub",
        ]
        lines += self._slapdconf_db_lines()
        if self.syncprov:
            lines.append("overlay syncprov")
        with open(self.config_file, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = subprocess.run(["/usr/sbin/slaptest", "-u", "-f", self.config_file],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        if r.returncode != 0:
            raise SlapdError("slaptest -f %s failed:\n%s" % (
                self.config_file, r.stdout.decode(errors="replace")))

    def _tls_settings(self, prefix):
        """[(directive, value)] of the global TLS settings; prefix "olc"
        for cn=config attribute names, "" for slapd.conf."""
        out = []
        for name, value in (("TLSCACertificateFile", self.tls_ca_file),
                            ("TLSCertificateFile", self.tls_cert_file),
                            ("TLSCertificateKeyFile", self.tls_key_file)):
            if value:
                out.append((prefix + name, self._workdir_path(value)))
        return out

    def _workdir_path(self, path):
        return os.path.join(os.path.abspath(self.workdir), path)

    def _cnconfig_db_lines(self):
        lines = []
        if self.nosync:
            lines.append("olcDbNoSync: TRUE")
        lines += ["olcLimits: " + l for l in self.limits]
        lines += ["olcAccess: {%d}%s" % (i, a)
                  for i, a in enumerate(self.access)]
        lines += list(self.extra_db_config)
        return lines

    def _slapdconf_db_lines(self):
        lines = []
        if self.nosync:
            lines.append("dbnosync")
        lines += ["limits " + l for l in self.limits]
        lines += ["access " + a for a in self.access]
        lines += list(self.extra_db_config)
        return lines

    def configure(self):
        """Write the configuration (and check it); data is kept."""
        os.makedirs(self.data_dir, exist_ok=True)
        if self.config_format == "cnconfig":
            self._configure_cnconfig()
        else:
            self._configure_slapdconf()

    # ---------------------------------------------------------- process
    def running(self):
        return self.server_pid() is not None

    def read_pid(self):
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def server_pid(self):
        """The PID of this slapd while it runs, else None. The PID (of
        the process started here, or from the pid file of a detached
        one) counts only while that process still runs slapd with this
        configuration: procs.reap_zombies() may have collected a slapd
        that exited, or a pid file may be stale, and the number belong to
        another process by now."""
        if self.proc is not None:
            if self.proc.poll() is not None:
                return None
            pid = self.proc.pid
        else:
            pid = self.read_pid()
        config = (self.config_dir if self.config_format == "cnconfig"
                  else self.config_file)
        if pid is None or not procs.pid_runs(pid, config):
            return None
        return pid

    def start(self, timeout=30.0, create_base=True):
        """Start slapd (configuring it the first time) and wait until it
        answers a search; then make sure the suffix entry exists."""
        if self.running():
            raise SlapdError("%r is already running" % self)
        if not self.configured():
            self.configure()
        os.makedirs(self.data_dir, exist_ok=True)
        cmd = [SLAPD, "-d", self.debug_level, "-h", " ".join(self.listen_urls)]
        if self.config_format == "cnconfig":
            cmd += ["-F", self.config_dir]
        else:
            cmd += ["-f", self.config_file]
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                cwd=self.workdir)
        finally:
            log.close()
        self.paused = False
        with open(self.pid_file, "w") as f:
            f.write("%d\n" % self.proc.pid)
        if not self.detached:
            procs.register(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SlapdError("slapd exited with %s; log tail:\n%s" % (
                    self.proc.returncode, self.log_tail()))
            r = subprocess.run(
                ["ldapsearch", "-x", "-H", self.url, "-b", "", "-s", "base",
                 "-LLL", "-o", "nettimeout=2", "-l", "2", "namingContexts"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=_CLIENT_ENV, timeout=10)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise SlapdError("slapd did not answer within %ss; log tail:\n%s"
                                 % (timeout, self.log_tail()))
            time.sleep(0.1)
        if create_base and not self.exists(SUFFIX):
            self.ldapadd(ldif.entry(SUFFIX, [
                ("objectClass", ["dcObject", "organization"]),
                ("dc", "example"), ("o", "Example")]))
        return self

    def stop(self, timeout=15.0):
        """Stop slapd cleanly (SIGTERM, then SIGKILL after timeout)."""
        pid = self.server_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGCONT)  # a paused slapd can't exit
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
            if self.proc is not None:
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            elif not procs.wait_pid_gone(pid, timeout):
                os.kill(pid, signal.SIGKILL)
                procs.wait_pid_gone(pid, 10)
        elif self.proc is not None:
            self.proc.poll()
        self.proc = None
        self.paused = False
        try:
            os.unlink(self.pid_file)
        except OSError:
            pass
        procs.unregister(self)

    def restart(self, timeout=30.0):
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start(timeout=timeout)

    def pause(self, timeout=30.0):
        """SIGSTOP: connections are still accepted (by the kernel) but no
        request is answered. Returns once every thread of slapd is
        stopped: kill() only queues the signal, and on a loaded machine
        slapd's other threads went on answering a request sent after
        kill() had returned, until the thread the signal was given to got
        the CPU and stopped the rest."""
        pid = self.server_pid()
        if pid is None:
            raise SlapdError("%r is not running" % self)
        os.kill(pid, signal.SIGSTOP)
        self.paused = True
        if not procs.wait_stopped(pid, timeout):
            raise SlapdError("slapd (pid %d) not stopped %ss after SIGSTOP"
                             % (pid, timeout))

    def resume(self):
        pid = self.server_pid()
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        self.paused = False

    def cleanup(self):
        """Stop and remove the working directory if we created it."""
        self.stop()
        if self.own_workdir and not os.environ.get("MBREF_KEEP_TMP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -------------------------------------------------------------- log
    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=30):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def search_log_lines(self):
        """The 'SRCH base=...' lines of the log, in order."""
        return [l for l in self.log_text().splitlines()
                if _SRCH_RE.search(l)]

    def search_filters(self, base_substring=None):
        """(base, filter) of every search received, in order."""
        out = []
        for line in self.search_log_lines():
            m = _SRCH_RE.search(line)
            if base_substring is None or base_substring.lower() in \
                    m.group("base").lower():
                out.append((m.group("base"), m.group("filter")))
        return out

    def count_searches(self, filter_substring=None, base_substring=None):
        """Number of searches received so far, optionally only those whose
        filter contains filter_substring (case-insensitive) and whose base
        contains base_substring. The harness's own readiness probes search
        the root DSE (base="") and are therefore excluded when a
        base_substring is given."""
        n = 0
        for base, flt in self.search_filters(base_substring):
            if filter_substring is None or \
                    filter_substring.lower() in flt.lower():
                n += 1
        return n

    # ----------------------------------------------------- client tools
    def _client(self, tool, args, input_text=None, timeout=30, check=True,
                bind_dn=ROOTDN, bind_pw=ROOTPW):
        cmd = [tool, "-x", "-H", self.url]
        env, cwd = _CLIENT_ENV, None
        if self.client_starttls:
            cmd.append("-ZZ")
            env, cwd = self._client_tls_env(), self.workdir
        if bind_dn is not None:
            cmd += ["-D", bind_dn, "-w", bind_pw]
        cmd += ["-o", "nettimeout=10"] + list(args)
        r = subprocess.run(
            cmd, input=input_text.encode("utf-8") if input_text else None,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            timeout=timeout, cwd=cwd)
        if check and r.returncode != 0:
            raise SlapdError("%s failed (%d): %s\n%s" % (
                " ".join(cmd[:1] + list(args)), r.returncode,
                r.stderr.decode(errors="replace").strip(),
                (input_text or "")[:2000]))
        return r

    def _client_tls_env(self):
        """Environment for client tools that use STARTTLS. LDAPNOINIT
        would also make libldap ignore LDAPTLS_* variables, so instead
        no user ldaprc can be found (HOME and the working directory are
        the workdir, which has none) and the LDAPTLS_* variables, read
        after /etc/ldap/ldap.conf, override its TLS settings."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("LDAP")}
        env.update(HOME=self.workdir,
                   LDAPTLS_CACERT=self._workdir_path(self.tls_ca_file),
                   LDAPTLS_REQCERT="demand")
        return env

    def ldapadd(self, ldif_text, timeout=30):
        """Add the entries of ldif_text as the root DN. timeout (seconds)
        may be raised for large LDIFs."""
        self._client("ldapadd", [], ldif_text, timeout=timeout)

    def ldapmodify(self, ldif_text):
        self._client("ldapmodify", [], ldif_text)

    def ldapdelete(self, dn):
        self._client("ldapdelete", [dn])

    def search(self, base=SUFFIX, filter="(objectClass=*)", scope="sub",
               attrs=()):
        """Search with ldapsearch; returns [(dn, {attr: [values]})].
        A missing base returns []."""
        r = self._client("ldapsearch",
                         ["-LLL", "-o", "ldif-wrap=no", "-b", base,
                          "-s", scope, filter] + list(attrs), check=False)
        if r.returncode == 32:  # noSuchObject
            return []
        if r.returncode != 0:
            raise SlapdError("ldapsearch failed (%d): %s" % (
                r.returncode, r.stderr.decode(errors="replace").strip()))
        return ldif.parse(r.stdout.decode("utf-8", "surrogateescape"))

    def add_reader(self, dn, password):
        """Add a simple-bind account dn (organizationalRole +
        simpleSecurityObject) with userPassword password; what it may read
        and how many entries it gets is up to the access and limits given
        to the constructor."""
        cn = dn.split(",", 1)[0].split("=", 1)[1]
        self.ldapadd(ldif.entry(dn, [
            ("objectClass", ["organizationalRole", "simpleSecurityObject"]),
            ("cn", cn), ("userPassword", password)]))

    def search_as(self, bind_dn, bind_pw, base=SUFFIX,
                  filter="(objectClass=*)", scope="sub", attrs=(),
                  extra_args=(), timeout=60):
        """ldapsearch bound as bind_dn (None: anonymous), without raising:
        returns (exit status, [(dn, {attr: [values]})], stderr text). A
        size-limited search returns 4 (sizeLimitExceeded) with the entries
        it got. extra_args: more ldapsearch options, e.g.
        ["-E", "pr=500/noprompt"] for a paged search."""
        r = self._client("ldapsearch",
                         ["-LLL", "-o", "ldif-wrap=no"] + list(extra_args) +
                         ["-b", base, "-s", scope, filter] + list(attrs),
                         check=False, bind_dn=bind_dn, bind_pw=bind_pw,
                         timeout=timeout)
        return (r.returncode,
                ldif.parse(r.stdout.decode("utf-8", "surrogateescape")),
                r.stderr.decode("utf-8", "replace"))

    def exists(self, dn):
        return bool(self.search(base=dn, scope="base", attrs=["1.1"]))

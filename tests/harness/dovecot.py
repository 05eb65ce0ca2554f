# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""A real Dovecot 2.3 instance on 127.0.0.1, run as root from its own
directory.

    d = Dovecot(name="a", plugin_settings={...})
    d.start()
    ... ImapClient(d.port) ...
    d.stop()

Each instance has its own base_dir (sockets, master.pid), state_dir, log
file, passwd-file, mail and public-namespace directories, so several can
run side by side. The plugin lines (mail_plugins / mail_plugin_dir) are
written only when with_plugin is true.

By default the plugin is loaded from a copy of the build tree's modules
that this process takes once (plugin_snapshot_dir()): every Dovecot
process loads the plugin when a session starts, and a rebuild in the tree
during a test run (libtool relinks plugin/.libs/*.so where they are)
made sessions fail with "server closed the connection" ("file too short",
"Plugin ... not found" in the log) for as long as it wrote the files.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from . import REPO_ROOT, procs
from .ports import LOOPBACK, free_port

DOVECOT = "/usr/sbin/dovecot"
DOVECONF = "/usr/bin/doveconf"
INSTALLED_MODULE_DIR = "/usr/lib/dovecot/modules"
BUILD_MODULE_DIR = os.path.join(REPO_ROOT, "plugin", ".libs")
PLUGIN_FILES = ("lib20_mailbox_referrals_plugin.so",
                "lib20_mailbox_referrals_core_plugin.so",
                "lib21_imap_mailbox_referrals_plugin.so",
                "lib21_imap_mailbox_referrals_core_plugin.so",
                "lib22_mailbox_referrals_ldap_plugin.so")
# Dovecot's own acl plugins, which a Dovecot(acl=...) loads from the same
# mail_plugin_dir as ours: its snapshot directory (plugin_snapshot_dir(acl=
# True)) links them from INSTALLED_MODULE_DIR.
ACL_PLUGIN_FILES = ("lib01_acl_plugin.so", "lib02_imap_acl_plugin.so")

# The master user a home server logs in with on the remote servers when
# it proxies a remote mailbox (mailbox_referrals_proxy_master_user).
PROXY_MASTER_USER = "mbref-proxy"
PROXY_MASTER_PASSWORD = "proxy-master-secret"
# The directory service as built in the tree (README, "The directory
# service"); Dovecot's `executable` takes an absolute path.
BUILD_SERVICE = os.path.join(REPO_ROOT, "service",
                             "mailbox-referrals-directory")
# ... and as make install (or the package) puts it, next to Dovecot's own
# services.
INSTALLED_SERVICE = os.path.join(os.path.dirname(INSTALLED_MODULE_DIR),
                                 "mailbox-referrals-directory")

DEFAULT_USERS = {"alice": "secret", "bob": "secret"}

# Dovecot refuses mail access as root ("Mail access not allowed for root",
# and passwd-file rejects UID 0), so mail processes run as this numeric
# uid/gid. It needs no /etc/passwd entry; the directories it writes to are
# chowned to it.
MAIL_UID = 5000
MAIL_GID = 5000


# Dovecot 2.3 stats metrics for the plugin's events (see "Events and
# metrics" in README.md); written when Dovecot(metrics=True).
METRICS_CONFIG = """\
metric mailbox_referrals_decisions {
  filter = event=mailbox_referrals_decision_finished
  group_by = result source
}
metric mailbox_referrals_directory_requests {
  filter = event=mailbox_referrals_directory_request_finished
  fields = entries searches
  group_by = operation
}
metric mailbox_referrals_directory_failures {
  filter = event=mailbox_referrals_directory_request_finished AND error=*
}
"""


class DovecotError(Exception):
    pass


_snapshot_dirs = {}


def _copy_settled(src, dest, timeout=60.0):
    """Copy src to dest once src is a whole ELF file that did not change
    while it was copied (a build may be writing it)."""
    deadline = time.monotonic() + timeout
    while True:
        before = os.stat(src)
        shutil.copy2(src, dest)
        after = os.stat(src)
        with open(dest, "rb") as f:
            elf = f.read(4) == b"\x7fELF"
        if elf and os.path.getsize(dest) == after.st_size and \
                (before.st_mtime_ns, before.st_size, before.st_ino) == \
                (after.st_mtime_ns, after.st_size, after.st_ino):
            return
        if time.monotonic() > deadline:
            raise DovecotError("%s kept changing while it was copied" % src)
        time.sleep(0.2)


def plugin_snapshot_dir(acl=False):
    """A directory with a copy of the plugin modules of the build tree,
    taken on first use and kept for the life of this process (removed at
    exit unless MBREF_KEEP_TMP is set), so that a rebuild during a test
    run cannot break the servers of that run. Missing modules are not
    copied (Dovecot then names them in its log).
    acl: a directory of its own with links to the same copies and to
    Dovecot's acl plugins. Dovecot reads every file name of
    mail_plugin_dir when a session loads its plugins, so that files there
    cost every session (about 2,500 instructions each): the other servers,
    and bench/session-benchmark's, see only the plugin's modules."""
    if acl in _snapshot_dirs:
        return _snapshot_dirs[acl]
    d = tempfile.mkdtemp(prefix="mbref-plugin-")
    os.chmod(d, 0o755)   # the mail processes run as MAIL_UID
    if not acl:
        for name in PLUGIN_FILES:
            src = os.path.join(BUILD_MODULE_DIR, name)
            if os.path.exists(src):
                _copy_settled(src, os.path.join(d, name))
    else:
        plain = plugin_snapshot_dir()
        for name in os.listdir(plain):
            os.symlink(os.path.join(plain, name), os.path.join(d, name))
        for name in ACL_PLUGIN_FILES:
            src = os.path.join(INSTALLED_MODULE_DIR, name)
            if os.path.exists(src):
                os.symlink(src, os.path.join(d, name))
    if not os.environ.get("MBREF_KEEP_TMP"):
        atexit.register(shutil.rmtree, d, True)
    _snapshot_dirs[acl] = d
    return d


def _quote(value):
    """Quote a setting value for dovecot.conf when it needs it."""
    value = str(value)
    if value == "":
        return ""
    if any(c in value for c in ' \t"#{}\\') or \
            value != value.strip():
        return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')
    return value


class Dovecot:
    def __init__(self, name="dovecot", workdir=None, port=None,
                 plugin_settings=None, with_plugin=True,
                 mail_plugin_dir=None, users=None,
                 extra_users=None, debug=False, extra_config="",
                 metrics=False, detached=False, directory_service=False,
                 service_executable=BUILD_SERVICE, master_users=None,
                 acl=None, acl_as_login_user=True, passdb_extra=""):
        """name: short label used in paths and repr.
        plugin_settings: dict written into plugin { }.
        with_plugin: load mailbox_referrals / imap_mailbox_referrals.
        mail_plugin_dir: where the plugin modules are (by default a copy
        of the build tree's, see plugin_snapshot_dir();
        INSTALLED_MODULE_DIR for the installed ones).
        users: dict user -> password (default alice and bob, "secret");
        extra_users: added to those.
        debug: mail_debug and auth_debug.
        metrics: the stats metrics of METRICS_CONFIG (read them with
        doveadm_stats_dump()).
        detached: the instance survives this Python process (demo).
        directory_service: add the service block of the directory service
        (service_executable), listening on
        <base_dir>/mailbox-referrals-directory (see service_socket).
        master_users: dict master user -> password: a master passdb
        (passwd-file, `master = yes`, `pass = yes`: the user logged in as
        must exist in the normal passdb) and auth_master_user_separator
        `*`, so that "alice*mbref-proxy" (LOGIN) or AUTHENTICATE PLAIN
        with authorization id alice and authentication id mbref-proxy
        logs in as alice; the home server's proxy logs in this way on a
        remote server (common.proxy_settings()).
        acl: None (no ACLs) or a list of lines of a global ACL file
        ("<mailbox pattern> <identifier> <rights>", the pattern with the
        namespace prefix, e.g. "Public/Sales* user=alice lrwstipekxa"):
        Dovecot's acl and imap_acl plugins with the vfile backend reading
        that file.
        acl_as_login_user: with acl, `acl_user = %u`: rights are those of
        the user logged in as, also in a master-user login. Without it
        Dovecot 2.3's acl plugin checks the rights of the master user
        (acl_user falls back to the master_user field the auth process
        returns for a master login), so a proxy's master login would get
        the master's rights, not the user's.
        passdb_extra: lines added to the users' passdb block, e.g.
        "override_fields = userdb_mailbox_referrals_proxy_password=%w"
        (the proxy logging in with the user's own password).
        """
        self.name = name
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="mbref-dovecot-%s-"
                                                   % name)
        self.port = port or free_port()
        self.plugin_settings = dict(plugin_settings or {})
        self.with_plugin = with_plugin
        self.mail_plugin_dir = mail_plugin_dir or \
            plugin_snapshot_dir(acl=acl is not None)
        self.users = dict(users if users is not None else DEFAULT_USERS)
        self.users.update(extra_users or {})
        self.debug = debug
        self.extra_config = extra_config
        self.metrics = metrics
        self.detached = detached
        self.directory_service = directory_service
        self.service_executable = service_executable
        self.master_users = dict(master_users or {})
        self.acl = list(acl) if acl is not None else None
        self.acl_as_login_user = acl_as_login_user
        self.passdb_extra = passdb_extra
        self.master_pid = None

    def __repr__(self):
        return "<Dovecot %s 127.0.0.1:%d %s>" % (self.name, self.port,
                                                 self.workdir)

    # ----------------------------------------------------------- paths
    def path(self, *parts):
        return os.path.join(self.workdir, *parts)

    @property
    def config_path(self):
        return self.path("dovecot.conf")

    @property
    def log_path(self):
        return self.path("dovecot.log")

    @property
    def base_dir(self):
        return self.path("run")

    @property
    def service_socket(self):
        return os.path.join(self.base_dir, "mailbox-referrals-directory")

    def service_config(self):
        """The service block README's "The directory service" documents,
        with the executable from the build tree. The mail processes run
        as uid MAIL_UID, so the listener is open to every local user."""
        return """\
service mailbox-referrals-directory {{
  executable = {exe}
  user = $default_internal_user
  process_limit = 1
  process_min_avail = 1
  unix_listener mailbox-referrals-directory {{
    mode = 0666
  }}
}}
""".format(exe=self.service_executable)

    @property
    def address(self):
        return "%s:%d" % (LOOPBACK, self.port)

    # ---------------------------------------------------------- config
    def config_text(self):
        w = self.workdir
        settings = dict(self.plugin_settings)
        mail_plugins, imap_plugins = [], []
        if self.acl is not None:
            mail_plugins.append("acl")
            imap_plugins.append("imap_acl")
            settings.setdefault("acl", "vfile:" + self.path("acl-global"))
            if self.acl_as_login_user:
                settings.setdefault("acl_user", "%u")
        if self.with_plugin:
            mail_plugins.append("mailbox_referrals")
            imap_plugins.append("imap_mailbox_referrals")
        plugin_lines = "".join("  %s = %s\n" % (k, _quote(v))
                               for k, v in settings.items())
        if mail_plugins:
            plugins = """\
mail_plugin_dir = {dir}
mail_plugins = $mail_plugins {mail}
protocol imap {{
  mail_plugins = $mail_plugins {imap}
}}
""".format(dir=self.mail_plugin_dir, mail=" ".join(mail_plugins),
           imap=" ".join(imap_plugins))
        else:
            plugins = ""
        if self.master_users:
            master_passdb = """\
auth_master_user_separator = *
passdb {{
  driver = passwd-file
  master = yes
  pass = yes
  args = scheme=PLAIN username_format=%u {w}/master-users
}}
""".format(w=w)
        else:
            master_passdb = ""
        debug = "mail_debug = yes\nauth_debug = yes\n" if self.debug else ""
        return """\
# Generated by tests/harness/dovecot.py for instance "{name}".
base_dir = {w}/run
state_dir = {w}/state
instance_name = mbref-{name}
log_path = {w}/dovecot.log
info_log_path = {w}/dovecot.log
debug_log_path = {w}/dovecot.log
{debug}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login

{master_passdb}# Dovecot itself runs as root from the temporary directory; mail
# processes run as uid/gid {uid}/{gid} (see MAIL_UID in dovecot.py).
first_valid_uid = 1
first_valid_gid = 1
default_internal_user = dovecot
default_login_user = dovenull

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {w}/users
{passdb_extra}}}
userdb {{
  driver = passwd-file
  args = username_format=%u {w}/users
}}

# "ID sent: ..." lines: a test can put a marker into the log and wait for
# it (common.log_barrier()); everything its session logged before is then
# in the file, since a process's lines reach the log in order.
imap_id_log = *

mail_location = maildir:{w}/mail/%u
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
}}
namespace public {{
  type = public
  separator = /
  prefix = Public/
  location = maildir:{w}/public:INDEXPVT={w}/pvt/%u
  subscriptions = no
  list = yes
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}

{plugins}
plugin {{
{plugin_lines}}}
{extra}
""".format(name=self.name, w=w, port=self.port, debug=debug,
           uid=MAIL_UID, gid=MAIL_GID,
           plugins=plugins, plugin_lines=plugin_lines,
           master_passdb=master_passdb,
           passdb_extra="".join("  %s\n" % l for l in
                                self.passdb_extra.splitlines()),
           extra=(METRICS_CONFIG if self.metrics else "") +
           (self.service_config() if self.directory_service else "") +
           self.extra_config)

    def write_config(self):
        """Write users and dovecot.conf, and check it with doveconf."""
        os.makedirs(self.workdir, exist_ok=True)
        # login and auth processes run as dovecot/dovenull: they must be
        # able to reach the passwd-file and the base_dir.
        os.chmod(self.workdir, 0o755)
        for d in ("run", "state"):
            os.makedirs(self.path(d), exist_ok=True)
        for d in ("mail", "public", "pvt", "home"):
            os.makedirs(self.path(d), exist_ok=True)
            os.chown(self.path(d), MAIL_UID, MAIL_GID)
        with open(self.path("users"), "w") as f:
            for user, password in self.users.items():
                f.write("%s:{PLAIN}%s:%d:%d::%s::\n" % (
                    user, password, MAIL_UID, MAIL_GID,
                    self.path("home", user)))
        os.chmod(self.path("users"), 0o644)
        if self.master_users:
            with open(self.path("master-users"), "w") as f:
                for user, password in self.master_users.items():
                    f.write("%s:{PLAIN}%s\n" % (user, password))
            os.chmod(self.path("master-users"), 0o644)
        if self.acl is not None:
            self.write_acl(self.acl)
        tmp = self.config_path + ".new"
        with open(tmp, "w") as f:
            f.write(self.config_text())
        r = subprocess.run([DOVECONF, "-c", tmp, "-n"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        if r.returncode != 0:
            raise DovecotError("doveconf rejects %s: %s" % (
                tmp, r.stderr.decode(errors="replace").strip()))
        os.replace(tmp, self.config_path)

    def write_acl(self, lines):
        """Write the global ACL file (see acl in __init__; a server
        created without acl loads no acl plugin). The vfile
        backend rereads it when it changes (after acl_cache_secs, 30 s by
        default), so a test changing rights on a running server should
        restart it instead."""
        self.acl = list(lines)
        tmp = self.path("acl-global.new")
        with open(tmp, "w") as f:
            for line in self.acl:
                f.write(line + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.path("acl-global"))

    def create_public_maildir(self, name):
        """Create the public-namespace mailbox Public/<name> directly on
        disk (Maildir++ layout), bypassing IMAP and every plugin. name is
        relative to the namespace prefix, ASCII, '/'-separated."""
        path = self.path("public", "." + name.replace("/", "."))
        for sub in ("", "cur", "new", "tmp"):
            d = os.path.join(path, sub)
            os.makedirs(d, exist_ok=True)
            os.chown(d, MAIL_UID, MAIL_GID)
        return path

    # --------------------------------------------------------- process
    def read_master_pid(self):
        """The master's PID from master.pid, or None when there is no
        such file or when that PID is no longer this instance's master
        (a master killed with SIGKILL leaves its master.pid behind)."""
        try:
            with open(os.path.join(self.base_dir, "master.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_master(pid) else None

    def _is_master(self, pid):
        return procs.pid_runs(pid, self.config_path)

    def running(self):
        return self.read_master_pid() is not None

    def start(self, timeout=30.0):
        """Write the config, start Dovecot (it daemonizes) and wait until
        the IMAP port sends its greeting."""
        if self.running():
            raise DovecotError("%r is already running" % self)
        self.write_config()
        log_offset = self.log_size()
        # The daemonized master may keep the startup stdout/stderr open:
        # send them to a file, not to a pipe we would wait on.
        startup_log = self.path("startup.log")
        with open(startup_log, "wb") as out:
            r = subprocess.run([DOVECOT, "-c", self.config_path],
                               stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.STDOUT, timeout=60,
                               start_new_session=True)
        if r.returncode != 0:
            with open(startup_log, "rb") as f:
                output = f.read().decode(errors="replace")
            raise DovecotError("dovecot failed to start (%d): %s\n%s" % (
                r.returncode, output, self.log_text(log_offset)))
        deadline = time.monotonic() + timeout
        while self.read_master_pid() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.master_pid = self.read_master_pid()
        if not self.detached:
            procs.register(self)
        while True:
            try:
                with socket.create_connection((LOOPBACK, self.port),
                                              timeout=5) as s:
                    s.settimeout(5)
                    if s.recv(1024).startswith(b"* OK"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise DovecotError("%r gave no greeting within %ss:\n%s" % (
                    self, timeout, self.log_text(log_offset)))
            time.sleep(0.1)
        return self

    def wait_service_synced(self, timeout=30.0):
        """Wait until the directory service (directory_service=True)
        answers STATUS with the state synced: its first load is done.
        Returns the STATUS fields, or raises DovecotError at the
        deadline."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(5)
                    s.connect(self.service_socket)
                    s.sendall(b"VERSION\tmailbox-referrals-directory\t1\t0\n"
                              b"STATUS\t1\n")
                    data = b""
                    while not data.endswith(b"OK\t1\n") and \
                            not data.startswith(b"FAIL") and \
                            b"\nFAIL\t" not in data:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                lines = data.decode(errors="replace").split("\n")
                status = [l.split("\t") for l in lines
                          if l.startswith("S\t1\t")]
                if status:
                    last = status[0]
                    if last[2] == "synced":
                        return last
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise DovecotError("%r: the directory service is not synced "
                                   "within %ss (last STATUS %r)"
                                   % (self, timeout, last))
            time.sleep(0.1)

    def stop(self, timeout=15.0):
        """Stop the master (SIGTERM) and wait for it and its children;
        SIGKILL whatever is left after timeout."""
        pid = self.read_master_pid()
        if pid is None and self.master_pid is not None and \
                self._is_master(self.master_pid):
            pid = self.master_pid
        if pid is not None:
            children = procs.children_of(pid)
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
            if not procs.wait_pid_gone(pid, timeout):
                procs.kill_tree(pid)
                procs.wait_pid_gone(pid, 5)
            deadline = time.monotonic() + 5
            for child in children:
                if not procs.wait_pid_gone(child,
                                           max(0, deadline - time.monotonic())):
                    try:
                        os.kill(child, signal.SIGKILL)
                    except OSError:
                        pass
        self.master_pid = None
        procs.unregister(self)
        procs.reap_zombies()

    def restart(self):
        self.stop()
        self.start()

    def cleanup(self):
        self.stop()
        if self.own_workdir and not os.environ.get("MBREF_KEEP_TMP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -------------------------------------------------------------- log
    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_text(self, offset=0):
        """The instance's log (from byte offset on)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, predicate, offset=0, timeout=30.0):
        """Wait (bounded) until predicate(log_text(offset)) is true;
        returns the final text. Log lines reach the file through the log
        process, after the event (seconds after it on a loaded machine);
        the wait ends as soon as the predicate holds."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text(offset)
            if predicate(text) or time.monotonic() > deadline:
                return text
            time.sleep(0.1)

# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""A directory that answers halfway and then stalls never holds a session
longer than mailbox_referrals_ldap_timeout: a BindResponse cut after a few
bytes, a STARTTLS accepted but no TLS handshake, an ldaps:// peer that
never speaks. A tiny fake LDAP peer on loopback plays the server; its BER
is written by hand, only as much as these three cases need."""

import socket
import threading

from common import (check_plugin_built, expect, expect_usable, own_dovecot,
                    stop_servers, PASSWORD, USER)
from harness.imap import ImapClient

TIMEOUT_SECS = 2
servers = []
peers = []


def _len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _tlv(tag, body):
    return bytes([tag]) + _len(len(body)) + body


def _result(msgid, op_tag, extra=b""):
    """LDAPMessage with an LDAPResult of success (+ extra fields)."""
    return _tlv(0x30, _tlv(0x02, bytes([msgid])) +
                _tlv(op_tag, _tlv(0x0a, b"\x00") + _tlv(0x04, b"") +
                     _tlv(0x04, b"") + extra))


class StallingPeer:
    """mode: 'partial-bind' (send 5 bytes of the BindResponse, then stay
    silent), 'starttls' (accept STARTTLS, then stay silent) or 'silent'
    (never send anything)."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _serve(self, conn):
        try:
            if self.mode == "silent":
                while conn.recv(65536):
                    pass
                return
            data = conn.recv(65536)
            if not data:
                return
            msgid = data[4] if data[3] == 1 else 1
            if self.mode == "partial-bind":
                conn.sendall(_result(msgid, 0x61)[:5])
            elif self.mode == "starttls":
                conn.sendall(_result(msgid, 0x78, _tlv(
                    0x8a, b"1.3.6.1.4.1.1466.20037")))
            while conn.recv(65536):
                pass
        except OSError:
            pass

    def close(self):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def _server(name, uri, **extra):
    return own_dovecot("stall-" + name, uri, registry=servers,
                       mailbox_referrals_ldap_timeout="%ds" % TIMEOUT_SECS,
                       **extra)


def setup_module():
    check_plugin_built()


def teardown_module():
    stop_servers(*servers)
    for p in peers:
        p.close()


def _expect_bounded(mode, scheme="ldap", **extra):
    peer = StallingPeer(mode)
    peers.append(peer)
    d = _server(mode, "%s://127.0.0.1:%d" % (scheme, peer.port), **extra)
    c = ImapClient(d.port, timeout=60)
    try:
        expect(c.login(USER, PASSWORD).status == "OK", "LOGIN")
        r = c.command("SELECT Public/Stalled", timeout=60)
        expect(r.text.startswith("NO [UNAVAILABLE]"),
               "%s: SELECT with a stalling directory: %r" % (mode, r.tagged))
        # bounded by the timeout: not forever (the socket timeout above
        # would fail the test first), and not instantly
        expect(TIMEOUT_SECS * 0.5 <= r.elapsed <= TIMEOUT_SECS * 5,
               "%s: answered after %.1fs with a %ds timeout"
               % (mode, r.elapsed, TIMEOUT_SECS))
        expect_usable(c, mode)
    finally:
        c.close()


def test_partial_bind_response_is_bounded():
    _expect_bounded("partial-bind")


def test_stalled_starttls_handshake_is_bounded():
    _expect_bounded("starttls", mailbox_referrals_ldap_tls="yes",
                    mailbox_referrals_ldap_tls_require_cert="never")


def test_silent_ldaps_peer_is_bounded():
    _expect_bounded("silent", scheme="ldaps",
                    mailbox_referrals_ldap_tls_require_cert="never")

# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""A minimal raw-socket IMAP client for exact-response tests.

    c = ImapClient(port)                  # connects, reads the greeting
    untagged, tagged = c.login("alice", "secret")
    untagged, tagged = c.command("SELECT Public/Sales")
    r = c.command("APPEND Public/Sales ", Literal(message))
    r.continued   # False when the server refused before "+"

Lines are returned exactly as received, without the trailing CRLF. A
server literal ({n} at the end of a line) is kept inline: the returned
"line" is the text up to and including {n}, CRLF, the n bytes, and the rest
of the line. Bytes are decoded as UTF-8 with surrogateescape, so
encode("utf-8", "surrogateescape") gives back the exact bytes.

Every read has a timeout (30 s by default): a hanging server fails the
test with ImapTimeout instead of blocking forever. A closed connection
raises ImapDisconnected carrying what had been read.
"""

import base64
import re
import socket
import time

from .ports import LOOPBACK

DEFAULT_TIMEOUT = 30.0

_LITERAL_RE = re.compile(rb"\{(\d+)\+?\}$")


class ImapError(Exception):
    pass


class ImapTimeout(ImapError):
    pass


class ImapDisconnected(ImapError):
    def __init__(self, message, lines=()):
        super().__init__(message)
        self.lines = list(lines)


class Literal:
    """A command argument sent as a synchronizing literal {n}."""

    def __init__(self, data):
        self.data = data.encode("utf-8") if isinstance(data, str) else data


class Response:
    """Result of command(): unpacks as (untagged_lines, tagged_line)."""

    def __init__(self, tag, untagged, tagged, continued=True, elapsed=0.0):
        self.tag = tag
        self.untagged = untagged
        self.tagged = tagged
        self.continued = continued  # every literal was sent after a "+"
        self.elapsed = elapsed

    def __iter__(self):
        return iter((self.untagged, self.tagged))

    @property
    def status(self):
        """OK, NO or BAD."""
        rest = self.tagged[len(self.tag) + 1:]
        return rest.split(" ", 1)[0]

    @property
    def text(self):
        """The tagged line without the tag and without the timing that
        Dovecot 2.3 appends to every tagged reply (see strip_timing)."""
        return strip_timing(self.raw_text)

    @property
    def raw_text(self):
        """The tagged line without the tag, exactly as received."""
        return self.tagged[len(self.tag) + 1:]

    def __repr__(self):
        return "Response(%r, %r)" % (self.untagged, self.tagged)


# Dovecot 2.3 ends every tagged reply with " (0.001 + 0.000 [+ 0.002] secs)."
# (client_cmd_append_timing_stats() in src/imap/imap-client.c), dropping a
# final "." of the text first.
_TIMING_RE = re.compile(r" \(\d+\.\d{3} \+ \d+\.\d{3}(?: \+ \d+\.\d{3})? secs\)\.$")


def strip_timing(text):
    """text without Dovecot's trailing timing statistics."""
    return _TIMING_RE.sub("", text)


def _decode(data):
    return data.decode("utf-8", "surrogateescape")


class ImapClient:
    def __init__(self, port, host=LOOPBACK, timeout=DEFAULT_TIMEOUT,
                 transcript=None):
        """Connect and read the greeting (self.greeting).
        transcript: optional list; every line sent ("C: ...") and received
        ("S: ...") is appended to it."""
        self.host = host
        self.port = port
        self.timeout = timeout
        self.transcript = transcript
        self._tag_counter = 0
        self._buf = b""
        self.closed = False
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.greeting = self.read_line()

    # ------------------------------------------------------------ I/O
    def _note(self, direction, line):
        if self.transcript is not None:
            self.transcript.append("%s: %s" % (direction, line))

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ImapTimeout("no complete response from %s:%d within %ss; "
                              "partial data: %r" % (self.host, self.port,
                                                    self.timeout, self._buf))
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise ImapTimeout("no complete response from %s:%d within %ss; "
                              "partial data: %r" % (self.host, self.port,
                                                    self.timeout, self._buf))
        except OSError as e:
            self.closed = True
            raise ImapDisconnected("connection error: %s" % e)
        if not data:
            self.closed = True
            raise ImapDisconnected("server closed the connection; pending "
                                   "data: %r" % self._buf)
        self._buf += data

    def _read_raw_line(self, deadline):
        while b"\r\n" not in self._buf:
            self._fill(deadline)
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def read_line(self, timeout=None):
        """One server response line, with literals inline (see module doc)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        line = self._read_raw_line(deadline)
        parts = [line]
        m = _LITERAL_RE.search(line)
        while m:
            n = int(m.group(1))
            while len(self._buf) < n:
                self._fill(deadline)
            parts.append(b"\r\n" + self._buf[:n])
            self._buf = self._buf[n:]
            # the rest of the line follows the literal's bytes directly
            line = self._read_raw_line(deadline)
            parts.append(line)
            m = _LITERAL_RE.search(line)
        text = _decode(b"".join(parts))
        self._note("S", text)
        return text

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        try:
            self.sock.sendall(data)
        except OSError as e:
            self.closed = True
            raise ImapDisconnected("send failed: %s" % e)

    def next_tag(self):
        self._tag_counter += 1
        return "a%d" % self._tag_counter

    # -------------------------------------------------------- commands
    def command(self, *parts, timeout=None):
        """Send one command with an automatic tag and return its Response.

        parts: str (UTF-8 text), bytes (raw bytes, written as they are) or
        Literal (sent as {n} followed, after the server's "+", by the data).
        If the server answers the tagged line instead of "+", the rest of
        the command is not sent and Response.continued is False.
        """
        tag = self.next_tag()
        deadline_total = timeout or self.timeout
        start = time.monotonic()
        untagged = []
        pending = tag.encode() + b" "
        continued = True
        for i, part in enumerate(parts):
            if isinstance(part, Literal):
                pending += b"{%d}" % len(part.data)
                self._note("C", _decode(pending))
                self.send_raw(pending + b"\r\n")
                pending = b""
                # wait for "+" or for the tagged answer
                while True:
                    line = self.read_line(timeout=deadline_total)
                    if line.startswith("+"):
                        break
                    if line.startswith(tag + " "):
                        return Response(tag, untagged, line, continued=False,
                                        elapsed=time.monotonic() - start)
                    untagged.append(line)
                self.send_raw(part.data)
                self._note("C", "<literal %d bytes>" % len(part.data))
            elif isinstance(part, bytes):
                pending += part
            else:
                pending += part.encode("utf-8", "surrogateescape")
        if pending:
            self._note("C", _decode(pending))
        self.send_raw(pending + b"\r\n")
        while True:
            line = self.read_line(timeout=deadline_total)
            if line.startswith(tag + " "):
                return Response(tag, untagged, line, continued=continued,
                                elapsed=time.monotonic() - start)
            untagged.append(line)

    def login(self, user, password):
        return self.command("LOGIN %s %s" % (quote(user), quote(password)))

    def authenticate_plain(self, user, password):
        """AUTHENTICATE PLAIN with an initial response (SASL-IR)."""
        token = base64.b64encode(
            b"\0" + user.encode() + b"\0" + password.encode()).decode()
        return self.command("AUTHENTICATE PLAIN " + token)

    def append(self, mailbox, message, flags=None):
        msg = message.encode("utf-8") if isinstance(message, str) else message
        prefix = "APPEND %s " % quote(mailbox)
        if flags:
            prefix += "(%s) " % flags
        return self.command(prefix, Literal(msg))

    def logout(self):
        try:
            return self.command("LOGOUT", timeout=10)
        except ImapError:
            return None
        finally:
            self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_ATOM_RE = re.compile(r"^[A-Za-z0-9._@+!&'/-]+$")


def quote(s):
    """s as an IMAP astring: an atom when it is one, else a quoted string
    (for strings without CR/LF)."""
    if _ATOM_RE.match(s):
        return s
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


def message(subject, body, sender="demo@example.com", to="alice@example.com"):
    """A small RFC 5322 message with CRLF line endings."""
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\n"
            "Date: Thu, 01 Jan 2026 12:00:00 +0000\r\n"
            "Message-ID: <%s@example.com>\r\n\r\n%s\r\n" % (
                sender, to, subject,
                re.sub(r"[^A-Za-z0-9]", "", subject) or "msg",
                body.replace("\n", "\r\n").rstrip("\r\n")))

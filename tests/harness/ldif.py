# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""Writing and reading LDIF (RFC 2849) with the standard library."""

import base64


def _safe(value):
    """True if value may be written as a plain LDIF SAFE-STRING."""
    if value == "":
        return True
    if value[0] in " :<" or value[-1] == " ":
        return False
    for ch in value:
        o = ord(ch)
        if o == 0 or o > 127 or ch in "\r\n":
            return False
    return True


def attr_line(name, value):
    """One 'name: value' line, base64 ('name:: ...') when needed."""
    if isinstance(value, bytes):
        return "%s:: %s" % (name, base64.b64encode(value).decode("ascii"))
    if _safe(value):
        return "%s: %s" % (name, value)
    return "%s:: %s" % (
        name, base64.b64encode(value.encode("utf-8")).decode("ascii"))


def entry(dn, attrs):
    """LDIF text for one entry.

    attrs: list of (name, value) pairs or dict name -> value / list of values.
    Values are str (UTF-8) or bytes; anything that is not a safe string is
    base64-encoded, so CR, LF, NUL and non-ASCII survive.
    """
    lines = [attr_line("dn", dn)]
    items = attrs.items() if isinstance(attrs, dict) else attrs
    for name, value in items:
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            lines.append(attr_line(name, v))
    return "\n".join(lines) + "\n"


def escape_dn_value(value):
    """Escape an RDN attribute value (RFC 4514)."""
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;=' or (ch == "#" and i == 0) or \
                (ch == " " and (i == 0 or i == len(value) - 1)):
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\00")
        else:
            out.append(ch)
    return "".join(out)


def parse(text):
    """Parse ldapsearch -LLL output into a list of (dn, {attr: [values]}).

    Attribute names are kept as written; values are str (base64 values are
    decoded as UTF-8 with surrogateescape so raw bytes survive).
    """
    # unfold continuation lines
    lines = []
    for raw in text.splitlines():
        if raw.startswith(" ") and lines:
            lines[-1] += raw[1:]
        else:
            lines.append(raw)
    entries = []
    dn = None
    attrs = {}
    for line in lines + [""]:
        if line == "":
            if dn is not None:
                entries.append((dn, attrs))
            dn, attrs = None, {}
            continue
        if line.startswith("#"):
            continue
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        if rest.startswith(":"):
            value = base64.b64decode(rest[1:].strip()).decode(
                "utf-8", "surrogateescape")
        else:
            value = rest[1:] if rest.startswith(" ") else rest
        if name.lower() == "dn":
            dn = value
        else:
            attrs.setdefault(name, []).append(value)
    return entries

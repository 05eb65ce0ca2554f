# Copyright (c) 2026 dovecot-mailbox-referrals authors.
# SPDX-License-Identifier: LGPL-2.1-only (see COPYING)
"""Test harness for the mailbox-referrals Dovecot plugin.

Runs real servers on the loopback interface, each from its own temporary
directory, so that tests and the demo exercise the plugin end to end:

  slapd.Slapd      an OpenLDAP server with the plugin's schema
  dovecot.Dovecot  a Dovecot 2.3 instance (IMAP only)
  imap.ImapClient  a raw-socket IMAP client for exact-response checks
  ports.free_port  a free TCP port on 127.0.0.1

Python standard library only.
"""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

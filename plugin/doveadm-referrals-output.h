/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef DOVEADM_REFERRALS_OUTPUT_H
#define DOVEADM_REFERRALS_OUTPUT_H

/* Returns value as doveadm may print it: value itself when it is UTF-8
   without control characters, else a copy (data stack) where control
   characters (C0, DEL, C1) and bytes that are not UTF-8 are written as
   \XX. Only doveadm's json formatter escapes what it prints; tab, flow,
   table and pager print values as they are. \XX is RFC 4514's escape: a
   DN stays a valid DN naming the same entry. */
const char *doveadm_referrals_printable(const char *value);

#endif

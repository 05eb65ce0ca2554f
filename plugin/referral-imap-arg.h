/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_IMAP_ARG_H
#define REFERRAL_IMAP_ARG_H

struct imap_arg;

/* Write a client's argument (parsed by imap) for a remote server, as
   the client sent it, but with a literal (or a string that can only be
   one) as a non-synchronizing literal if literal_plus; FALSE if one is
   needed without it. Used by the proxy's THREAD (referral-proxy.c) and
   the relay (imap-referral-relay.c), each module with its own copy of
   this file's object. */
bool referral_imap_write_arg(string_t *dest, const struct imap_arg *arg,
			     bool literal_plus);
/* Returns TRUE if arg is the "]..." atom that ends a section whose
   field list imap's parser read as a list: it follows the list without
   a space. */
bool referral_imap_arg_closes_section(const struct imap_arg *arg);

#endif

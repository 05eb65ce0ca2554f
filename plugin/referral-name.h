/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_NAME_H
#define REFERRAL_NAME_H

#include "referral-entry.h"

/* Deepest hierarchy level whose subtree entries are looked for: bounds the
   size of the directory query whatever name a client sends. */
#define REFERRAL_MAX_ANCESTORS 32
/* Longest imapReferralMailbox (the schema's limit): longer names, which a
   client may send, are never looked for. */
#define REFERRAL_MAX_NAME_LENGTH 4096

/* Returns the names of vname's ancestors in its namespace, shallowest
   first ("Public", "Public/Sales" for "Public/Sales/Q1" with separator
   '/'), at most REFERRAL_MAX_ANCESTORS and none longer than
   REFERRAL_MAX_NAME_LENGTH. Allocated from the data stack. */
const char *const *referral_name_ancestors(const char *vname, char sep);

/* Returns TRUE if ancestor is a proper ancestor of vname (sep follows
   it in vname). */
bool referral_name_is_ancestor(const char *ancestor, const char *vname,
			       char sep);

/* Returns TRUE if entry1 takes precedence over entry2, both for the same
   mailbox name: a mailbox-scope entry over a subtree one (so a subtree
   entry and a mailbox entry of one name can place the top mailbox and its
   children differently), else the smaller DN, so that every server of a
   deployment makes the same choice whatever order the directory uses. */
bool referral_entry_precedes(const struct referral_entry *entry1,
			     const struct referral_entry *entry2);
/* array_sort() order of entry pointers: by mailbox name, then the entry
   sessions use first (referral_entry_precedes()). */
int referral_entry_cmp(const struct referral_entry *const *entry1,
		       const struct referral_entry *const *entry2);

/* Choose the entry covering vname among entries: its own entry, else the
   deepest subtree entry above it (see referral_entry_precedes() for ties).
   Returns NULL if none covers it. */
const struct referral_entry *
referral_entries_find_covering(const ARRAY_TYPE(referral_entry) *entries,
			       const char *vname, char sep);

/* Returns the name vname has on the servers of entry. Data stack. */
const char *referral_entry_remote_name(const struct referral_entry *entry,
				       const char *vname);

#endif

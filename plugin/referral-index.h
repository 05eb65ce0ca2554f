/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_INDEX_H
#define REFERRAL_INDEX_H

#include "referral-entry.h"

/* The directory entries of one namespace, indexed by name: built once per
   directory listing and shared by everything that needs more than one
   name (list iteration, RENAME's check, and lookups while a listing is
   cached). A sorted array searched by bisection: it lives entirely in the
   pool it was built in, and goes away with it. */
struct referral_index;

struct referral_index_name {
	const char *vname;
	/* The entry for the name itself (see referral_entry_precedes());
	   NULL for a parent that has no entry of its own. */
	const struct referral_entry *entry;
	/* The subtree entry of this name, for the names below it. */
	const struct referral_entry *subtree_entry;
	/* this server is among entry's servers */
	bool local;
	/* another indexed name is below this one */
	bool children;
};
ARRAY_DEFINE_TYPE(referral_index_name, struct referral_index_name);

/* Returns TRUE if this server is among entry's servers. */
typedef bool referral_index_is_local_t(const struct referral_entry *entry,
				       void *context);

/* Index entries (which must stay allocated as long as the index), all in
   one namespace with hierarchy separator sep and prefix ns_prefix. Parents
   below the namespace root are added for every entry that is not local.
   Allocated from pool. */
struct referral_index *
referral_index_build(pool_t pool, const ARRAY_TYPE(referral_entry) *entries,
		     char sep, const char *ns_prefix,
		     referral_index_is_local_t *is_local, void *context);

/* Returns the names sorted by name; a name's position is its index for
   callers that keep per-name state. */
const struct referral_index_name *
referral_index_get_names(struct referral_index *index, unsigned int *count_r);
/* Returns the name's position, or -1 if it is not indexed. */
int referral_index_lookup(struct referral_index *index, const char *vname);

/* Returns the entry covering vname: its own, else the deepest subtree
   entry above it within REFERRAL_MAX_ANCESTORS levels (as single lookups
   do), or NULL. local_r tells whether this server is among the entry's
   servers. */
const struct referral_entry *
referral_index_find_covering(struct referral_index *index, const char *vname,
			     bool *local_r);

/* Returns TRUE if an entry exists for a name strictly below vname. */
bool referral_index_has_entries_below(struct referral_index *index,
				      const char *vname);

#endif

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_CACHE_H
#define REFERRAL_CACHE_H

#include "referral-entry.h"

/* What the directory said about one mailbox name: the entries covering it
   (none, for a local name). Negative answers are cached like positive
   ones; failed lookups are not cached at all. */
struct referral_cache_record {
	pool_t pool;
	const char *name;
	time_t expires;
	ARRAY_TYPE(referral_entry) entries;
	/* for a namespace's listing: the entries indexed by name */
	struct referral_index *index;
};

/* A per-session cache of directory answers. ttl_secs 0 disables caching;
   at most max_names names are kept (when full, the cache is emptied, which
   bounds memory whatever names a client tries). */
struct referral_cache *
referral_cache_init(unsigned int ttl_secs, unsigned int max_names);
void referral_cache_deinit(struct referral_cache **cache);

/* Returns the unexpired record for name, or NULL. */
const struct referral_cache_record *
referral_cache_lookup(struct referral_cache *cache, const char *name);
/* Returns a new, empty record for name, to be filled from its pool. It
   replaces any older record for name. The cache owns it. */
struct referral_cache_record *
referral_cache_add(struct referral_cache *cache, const char *name);
/* Forget everything. */
void referral_cache_clear(struct referral_cache *cache);

#endif

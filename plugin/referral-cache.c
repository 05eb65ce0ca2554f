/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "ioloop.h"
#include "referral-cache.h"

struct referral_cache {
	unsigned int ttl_secs;
	unsigned int max_names;
	/* name -> record; each record has its own pool, which also holds
	   the key. Created at the first add: most sessions never look up a
	   remote name, and creating and destroying the table cost them about
	   4,000 instructions per cache (see bench/README.md). */
	HASH_TABLE(const char *, struct referral_cache_record *) records;
};

struct referral_cache *
referral_cache_init(unsigned int ttl_secs, unsigned int max_names)
{
	struct referral_cache *cache;

	cache = i_new(struct referral_cache, 1);
	cache->ttl_secs = ttl_secs;
	cache->max_names = I_MAX(max_names, 1);
	return cache;
}

static void referral_cache_record_free(struct referral_cache_record *record)
{
	pool_unref(&record->pool);
}

void referral_cache_clear(struct referral_cache *cache)
{
	struct hash_iterate_context *iter;
	const char *name;
	struct referral_cache_record *record;

	if (!hash_table_is_created(cache->records))
		return;
	iter = hash_table_iterate_init(cache->records);
	while (hash_table_iterate(iter, cache->records, &name, &record))
		referral_cache_record_free(record);
	hash_table_iterate_deinit(&iter);
	hash_table_clear(cache->records, TRUE);
}

void referral_cache_deinit(struct referral_cache **_cache)
{
	struct referral_cache *cache = *_cache;

	*_cache = NULL;
	referral_cache_clear(cache);
	if (hash_table_is_created(cache->records))
		hash_table_destroy(&cache->records);
	i_free(cache);
}

const struct referral_cache_record *
referral_cache_lookup(struct referral_cache *cache, const char *name)
{
	struct referral_cache_record *record;

	if (!hash_table_is_created(cache->records))
		return NULL;
	record = hash_table_lookup(cache->records, name);
	if (record == NULL || record->expires <= ioloop_time)
		return NULL;
	return record;
}

struct referral_cache_record *
referral_cache_add(struct referral_cache *cache, const char *name)
{
	struct referral_cache_record *record;
	pool_t pool;

	if (!hash_table_is_created(cache->records)) {
		hash_table_create(&cache->records, default_pool, 0,
				  str_hash, strcmp);
	}
	record = hash_table_lookup(cache->records, name);
	if (record != NULL) {
		hash_table_remove(cache->records, name);
		referral_cache_record_free(record);
	} else if (hash_table_count(cache->records) >= cache->max_names) {
		referral_cache_clear(cache);
	}

	pool = pool_alloconly_create("referral cache record", 512);
	record = p_new(pool, struct referral_cache_record, 1);
	record->pool = pool;
	record->name = p_strdup(pool, name);
	record->expires = ioloop_time + cache->ttl_secs;
	p_array_init(&record->entries, pool, 2);
	hash_table_insert(cache->records, record->name, record);
	return record;
}

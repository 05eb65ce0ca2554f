/* Copyright (c) 2026 dovecot-mailbox-referrals authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "referral-lookup.h"
#include "referral-index.h"

struct referral_index {
	pool_t pool;
	char sep;
	referral_index_is_local_t *is_local;
	void *context;

	HASH_TABLE(const char *, struct referral_index_name *) names;
	ARRAY(struct referral_index_name *) sorted;
};

static struct referral_index_name *
referral_index_add(struct referral_index *index, const char *vname)
{
	struct referral_index_name *name;

	name = hash_table_lookup(index->names, vname);
	if (name == NULL) {
		name = p_new(index->pool, struct referral_index_name, 1);
		name->vname = p_strdup(index->pool, vname);
		hash_table_insert(index->names, name->vname, name);
		array_push_back(&index->sorted, &name);
	}
	return name;
}

static int
referral_index_name_cmp(struct referral_index_name *const *n1,
			struct referral_index_name *const *n2)
{
	return strcmp((*n1)->vname, (*n2)->vname);
}

struct referral_index *
referral_index_build(pool_t pool, const ARRAY_TYPE(referral_entry) *entries,
		     char sep, const char *ns_prefix,
		     referral_index_is_local_t *is_local, void *context)
{
	struct referral_index *index;
	const struct referral_entry *entry;
	struct referral_index_name *name, *parent;
	const char *const *ancestors;
	size_t prefix_len = strlen(ns_prefix);
	unsigned int i, count;

	i_assert(!pool->datastack_pool);
	index = p_new(pool, struct referral_index, 1);
	index->pool = pool;
	index->sep = sep;
	index->is_local = is_local;
	index->context = context;
	hash_table_create(&index->names, pool, array_count(entries) * 2,
			  str_hash, strcmp);
	p_array_init(&index->sorted, pool, array_count(entries) + 16);

	/* the same precedence as single lookups (referral-lookup.c) */
	array_foreach(entries, entry) {
		name = referral_index_add(index, entry->mailbox);
		if (name->entry == NULL ||
		    referral_entry_precedes(entry, name->entry))
			name->entry = entry;
		if (entry->subtree &&
		    (name->subtree_entry == NULL ||
		     referral_entry_precedes(entry, name->subtree_entry)))
			name->subtree_entry = entry;
	}

	count = array_count(&index->sorted);
	for (i = 0; i < count; i++) {
		name = array_idx_elem(&index->sorted, i);
		name->local = is_local(name->entry, context);
		if (name->local)
			continue;
		/* parents below the namespace root, so that clients can walk
		   down to the remote mailbox */
		ancestors = referral_name_ancestors(name->vname, sep);
		for (; *ancestors != NULL; ancestors++) {
			if (strlen(*ancestors) <= prefix_len)
				continue;
			parent = referral_index_add(index, *ancestors);
			parent->children = TRUE;
		}
	}
	array_sort(&index->sorted, referral_index_name_cmp);
	for (i = 0; i < array_count(&index->sorted); i++)
		array_idx_elem(&index->sorted, i)->idx = i;
	return index;
}

struct referral_index_name *const *
referral_index_get_names(struct referral_index *index, unsigned int *count_r)
{
	return array_get(&index->sorted, count_r);
}

struct referral_index_name *
referral_index_lookup(struct referral_index *index, const char *vname)
{
	return hash_table_lookup(index->names, vname);
}

const struct referral_entry *
referral_index_find_covering(struct referral_index *index, const char *vname,
			     bool *local_r)
{
	const struct referral_index_name *name;
	char *parent, *p;

	*local_r = FALSE;
	if (hash_table_count(index->names) == 0)
		return NULL;
	name = hash_table_lookup(index->names, vname);
	if (name != NULL && name->entry != NULL) {
		*local_r = name->local;
		return name->entry;
	}
	/* this runs for every listed mailbox: walk up the hierarchy by
	   cutting one copy of the name, deepest parent first */
	parent = t_strdup_noconst(vname);
	while ((p = strrchr(parent, index->sep)) != NULL) {
		*p = '\0';
		name = hash_table_lookup(index->names, (const char *)parent);
		if (name != NULL && name->subtree_entry != NULL) {
			*local_r = index->is_local(name->subtree_entry,
						   index->context);
			return name->subtree_entry;
		}
	}
	return NULL;
}

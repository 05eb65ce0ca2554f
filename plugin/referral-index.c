/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "bsearch-insert-pos.h"
#include "referral-name.h"
#include "referral-index.h"

struct referral_index {
	char sep;
	referral_index_is_local_t *is_local;
	void *context;

	/* sorted by vname, each name once */
	ARRAY_TYPE(referral_index_name) names;
};

static int
referral_index_name_cmp(const struct referral_index_name *n1,
			const struct referral_index_name *n2)
{
	return strcmp(n1->vname, n2->vname);
}

static int
referral_index_key_cmp(const char *key, const struct referral_index_name *name)
{
	return strcmp(key, name->vname);
}

/* Sort the names and merge the duplicates into one name each. */
static void referral_index_sort_merge(struct referral_index *index)
{
	struct referral_index_name *names, *to;
	const struct referral_index_name *from;
	unsigned int i, count;

	array_sort(&index->names, referral_index_name_cmp);
	names = array_get_modifiable(&index->names, &count);
	if (count == 0)
		return;
	to = names;
	for (i = 1; i < count; i++) {
		from = &names[i];
		if (strcmp(from->vname, to->vname) != 0) {
			*++to = *from;
			continue;
		}
		/* the same precedence as single lookups */
		if (from->entry != NULL &&
		    (to->entry == NULL ||
		     referral_entry_precedes(from->entry, to->entry))) {
			to->entry = from->entry;
			to->local = from->local;
		}
		if (from->subtree_entry != NULL &&
		    (to->subtree_entry == NULL ||
		     referral_entry_precedes(from->subtree_entry,
					     to->subtree_entry)))
			to->subtree_entry = from->subtree_entry;
		to->children = to->children || from->children;
	}
	array_delete(&index->names, to - names + 1,
		     count - (unsigned int)(to - names + 1));
}

struct referral_index *
referral_index_build(pool_t pool, const ARRAY_TYPE(referral_entry) *entries,
		     char sep, const char *ns_prefix,
		     referral_index_is_local_t *is_local, void *context)
{
	struct referral_index *index;
	const struct referral_entry *entry;
	struct referral_index_name *name;
	const char *const *ancestors;
	size_t prefix_len = strlen(ns_prefix);
	const char *last_parents[REFERRAL_MAX_ANCESTORS];
	unsigned int i, count;

	i_zero(&last_parents);
	index = p_new(pool, struct referral_index, 1);
	index->sep = sep;
	index->is_local = is_local;
	index->context = context;
	p_array_init(&index->names, pool, array_count(entries) + 16);

	array_foreach(entries, entry) {
		name = array_append_space(&index->names);
		name->vname = entry->mailbox;
		name->entry = entry;
		name->local = is_local(entry, context);
		if (entry->subtree)
			name->subtree_entry = entry;
	}
	referral_index_sort_merge(index);

	/* parents below the namespace root, so that clients can walk down to
	   the remote mailboxes; the names are sorted, so siblings share
	   parents: skip those just added */
	count = array_count(&index->names);
	for (i = 0; i < count; i++) {
		name = array_idx_modifiable(&index->names, i);
		if (name->local)
			continue;
		T_BEGIN {
			const char *vname = name->vname;
			unsigned int level = 0;

			ancestors = referral_name_ancestors(vname, sep);
			for (; *ancestors != NULL; ancestors++, level++) {
				if (strlen(*ancestors) <= prefix_len ||
				    (last_parents[level] != NULL &&
				     strcmp(last_parents[level], *ancestors) == 0))
					continue;
				name = array_append_space(&index->names);
				name->vname = p_strdup(pool, *ancestors);
				name->children = TRUE;
				last_parents[level] = name->vname;
			}
		} T_END;
	}
	referral_index_sort_merge(index);
	return index;
}

const struct referral_index_name *
referral_index_get_names(struct referral_index *index, unsigned int *count_r)
{
	return array_get(&index->names, count_r);
}

int referral_index_lookup(struct referral_index *index, const char *vname)
{
	const struct referral_index_name *name;

	name = array_bsearch(&index->names, vname, referral_index_key_cmp);
	return name == NULL ? -1 :
		(int)array_ptr_to_idx(&index->names, name);
}

const struct referral_entry *
referral_index_find_covering(struct referral_index *index, const char *vname,
			     bool *local_r)
{
	const struct referral_index_name *names, *name;
	const char *p, *cut = NULL;
	unsigned int count, levels = 0;
	char *parent;
	int idx;

	*local_r = FALSE;
	names = array_get(&index->names, &count);
	if (count == 0)
		return NULL;
	idx = referral_index_lookup(index, vname);
	if (idx >= 0 && names[idx].entry != NULL) {
		*local_r = names[idx].local;
		return names[idx].entry;
	}
	/* Subtree entries are honoured on the first REFERRAL_MAX_ANCESTORS
	   levels, as in single lookups. This runs for every listed mailbox:
	   walk up by cutting one copy of the name, deepest parent first. */
	for (p = strchr(vname, index->sep); p != NULL;
	     p = strchr(p + 1, index->sep)) {
		if (++levels > REFERRAL_MAX_ANCESTORS) {
			cut = p;
			break;
		}
	}
	/* with a cut, the first parent looked at is the 32nd level */
	parent = t_strdup_noconst(vname);
	if (cut != NULL)
		parent[cut - vname] = '\0';
	while ((p = strrchr(parent, index->sep)) != NULL) {
		parent[p - parent] = '\0';
		idx = referral_index_lookup(index, parent);
		if (idx >= 0 && names[idx].subtree_entry != NULL) {
			name = &names[idx];
			*local_r = index->is_local(name->subtree_entry,
						   index->context);
			return name->subtree_entry;
		}
	}
	return NULL;
}

bool referral_index_has_entries_below(struct referral_index *index,
				      const char *vname)
{
	const struct referral_index_name *names;
	const char *prefix;
	unsigned int count, idx;
	size_t prefix_len;

	prefix = t_strdup_printf("%s%c", vname, index->sep);
	prefix_len = strlen(prefix);
	names = array_get(&index->names, &count);
	/* the first name >= prefix; names below vname follow it */
	(void)array_bsearch_insert_pos(&index->names, prefix,
				       referral_index_key_cmp, &idx);
	for (; idx < count; idx++) {
		if (strncmp(names[idx].vname, prefix, prefix_len) != 0)
			break;
		if (names[idx].entry != NULL)
			return TRUE;
	}
	return FALSE;
}

#ifndef REFERRAL_INDEX_H
#define REFERRAL_INDEX_H

#include "referral-entry.h"

/* The directory entries of one namespace, indexed by name: built once per
   directory listing and shared by everything that needs more than one
   name (list iteration, and lookups while a listing is cached). */
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
	/* position in referral_index_get_names() */
	unsigned int idx;
};

/* Returns TRUE if this server is among entry's servers. */
typedef bool referral_index_is_local_t(const struct referral_entry *entry,
				       void *context);

/* Index entries (which must stay allocated as long as the index), all in
   one namespace with hierarchy separator sep and prefix ns_prefix. Names
   get parents added below the namespace root, for every entry that is not
   local. Everything is allocated from pool, which must be an alloconly
   pool: the index is freed with it. */
struct referral_index *
referral_index_build(pool_t pool, const ARRAY_TYPE(referral_entry) *entries,
		     char sep, const char *ns_prefix,
		     referral_index_is_local_t *is_local, void *context);

/* Returns the names sorted by name. */
struct referral_index_name *const *
referral_index_get_names(struct referral_index *index, unsigned int *count_r);
struct referral_index_name *
referral_index_lookup(struct referral_index *index, const char *vname);

/* Returns the entry covering vname: its own, else the deepest subtree
   entry above it, or NULL. local_r tells whether this server is among the
   entry's servers. */
const struct referral_entry *
referral_index_find_covering(struct referral_index *index, const char *vname,
			     bool *local_r);

#endif

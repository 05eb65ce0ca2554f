/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The namespace listings: one directory listing per namespace, validated,
   indexed and cached like single lookups (see referral-listing.h). */

#include "lib.h"
#include "array.h"
#include "mail-namespace.h"
#include "referral-directory.h"
#include "referral-cache.h"
#include "referral-index.h"
#include "referral-lookup.h"
#include "referral-listing.h"
#include "referral-plugin.h"

bool
referral_name_in_namespace(struct mail_namespace *ns, const char *name)
{
	struct mail_namespace *n, *best = NULL;
	size_t len = strlen(name);

	for (n = ns->user->namespaces; n != NULL; n = n->next) {
		if (strncmp(n->prefix, name, n->prefix_len) != 0 &&
		    !(n->prefix_len > 0 && len == n->prefix_len - 1 &&
		      strncmp(n->prefix, name, len) == 0))
			continue;
		if (best == NULL || n->prefix_len > best->prefix_len)
			best = n;
	}
	return best == ns;
}

static bool
referral_raw_entry_in_namespace(const struct referral_directory_entry *raw,
				void *context)
{
	/* e.g. "PublicArchive/x" of another namespace */
	return referral_name_in_namespace(context, raw->mailbox);
}

static bool referral_entry_is_local_cb(const struct referral_entry *entry,
				       void *context)
{
	return referral_entry_is_local(context, entry);
}

const struct referral_cache_record *
referral_listing_add(struct referral_user *ruser, const char *ns_prefix,
		     char sep,
		     const ARRAY_TYPE(referral_directory_entry) *raw_entries,
		     referral_listing_filter_t *filter, void *context)
{
	struct referral_cache_record *record;

	record = referral_cache_add(ruser->list_cache, ns_prefix);
	referral_lookup_fill_record(ruser, record, raw_entries,
				    filter, context);
	record->index = referral_index_build(record->pool, &record->entries,
					     sep, ns_prefix,
					     referral_entry_is_local_cb, ruser);
	return record;
}

const struct referral_cache_record *
referral_list_get_entries(struct referral_user *ruser,
			  struct mail_namespace *ns, bool remote_mode,
			  const char **error_r)
{
	ARRAY_TYPE(referral_directory_entry) raw_entries;
	const struct referral_cache_record *record;
	const char *root;
	pool_t pool;

	record = referral_cache_lookup(ruser->list_cache, ns->prefix);
	if (record != NULL)
		return record;
	if (!remote_mode && referral_directory_is_failing(ruser->dir)) {
		/* A plain listing needs the directory only to hide names:
		   while it is known to be failing, don't wait for it again
		   (the next lookup finds out when it is back). */
		*error_r = "directory is failing";
		return NULL;
	}

	/* the namespace root too ("Public" for "Public/"): a subtree entry
	   there covers the whole namespace, as in single lookups */
	root = ns->prefix;
	if (ns->prefix_len > 0 &&
	    ns->prefix[ns->prefix_len-1] == mail_namespace_get_sep(ns))
		root = t_strndup(ns->prefix, ns->prefix_len - 1);

	pool = pool_alloconly_create("referral list", 16384);
	p_array_init(&raw_entries, pool, 64);
	if (referral_directory_list(ruser->dir, root, pool,
				    &raw_entries, error_r) < 0) {
		pool_unref(&pool);
		return NULL;
	}
	record = referral_listing_add(ruser, ns->prefix,
				      mail_namespace_get_sep(ns), &raw_entries,
				      referral_raw_entry_in_namespace, ns);
	pool_unref(&pool);
	return record;
}

bool referral_listing_find_covering(struct referral_user *ruser,
				    const char *ns_prefix, const char *vname,
				    const struct referral_entry **entry_r)
{
	const struct referral_cache_record *record;
	bool local;

	/* a fresh listing of the namespace knows every name in it: after a
	   LIST, opening its mailboxes costs no queries */
	record = referral_cache_lookup(ruser->list_cache, ns_prefix);
	if (record == NULL || record->index == NULL)
		return FALSE;
	*entry_r = referral_index_find_covering(record->index, vname, &local);
	return TRUE;
}

int referral_listing_has_entries_below(struct referral_user *ruser,
				       const char *ns_prefix,
				       const char *vname)
{
	const struct referral_cache_record *record;

	record = referral_cache_lookup(ruser->list_cache, ns_prefix);
	if (record == NULL || record->index == NULL)
		return -1;
	return referral_index_has_entries_below(record->index, vname) ? 1 : 0;
}

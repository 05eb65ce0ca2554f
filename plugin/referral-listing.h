/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_LISTING_H
#define REFERRAL_LISTING_H

#include "referral-entry.h"

/* The namespace listings of a session: every directory entry of a
   namespace, validated and indexed (referral-index.h), cached per
   namespace prefix in referral_user.list_cache. This module alone reads and
   fills that cache; list iteration, single lookups and RENAME's check ask
   it. */

struct mail_namespace;
struct referral_user;
struct referral_cache_record;

/* Returns TRUE if name belongs to namespace ns: ns has the longest prefix
   of it among the user's namespaces (the namespace root, "Public" for
   "Public/", counts). Unlike mail_namespace_find() this never creates
   namespaces (shared ones would be, for names from the directory). */
bool referral_name_in_namespace(struct mail_namespace *ns, const char *name);

/* Get the namespace's directory entries (validated, indexed), from the
   cache or the directory. remote_mode: ask the directory even while it is
   known to be failing. Returns the record, or NULL with error_r. */
const struct referral_cache_record *
referral_list_get_entries(struct referral_user *ruser,
			  struct mail_namespace *ns, bool remote_mode,
			  const char **error_r);

/* Returns TRUE if raw entry belongs in a listing. */
typedef bool referral_listing_filter_t(const struct referral_directory_entry *raw,
				       void *context);
/* Cache raw_entries (those filter accepts) as the listing of the namespace
   with prefix ns_prefix and separator sep, replacing any older one. */
const struct referral_cache_record *
referral_listing_add(struct referral_user *ruser, const char *ns_prefix,
		     char sep,
		     const ARRAY_TYPE(referral_directory_entry) *raw_entries,
		     referral_listing_filter_t *filter, void *context);

/* Returns TRUE if a listing of the namespace is cached, with entry_r the
   entry covering vname (NULL if none). */
bool referral_listing_find_covering(struct referral_user *ruser,
				    const char *ns_prefix, const char *vname,
				    const struct referral_entry **entry_r);

/* Returns 1 if the cached listing of the namespace has entries below
   vname, 0 if it has none, -1 if no listing is cached. */
int referral_listing_has_entries_below(struct referral_user *ruser,
				       const char *ns_prefix,
				       const char *vname);

#endif

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* Mailbox names and the entries that cover them: the rules single
   lookups and the namespace index share. */

#include "lib.h"
#include "array.h"
#include "referral-name.h"

const char *const *referral_name_ancestors(const char *vname, char sep)
{
	ARRAY_TYPE(const_string) ancestors;
	const char *p, *name;

	t_array_init(&ancestors, 8);
	for (p = strchr(vname, sep); p != NULL; p = strchr(p + 1, sep)) {
		if (array_count(&ancestors) == REFERRAL_MAX_ANCESTORS ||
		    (size_t)(p - vname) > REFERRAL_MAX_NAME_LENGTH)
			break;
		name = t_strdup_until(vname, p);
		array_push_back(&ancestors, &name);
	}
	array_append_zero(&ancestors);
	return array_front(&ancestors);
}

bool referral_name_is_ancestor(const char *ancestor, const char *vname, char sep)
{
	size_t len = strlen(ancestor);

	return strncmp(ancestor, vname, len) == 0 && vname[len] == sep;
}

bool referral_entry_precedes(const struct referral_entry *entry1,
			     const struct referral_entry *entry2)
{
	if (entry1->subtree != entry2->subtree)
		return !entry1->subtree;
	/* two entries of one scope for one name: a directory mistake, but
	   every server must still make the same choice */
	return strcmp(entry1->dn, entry2->dn) < 0;
}

int referral_entry_cmp(const struct referral_entry *const *entry1,
		       const struct referral_entry *const *entry2)
{
	int ret;

	if ((ret = strcmp((*entry1)->mailbox, (*entry2)->mailbox)) != 0)
		return ret;
	if (*entry1 == *entry2)
		return 0;
	return referral_entry_precedes(*entry1, *entry2) ? -1 : 1;
}

const struct referral_entry *
referral_entries_find_covering(const ARRAY_TYPE(referral_entry) *entries,
			       const char *vname, char sep)
{
	const struct referral_entry *entry, *exact = NULL, *best = NULL;
	size_t len, best_len = 0;

	array_foreach(entries, entry) {
		if (strcmp(entry->mailbox, vname) == 0) {
			if (exact == NULL ||
			    referral_entry_precedes(entry, exact))
				exact = entry;
			continue;
		}
		if (!entry->subtree ||
		    !referral_name_is_ancestor(entry->mailbox, vname, sep))
			continue;
		len = strlen(entry->mailbox);
		if (best == NULL || len > best_len ||
		    (len == best_len && referral_entry_precedes(entry, best))) {
			best = entry;
			best_len = len;
		}
	}
	return exact != NULL ? exact : best;
}

const char *referral_entry_remote_name(const struct referral_entry *entry,
				       const char *vname)
{
	if (entry->remote_name == NULL)
		return vname;
	/* a name below a subtree entry keeps its path below the entry */
	return t_strconcat(entry->remote_name,
			   vname + strlen(entry->mailbox), NULL);
}


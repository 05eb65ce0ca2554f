/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_LOOKUP_H
#define REFERRAL_LOOKUP_H

#include "referral-entry.h"

struct referral_user;

/* Deepest hierarchy level whose subtree entries are looked for: bounds the
   size of the directory query whatever name a client sends. */
#define REFERRAL_MAX_ANCESTORS 32
/* Longest imapReferralMailbox (the schema's limit): longer names, which a
   client may send, are never looked for. */
#define REFERRAL_MAX_NAME_LENGTH 4096

/* Where a mailbox lives. Everything in it is in the data stack. */
struct referral_target {
	/* The mailbox has a directory entry of its own (not only a subtree
	   entry above it); set also when this server is among its servers. */
	bool own_entry;
	/* The mailbox's name on the remote servers. */
	const char *remote_name;
	/* The servers, in the order clients should try them. */
	ARRAY_TYPE(referral_server) servers;
};

/* Returns the names of vname's ancestors in its namespace, shallowest
   first ("Public", "Public/Sales" for "Public/Sales/Q1" with separator
   '/'), at most REFERRAL_MAX_ANCESTORS and none longer than
   REFERRAL_MAX_NAME_LENGTH. Allocated from the data stack. */
const char *const *referral_name_ancestors(const char *vname, char sep);

/* Returns TRUE if entry1 takes precedence over entry2, both for the same
   mailbox name: a mailbox-scope entry over a subtree one (so a subtree
   entry and a mailbox entry of one name can place the top mailbox and its
   children differently), else the smaller DN, so that every server of a
   deployment makes the same choice whatever order the directory uses. */
bool referral_entry_precedes(const struct referral_entry *entry1,
			     const struct referral_entry *entry2);

/* Choose the entry covering vname among entries: its own entry, else the
   deepest subtree entry above it (see referral_entry_precedes() for ties).
   Returns NULL if none covers it. */
const struct referral_entry *
referral_entries_find_covering(const ARRAY_TYPE(referral_entry) *entries,
			       const char *vname, char sep);

/* Returns the name vname has on the servers of entry. Data stack. */
const char *referral_entry_remote_name(const struct referral_entry *entry,
				       const char *vname);

struct referral_cache_record;

/* Returns TRUE if a raw entry belongs in a record. */
typedef bool referral_entry_filter_t(const struct referral_directory_entry *raw,
				     void *context);
/* Validate the raw entries that filter accepts (and whose names are safe)
   into record, logging what had to be skipped. */
void referral_lookup_fill_record(struct referral_user *ruser,
				 struct referral_cache_record *record,
				 const ARRAY_TYPE(referral_directory_entry) *raw_entries,
				 referral_entry_filter_t *filter, void *context);

/* Returns TRUE if this server is among entry's servers. */
bool referral_entry_is_local(struct referral_user *ruser,
			     const struct referral_entry *entry);

/* Index the entries of the namespace with prefix ns_prefix (for a cached
   listing), deciding which are local for ruser. */
struct referral_index *
referral_lookup_index_build(struct referral_user *ruser, pool_t pool,
			    const ARRAY_TYPE(referral_entry) *entries,
			    char sep, const char *ns_prefix);

/* Sent once per referral_lookup() call, with the fields mailbox, result
   (local, remote or unavailable), source (cache, listing or directory),
   servers (remote: HOST[:PORT] in the order given to the client) and error
   (unavailable: the text for the client). */
#define REFERRAL_EVENT_DECISION_FINISHED \
	"mailbox_referrals_decision_finished"

/* Get the entry covering vname in the namespace with prefix ns_prefix
   into entry_r (NULL if none), from the caches or the directory, as
   referral_lookup() does; source_r says where the answer came from
   ("cache", "listing" or "directory"). Returns 0, or -1 with error_r (text
   for the client) if the directory could not be asked. The entry is valid until
   the caches change. */
int referral_lookup_entry(struct referral_user *ruser, const char *ns_prefix,
			  const char *vname, char sep,
			  const struct referral_entry **entry_r,
			  const char **source_r, const char **error_r);

/* Where does the mailbox vname of the namespace with prefix ns_prefix (and
   hierarchy separator sep) live? Returns 1 and fills
   target_r (data stack) when on other servers, 0 when this server serves
   it (no entry, or this server is among the entry's servers), -1 with
   error_r (text for the client) when it can't be told: the directory is
   unavailable or the entry covering it is unusable. Every call is a
   decision and sends REFERRAL_EVENT_DECISION_FINISHED. */
int referral_lookup(struct referral_user *ruser, const char *ns_prefix,
		    const char *vname, char sep,
		    struct referral_target *target_r, const char **error_r);

/* Returns TRUE if server is this server: listed in mailbox_referrals_self,
   or the address and port the client connected to. */
bool referral_server_is_self(struct referral_user *ruser,
			     const struct referral_server *server);

/* Get the address by which clients reach this server, for URLs naming a
   mailbox it holds: the first mailbox_referrals_self entry, else the
   address the client connected to. Returns FALSE if neither is known. */
bool referral_self_host(struct referral_user *ruser,
			struct referral_host *host_r);

#endif

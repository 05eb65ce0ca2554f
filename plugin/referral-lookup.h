/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_LOOKUP_H
#define REFERRAL_LOOKUP_H

#include "referral-name.h"

struct referral_user;

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

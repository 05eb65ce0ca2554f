/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef DIRECTORY_REPLICA_H
#define DIRECTORY_REPLICA_H

#include "referral-entry.h"

/* Schema limits (ldap-schema/mailbox-referrals.schema), in characters:
   longer values are skipped as "too-long" problems. */
#define DIRECTORY_MAX_MAILBOX_CHARS 4096
#define DIRECTORY_MAX_REMOTE_NAME_CHARS 4096
#define DIRECTORY_MAX_SERVER_CHARS 256
#define DIRECTORY_MAX_SCOPE_CHARS 16
/* The DN has no schema limit; one longer than this is not served, so that
   every reply line stays within the protocol's 64 KiB. */
#define DIRECTORY_MAX_DN_BYTES 4096
/* An entry whose escaped reply line would be longer is not served. */
#define DIRECTORY_MAX_LINE_BYTES (60*1024)

/* One served entry: a single allocation holding the struct, the server
   pointers and every string, so that an entry costs one malloc. Strings
   are the directory's values, already checked for length and UTF-8. */
struct directory_entry {
	/* the other entries with the same mailbox (by_name chain) */
	struct directory_entry *next_same_name;
	/* entryUUID (hex) when following with RFC 4533, else the DN */
	const char *key;
	const char *dn;
	const char *mailbox;
	const char *scope;		/* "" when absent */
	const char *remote_name;	/* "" when absent */
	const char *const *servers;	/* NULL-terminated */
};

/* One raw value from the directory, not NUL-terminated. */
struct directory_value {
	const char *data;
	size_t size;
};

/* One entry as the directory sent it. */
struct directory_raw_entry {
	const char *key;
	const char *dn;
	/* NULL when the entry lacks the attribute */
	const struct directory_value *mailbox, *remote_name, *scope;
	const struct directory_value *servers;
	unsigned int server_count;
};

struct replica;

struct replica *replica_init(void);
void replica_ref(struct replica *replica);
void replica_unref(struct replica **replica);

/* Served entries. */
unsigned int replica_count(const struct replica *replica);
/* Served entries and those kept only for their problems: what
   mailbox_referrals_directory_max_entries bounds. */
unsigned int replica_stored_count(const struct replica *replica);
bool replica_has_key(struct replica *replica, const char *key);

/* Check raw and store it under raw->key, replacing the entry with that key.
   What is skipped is recorded as the key's problems (replacing earlier
   ones) and logged through event as warnings naming the DN. Returns TRUE
   if the entry is served. */
bool replica_set(struct replica *replica, struct event *event,
		 const struct directory_raw_entry *raw);
/* Forget the entry and the problems stored under key. */
void replica_remove(struct replica *replica, const char *key);
/* Bulk loading appends unsorted; call this once the load is complete. */
void replica_load_finished(struct replica *replica);

/* Call the callback for entries whose mailbox is name (unless name is "")
   and subtree entries whose mailbox is one of the ancestors. */
typedef void replica_entry_callback_t(const struct directory_entry *entry,
				      void *context);
void replica_lookup(struct replica *replica, const char *name,
		    const char *const *ancestors,
		    replica_entry_callback_t *callback, void *context);

/* Index of the first entry, in (mailbox, DN) order, after the position
   (after_mailbox, after_dn), or of the first entry at all when
   after_mailbox is NULL. Positions survive changes to the replica, so a
   listing resumed later continues where it stopped. */
unsigned int replica_seek(struct replica *replica, const char *prefix,
			  const char *after_mailbox, const char *after_dn);
/* The entry at index in name order, or NULL past the end. */
const struct directory_entry *
replica_entry_at(struct replica *replica, unsigned int idx);

/* Each problem is "kind<TAB>dn<TAB>text", fields already tab-escaped. */
typedef void replica_problem_callback_t(const char *line, void *context);
void replica_problems(struct replica *replica,
		      replica_problem_callback_t *callback, void *context);

#endif

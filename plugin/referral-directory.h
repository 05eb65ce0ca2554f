/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_DIRECTORY_H
#define REFERRAL_DIRECTORY_H

#include "referral-entry.h"

struct referral_settings;

/* The directory that says where mailboxes live. The referral logic sees
   only this interface; referral-directory-ldap.c is the one backend the
   plugin ships, and unit tests plug in their own. */
struct referral_directory;

struct referral_directory_vfuncs {
	void (*deinit)(struct referral_directory *dir);
	/* Find the entries whose mailbox is name (unless name is NULL), or
	   one of ancestors with subtree scope (a backend may also return
	   ancestors' entries of mailbox scope; the caller checks). At least
	   one of name and ancestors is given. Entries are allocated from
	   pool. Returns 0, or -1 with error_r when the directory could not
	   be asked (down, timeout, misconfigured). */
	int (*lookup)(struct referral_directory *dir, const char *name,
		      const char *const *ancestors, pool_t pool,
		      ARRAY_TYPE(referral_directory_entry) *entries,
		      const char **error_r);
	/* Find every entry whose mailbox starts with prefix (all entries
	   for ""), however many the directory holds. Returns 0, or -1 with
	   error_r; entries may then be incomplete. */
	int (*list)(struct referral_directory *dir, const char *prefix,
		    pool_t pool, ARRAY_TYPE(referral_directory_entry) *entries,
		    const char **error_r);
};

struct referral_directory {
	const char *name;
	struct referral_directory_vfuncs v;
	struct event *event;
	/* The event of the request in progress (NULL between requests):
	   backends may add fields of their own to it, e.g. "searches". */
	struct event *request_event;
	/* TRUE while the directory is failing: its outage has been logged
	   once and is not logged again until a query succeeds. */
	bool failing;
	/* ioloop_timeval of the command whose query last failed: the rest
	   of that command doesn't wait for the directory again */
	struct timeval failed_ioloop_timeval;
};

/* Create the directory backend for the settings (LDAP). The backend does
   not connect before the first lookup. */
struct referral_directory *
referral_directory_init(const struct referral_settings *set,
			struct event *parent_event);
void referral_directory_deinit(struct referral_directory **dir);

/* Sent once per request that reaches the backend (not for those skipped
   while the directory fails, see referral_directory_lookup()), with the
   fields operation (lookup or list), entries (how many the backend
   returned), error (on failure: the backend's error) and the backend's own
   fields. */
#define REFERRAL_EVENT_DIRECTORY_REQUEST_FINISHED \
	"mailbox_referrals_directory_request_finished"

/* Look up entries (see referral_directory_vfuncs.lookup). Failures are
   logged here, once per outage, and reported through error_r to be shown
   to the client. While the directory is failing, the rest of the command
   (one run of the ioloop) fails at once without asking it again. */
int referral_directory_lookup(struct referral_directory *dir,
			      const char *name, const char *const *ancestors,
			      pool_t pool,
			      ARRAY_TYPE(referral_directory_entry) *entries,
			      const char **error_r);

/* List entries (see referral_directory_vfuncs.list); failures are handled
   as with referral_directory_lookup(). */
int referral_directory_list(struct referral_directory *dir,
			    const char *prefix, pool_t pool,
			    ARRAY_TYPE(referral_directory_entry) *entries,
			    const char **error_r);

/* Backends */
struct referral_directory *
referral_directory_ldap_init(const struct referral_settings *set);

#endif

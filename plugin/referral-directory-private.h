/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_DIRECTORY_PRIVATE_H
#define REFERRAL_DIRECTORY_PRIVATE_H

/* What a directory backend implements, and the state every backend
   shares. Only backends (and their unit tests) include this. */

#include "referral-directory.h"

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
	/* see referral_directory_answers_fresh() */
	bool fresh_answers;
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

struct referral_directory_backend {
	/* the value of mailbox_referrals_directory that selects it */
	const char *name;
	/* Allocate the backend, parsing its own settings. Returns 0, or -1
	   with error_r. */
	int (*init)(const struct referral_directory_params *params,
		    struct referral_directory **dir_r, const char **error_r);
};

/* Make a backend available under its name (the built-in ones are
   registered at the first referral_directory_init()). */
void referral_directory_backend_register(
	const struct referral_directory_backend *backend);
void referral_directory_backend_unregister(
	const struct referral_directory_backend *backend);

extern const struct referral_directory_backend referral_directory_backend_ldap;
extern const struct referral_directory_backend referral_directory_backend_service;

#endif

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_DIRECTORY_H
#define REFERRAL_DIRECTORY_H

#include "referral-entry.h"
#include "referral-settings.h"

/* The directory that says where mailboxes live. The referral logic sees
   only this interface. Backends register by name (see
   referral-directory-private.h): "ldap" (referral-directory-ldap.c, libldap
   in this process) and "service" (referral-directory-service.c, the
   mailbox-referrals-directory service); mailbox_referrals_directory
   chooses. */
struct referral_directory;

struct referral_directory_params {
	const struct referral_settings *set;
	/* the backend's own settings (e.g. mailbox_referrals_ldap_*) */
	referral_setting_lookup_t *lookup;
	void *lookup_context;
	/* Dovecot's base_dir: where the service backend finds its socket */
	const char *base_dir;
	/* mail_plugin_dir: where backend modules are loaded from (ldap) */
	const char *module_dir;
	struct event *event_parent;
};

/* Create the directory backend named by set->directory, parsing its own
   settings. The backend does not connect before the first request.
   Returns 0, or -1 with error_r (unknown backend, invalid setting). */
int referral_directory_init(const struct referral_directory_params *params,
			    struct referral_directory **dir_r,
			    const char **error_r);
void referral_directory_deinit(struct referral_directory **dir);
/* Unload the backend modules loaded by referral_directory_init() (at the
   plugin's deinit). */
void referral_directory_backends_deinit(void);

/* Returns TRUE while the directory is failing (its outage is logged). */
bool referral_directory_is_failing(const struct referral_directory *dir);
/* Returns TRUE if the backend's answers are current and cheap (a replica
   in memory, followed within a second): sessions then keep no cache of
   their own, and plain listings look up the local names one by one instead
   of listing the whole namespace. */
bool referral_directory_answers_fresh(const struct referral_directory *dir);

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

#endif

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_SETTINGS_H
#define REFERRAL_SETTINGS_H

#include "referral-server.h"

#define REFERRAL_SETTING_PREFIX "mailbox_referrals_"

/* Settings common to every directory backend; each backend parses its own
   (mailbox_referrals_ldap_*, mailbox_referrals_directory_*). */
struct referral_settings {
	/* mailbox_referrals_directory: the backend's name */
	const char *directory;
	/* Names or prefixes of the namespaces where referrals apply. */
	const char *const *namespaces;
	/* Addresses by which this server is known (mailbox_referrals_self);
	   the address the client connected to counts too. */
	ARRAY(struct referral_host) self;
	unsigned int cache_ttl_secs;
	/* Maximum number of mailbox names kept in the cache. */
	unsigned int cache_size;
	/* Shuffle servers of equal preference per session. */
	bool shuffle;
	/* SUBSCRIBE/UNSUBSCRIBE of a remote mailbox: refer the client
	   instead of recording the subscription here. */
	bool subscriptions_refer;
};

/* Returns the value of setting name (given without the prefix), or NULL. */
typedef const char *referral_setting_lookup_t(const char *name, void *context);

/* Helpers for the parsers of the common and the backends' settings: each
   returns the default when the setting is unset or empty, and -1 with
   error_r (naming the setting) on an invalid value. */
const char *referral_setting_get(referral_setting_lookup_t *lookup,
				 void *context, const char *name);
int referral_setting_get_bool(referral_setting_lookup_t *lookup,
			      void *context, const char *name,
			      bool default_value, bool *value_r,
			      const char **error_r);
int referral_setting_get_time_msecs(referral_setting_lookup_t *lookup,
				    void *context, const char *name,
				    unsigned int default_msecs,
				    unsigned int *msecs_r,
				    const char **error_r);
int referral_setting_get_uint(referral_setting_lookup_t *lookup,
			      void *context, const char *name,
			      unsigned int default_value,
			      unsigned int *value_r, const char **error_r);

/* Parse the common mailbox_referrals_* settings, applying defaults. Returns 1 when
   referrals are enabled (mailbox_referrals_namespaces is set), 0 when they
   are not (set_r is NULL), -1 with error_r on an invalid setting. */
int referral_settings_parse(pool_t pool, referral_setting_lookup_t *lookup,
			    void *context, const struct referral_settings **set_r,
			    const char **error_r);

#endif

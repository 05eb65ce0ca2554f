/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_SETTINGS_H
#define REFERRAL_SETTINGS_H

#include "referral-server.h"

#define REFERRAL_SETTING_PREFIX "mailbox_referrals_"

enum referral_ldap_scope {
	REFERRAL_LDAP_SCOPE_BASE,
	REFERRAL_LDAP_SCOPE_ONELEVEL,
	REFERRAL_LDAP_SCOPE_SUBTREE,
};

/* Directory connection settings. Names and meanings follow Dovecot's
   dovecot-ldap.conf.ext, prefixed with mailbox_referrals_ldap_. */
struct referral_ldap_settings {
	const char *uris;	/* space-separated fail-over list */
	const char *dn;
	const char *dnpass;	/* never logged */
	const char *base;
	enum referral_ldap_scope scope;
	unsigned int timeout_msecs;
	bool tls;		/* STARTTLS */
	const char *tls_ca_cert_file;
	const char *tls_ca_cert_dir;
	const char *tls_cert_file;
	const char *tls_key_file;
	const char *tls_require_cert;	/* never|hard|demand|allow|try */
};

struct referral_settings {
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
	struct referral_ldap_settings ldap;
};

/* Returns the value of setting name (given without the prefix), or NULL. */
typedef const char *referral_setting_lookup_t(const char *name, void *context);

/* Parse all mailbox_referrals_* settings, applying defaults. Returns 1 when
   referrals are enabled (mailbox_referrals_namespaces is set), 0 when they
   are not (set_r is NULL), -1 with error_r on an invalid setting. */
int referral_settings_parse(pool_t pool, referral_setting_lookup_t *lookup,
			    void *context, const struct referral_settings **set_r,
			    const char **error_r);

#endif

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_DIRECTORY_LDAP_SETTINGS_H
#define REFERRAL_DIRECTORY_LDAP_SETTINGS_H

#include "referral-settings.h"

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

/* Parse the mailbox_referrals_ldap_* settings (lookup gets the names
   without the mailbox_referrals_ prefix), applying defaults. Returns 0, or
   -1 with error_r on a missing or invalid setting. */
int referral_ldap_settings_parse(pool_t pool,
				 referral_setting_lookup_t *lookup,
				 void *context,
				 const struct referral_ldap_settings **set_r,
				 const char **error_r);

#endif

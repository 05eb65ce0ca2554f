/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The LDAP backend's settings (mailbox_referrals_ldap_*), parsed apart
   from the common ones: by the backend in imap processes, and by the
   directory service, which reuses this parser. */

#include "lib.h"
#include "referral-directory-ldap-settings.h"

#define REFERRAL_DEFAULT_LDAP_TIMEOUT_MSECS (5*1000)

int referral_ldap_settings_parse(pool_t pool,
				 referral_setting_lookup_t *lookup,
				 void *context,
				 const struct referral_ldap_settings **set_r,
				 const char **error_r)
{
	struct referral_ldap_settings *set;
	const char *value;

	set = p_new(pool, struct referral_ldap_settings, 1);

#define LDAP_STR(field) \
	set->field = p_strdup(pool, referral_setting_get(lookup, context, \
						     "ldap_"#field))
	LDAP_STR(uris);
	LDAP_STR(dn);
	LDAP_STR(dnpass);
	LDAP_STR(base);
	LDAP_STR(tls_ca_cert_file);
	LDAP_STR(tls_ca_cert_dir);
	LDAP_STR(tls_cert_file);
	LDAP_STR(tls_key_file);
	LDAP_STR(tls_require_cert);
#undef LDAP_STR

	if (set->uris == NULL) {
		*error_r = REFERRAL_SETTING_PREFIX"ldap_uris: not set";
		return -1;
	}
	if (set->base == NULL) {
		*error_r = REFERRAL_SETTING_PREFIX"ldap_base: not set";
		return -1;
	}
	value = referral_setting_get(lookup, context, "ldap_scope");
	if (value == NULL || strcmp(value, "subtree") == 0)
		set->scope = REFERRAL_LDAP_SCOPE_SUBTREE;
	else if (strcmp(value, "onelevel") == 0)
		set->scope = REFERRAL_LDAP_SCOPE_ONELEVEL;
	else if (strcmp(value, "base") == 0)
		set->scope = REFERRAL_LDAP_SCOPE_BASE;
	else {
		*error_r = t_strdup_printf(REFERRAL_SETTING_PREFIX
			"ldap_scope: Invalid value '%s' "
			"(expected base, onelevel or subtree)", value);
		return -1;
	}
	if (set->tls_require_cert != NULL &&
	    strcmp(set->tls_require_cert, "never") != 0 &&
	    strcmp(set->tls_require_cert, "hard") != 0 &&
	    strcmp(set->tls_require_cert, "demand") != 0 &&
	    strcmp(set->tls_require_cert, "allow") != 0 &&
	    strcmp(set->tls_require_cert, "try") != 0) {
		*error_r = t_strdup_printf(REFERRAL_SETTING_PREFIX
			"ldap_tls_require_cert: Invalid value '%s' "
			"(expected never, hard, demand, allow or try)",
			set->tls_require_cert);
		return -1;
	}
	if (referral_setting_get_bool(lookup, context, "ldap_tls", FALSE,
				  &set->tls, error_r) < 0)
		return -1;
	if (referral_setting_get_time_msecs(lookup, context, "ldap_timeout",
					REFERRAL_DEFAULT_LDAP_TIMEOUT_MSECS,
					&set->timeout_msecs, error_r) < 0)
		return -1;
	if (set->timeout_msecs == 0) {
		*error_r = REFERRAL_SETTING_PREFIX"ldap_timeout: must not be 0";
		return -1;
	}
	*set_r = set;
	return 0;
}


/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_LDAP_OPTIONS_H
#define REFERRAL_LDAP_OPTIONS_H

/* The parsed mailbox_referrals_ldap_* settings as libldap's constants, for
   the two users of libldap: the ldap backend and the directory service.
   Inline in a header so that the settings parser (in the core library of
   the mail plugin, which does not link libldap) needs no <ldap.h>. Include
   after <ldap.h> and referral-directory-ldap-settings.h. */

static inline int referral_ldap_scope_option(enum referral_ldap_scope scope)
{
	switch (scope) {
	case REFERRAL_LDAP_SCOPE_BASE:
		return LDAP_SCOPE_BASE;
	case REFERRAL_LDAP_SCOPE_ONELEVEL:
		return LDAP_SCOPE_ONELEVEL;
	case REFERRAL_LDAP_SCOPE_SUBTREE:
		return LDAP_SCOPE_SUBTREE;
	}
	i_unreached();
}

/* value was checked by referral_ldap_settings_parse(); NULL is the
   default, demand */
static inline int referral_ldap_require_cert_option(const char *value)
{
	if (value == NULL || strcmp(value, "demand") == 0)
		return LDAP_OPT_X_TLS_DEMAND;
	if (strcmp(value, "never") == 0)
		return LDAP_OPT_X_TLS_NEVER;
	if (strcmp(value, "hard") == 0)
		return LDAP_OPT_X_TLS_HARD;
	if (strcmp(value, "allow") == 0)
		return LDAP_OPT_X_TLS_ALLOW;
	if (strcmp(value, "try") == 0)
		return LDAP_OPT_X_TLS_TRY;
	i_unreached();
}

#endif

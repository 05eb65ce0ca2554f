/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "strnum.h"
#include "settings-parser.h"
#include "referral-settings.h"

#define REFERRAL_DEFAULT_LDAP_TIMEOUT_MSECS (5*1000)
#define REFERRAL_DEFAULT_CACHE_TTL_SECS 60
#define REFERRAL_DEFAULT_CACHE_SIZE 1000

static const char *
referral_setting(referral_setting_lookup_t *lookup, void *context,
		 const char *name)
{
	const char *value = lookup(name, context);

	return value == NULL || *value == '\0' ? NULL : value;
}

static int
referral_setting_bool(referral_setting_lookup_t *lookup, void *context,
		      const char *name, bool default_value, bool *value_r,
		      const char **error_r)
{
	const char *value = referral_setting(lookup, context, name);

	/* the same words as Dovecot's own boolean settings (libdovecot
	   2.3 does not export its parser) */
	if (value == NULL)
		*value_r = default_value;
	else if (strcasecmp(value, "yes") == 0)
		*value_r = TRUE;
	else if (strcasecmp(value, "no") == 0)
		*value_r = FALSE;
	else {
		*error_r = t_strdup_printf(REFERRAL_SETTING_PREFIX
			"%s: Invalid boolean '%s' (expected yes or no)",
			name, value);
		return -1;
	}
	return 0;
}

static int
referral_setting_time_msecs(referral_setting_lookup_t *lookup, void *context,
			    const char *name, unsigned int default_msecs,
			    unsigned int *msecs_r, const char **error_r)
{
	const char *value = referral_setting(lookup, context, name);
	const char *error;

	if (value == NULL) {
		*msecs_r = default_msecs;
		return 0;
	}
	if (settings_get_time_msecs(value, msecs_r, &error) < 0) {
		*error_r = t_strdup_printf(REFERRAL_SETTING_PREFIX"%s: %s",
					   name, error);
		return -1;
	}
	return 0;
}

static int
referral_setting_uint(referral_setting_lookup_t *lookup, void *context,
		      const char *name, unsigned int default_value,
		      unsigned int *value_r, const char **error_r)
{
	const char *value = referral_setting(lookup, context, name);

	if (value == NULL) {
		*value_r = default_value;
		return 0;
	}
	if (str_to_uint(value, value_r) < 0) {
		*error_r = t_strdup_printf(REFERRAL_SETTING_PREFIX
			"%s: not a number: %s", name, value);
		return -1;
	}
	return 0;
}

static int
referral_settings_parse_self(pool_t pool, const char *value,
			     struct referral_settings *set,
			     const char **error_r)
{
	const char *const *hosts, *error;
	struct referral_host host;

	p_array_init(&set->self, pool, 4);
	if (value == NULL)
		return 0;
	hosts = t_strsplit_spaces(value, " ,");
	for (; *hosts != NULL; hosts++) {
		if (referral_host_parse(pool, *hosts, &host, &error) < 0) {
			*error_r = t_strdup_printf(REFERRAL_SETTING_PREFIX
				"self: Invalid HOST[:PORT] '%s': %s",
				*hosts, error);
			return -1;
		}
		array_push_back(&set->self, &host);
	}
	return 0;
}

static int
referral_settings_parse_ldap(pool_t pool, referral_setting_lookup_t *lookup,
			     void *context, struct referral_ldap_settings *set,
			     const char **error_r)
{
	const char *value;

#define LDAP_STR(field) \
	set->field = p_strdup(pool, referral_setting(lookup, context, \
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
	value = referral_setting(lookup, context, "ldap_scope");
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
	if (referral_setting_bool(lookup, context, "ldap_tls", FALSE,
				  &set->tls, error_r) < 0)
		return -1;
	if (referral_setting_time_msecs(lookup, context, "ldap_timeout",
					REFERRAL_DEFAULT_LDAP_TIMEOUT_MSECS,
					&set->timeout_msecs, error_r) < 0)
		return -1;
	if (set->timeout_msecs == 0) {
		*error_r = REFERRAL_SETTING_PREFIX"ldap_timeout: must not be 0";
		return -1;
	}
	return 0;
}

int referral_settings_parse(pool_t pool, referral_setting_lookup_t *lookup,
			    void *context, const struct referral_settings **set_r,
			    const char **error_r)
{
	struct referral_settings *set;
	const char *value;
	unsigned int ttl_msecs;

	*set_r = NULL;
	value = referral_setting(lookup, context, "namespaces");
	if (value == NULL)
		return 0;

	set = p_new(pool, struct referral_settings, 1);
	set->namespaces = (const char *const *)
		p_strsplit_spaces(pool, value, " ,");
	if (set->namespaces[0] == NULL)
		return 0;

	if (referral_settings_parse_self(pool,
		referral_setting(lookup, context, "self"), set, error_r) < 0)
		return -1;
	if (referral_setting_time_msecs(lookup, context, "cache_ttl",
			REFERRAL_DEFAULT_CACHE_TTL_SECS * 1000,
			&ttl_msecs, error_r) < 0)
		return -1;
	/* the cache counts seconds: a TTL below one second still caches */
	set->cache_ttl_secs = (ttl_msecs + 999) / 1000;
	if (referral_setting_uint(lookup, context, "cache_size",
				  REFERRAL_DEFAULT_CACHE_SIZE,
				  &set->cache_size, error_r) < 0)
		return -1;
	if (referral_setting_bool(lookup, context, "shuffle", TRUE,
				  &set->shuffle, error_r) < 0)
		return -1;
	value = referral_setting(lookup, context, "subscriptions");
	if (value == NULL || strcmp(value, "home") == 0)
		set->subscriptions_refer = FALSE;
	else if (strcmp(value, "referral") == 0)
		set->subscriptions_refer = TRUE;
	else {
		*error_r = t_strdup_printf(REFERRAL_SETTING_PREFIX
			"subscriptions: Invalid value '%s' "
			"(expected home or referral)", value);
		return -1;
	}
	if (referral_settings_parse_ldap(pool, lookup, context, &set->ldap,
					 error_r) < 0)
		return -1;
	*set_r = set;
	return 1;
}

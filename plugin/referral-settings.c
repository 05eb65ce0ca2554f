/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "strnum.h"
#include "settings-parser.h"
#include "referral-settings.h"

/* The directory service: no LDAP in mail processes (README, "The
   directory service"); ldap keeps the in-process backend. */
#define REFERRAL_DEFAULT_DIRECTORY "service"
#define REFERRAL_DEFAULT_CACHE_TTL_SECS 60
#define REFERRAL_DEFAULT_CACHE_SIZE 1000

const char *
referral_setting_get(referral_setting_lookup_t *lookup, void *context,
		     const char *name)
{
	const char *value = lookup(name, context);

	return value == NULL || *value == '\0' ? NULL : value;
}

int
referral_setting_get_bool(referral_setting_lookup_t *lookup, void *context,
		      const char *name, bool default_value, bool *value_r,
		      const char **error_r)
{
	const char *value = referral_setting_get(lookup, context, name);

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

int
referral_setting_get_time_msecs(referral_setting_lookup_t *lookup, void *context,
			    const char *name, unsigned int default_msecs,
			    unsigned int *msecs_r, const char **error_r)
{
	const char *value = referral_setting_get(lookup, context, name);
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

int
referral_setting_get_uint(referral_setting_lookup_t *lookup, void *context,
		      const char *name, unsigned int default_value,
		      unsigned int *value_r, const char **error_r)
{
	const char *value = referral_setting_get(lookup, context, name);

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

int referral_settings_parse(pool_t pool, referral_setting_lookup_t *lookup,
			    void *context, const struct referral_settings **set_r,
			    const char **error_r)
{
	struct referral_settings *set;
	const char *value;
	unsigned int ttl_msecs;

	*set_r = NULL;
	value = referral_setting_get(lookup, context, "namespaces");
	if (value == NULL)
		return 0;

	set = p_new(pool, struct referral_settings, 1);
	set->namespaces = (const char *const *)
		p_strsplit_spaces(pool, value, " ,");
	if (set->namespaces[0] == NULL)
		return 0;

	if (referral_settings_parse_self(pool,
		referral_setting_get(lookup, context, "self"), set, error_r) < 0)
		return -1;
	if (referral_setting_get_time_msecs(lookup, context, "cache_ttl",
			REFERRAL_DEFAULT_CACHE_TTL_SECS * 1000,
			&ttl_msecs, error_r) < 0)
		return -1;
	/* the cache counts seconds: a TTL below one second still caches */
	set->cache_ttl_secs = (ttl_msecs + 999) / 1000;
	if (referral_setting_get_uint(lookup, context, "cache_size",
				  REFERRAL_DEFAULT_CACHE_SIZE,
				  &set->cache_size, error_r) < 0)
		return -1;
	if (referral_setting_get_bool(lookup, context, "shuffle", TRUE,
				  &set->shuffle, error_r) < 0)
		return -1;
	value = referral_setting_get(lookup, context, "subscriptions");
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
	value = referral_setting_get(lookup, context, "directory");
	set->directory = p_strdup(pool, value != NULL ? value :
				  REFERRAL_DEFAULT_DIRECTORY);
	*set_r = set;
	return 1;
}

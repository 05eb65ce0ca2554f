/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The proxy's settings (mailbox_referrals_proxy*). They are parsed by the
   mail plugin's entry module at login, so that an invalid value fails the
   login, without loading the proxy itself (see referral-user.c). */

#include "lib.h"
#include "settings-parser.h"
#include "referral-proxy.h"

#define REFERRAL_PROXY_DEFAULT_TIMEOUT_MSECS (30*1000)
/* Searches run on the remote server (not by fetching every message
   here); sizes and headers are asked for as such; CONDSTORE/QRESYNC
   pass through where the remote server has them. */
#define REFERRAL_PROXY_DEFAULT_FEATURES \
	"rfc822.size fetch-headers search modseq"

int referral_proxy_settings_parse(pool_t pool,
				  referral_setting_lookup_t *lookup,
				  void *context,
				  const struct referral_proxy_settings **set_r,
				  const char **error_r)
{
	struct referral_proxy_settings *set;
	const char *value;

	set = p_new(pool, struct referral_proxy_settings, 1);
	value = referral_setting_get(lookup, context, "proxy");
	if (value == NULL || strcmp(value, "no") == 0)
		set->policy = REFERRAL_PROXY_NO;
	else if (strcmp(value, "unaware") == 0)
		set->policy = REFERRAL_PROXY_UNAWARE;
	else if (strcmp(value, "all") == 0)
		set->policy = REFERRAL_PROXY_ALL;
	else {
		*error_r = t_strdup_printf(REFERRAL_SETTING_PREFIX
			"proxy: Invalid value '%s' "
			"(expected no, unaware or all)", value);
		return -1;
	}
	value = referral_setting_get(lookup, context, "proxy_master_user");
	set->master_user = p_strdup(pool, value != NULL ? value : "");
	value = referral_setting_get(lookup, context, "proxy_password");
	set->password = p_strdup(pool, value != NULL ? value : "");
	value = referral_setting_get(lookup, context, "proxy_ssl");
	if (value == NULL || strcmp(value, "no") == 0)
		set->ssl = "";
	else if (strcmp(value, "imaps") == 0 || strcmp(value, "starttls") == 0)
		set->ssl = p_strdup(pool, value);
	else {
		*error_r = t_strdup_printf(REFERRAL_SETTING_PREFIX
			"proxy_ssl: Invalid value '%s' "
			"(expected no, imaps or starttls)", value);
		return -1;
	}
	if (referral_setting_get_bool(lookup, context, "proxy_ssl_verify",
				      TRUE, &set->ssl_verify, error_r) < 0)
		return -1;
	if (referral_setting_get_time_msecs(lookup, context, "proxy_timeout",
			REFERRAL_PROXY_DEFAULT_TIMEOUT_MSECS,
			&set->timeout_msecs, error_r) < 0)
		return -1;
	if (set->timeout_msecs < 1000) {
		/* imapc counts its command timeout in seconds */
		*error_r = REFERRAL_SETTING_PREFIX
			"proxy_timeout: must be at least 1s";
		return -1;
	}
	if (referral_setting_get_bool(lookup, context, "proxy_passthrough",
				      TRUE, &set->passthrough, error_r) < 0)
		return -1;
	value = referral_setting_get(lookup, context, "proxy_features");
	set->features = p_strdup(pool, value != NULL ? value :
				 REFERRAL_PROXY_DEFAULT_FEATURES);
	*set_r = set;
	return 0;
}

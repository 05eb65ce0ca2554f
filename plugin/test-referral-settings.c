/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "test-common.h"
#include "referral-directory-ldap-settings.h"
#include "referral-proxy.h"

static const char *test_setting(const char *name, void *context)
{
	const char *const *pairs = context;

	for (; *pairs != NULL; pairs += 2) {
		if (strcmp(pairs[0], name) == 0)
			return pairs[1];
	}
	return NULL;
}

/* the LDAP backend's settings of the last test_parse() */
static const struct referral_ldap_settings *test_ldap;

/* Parse the common settings and, when referrals are enabled, the LDAP
   backend's, as the plugin does with mailbox_referrals_directory = ldap. */
static int
test_parse(const char *const *pairs, const struct referral_settings **set_r,
	   const char **error_r)
{
	int ret;

	test_ldap = NULL;
	ret = referral_settings_parse(pool_datastack_create(), test_setting,
				      (void *)pairs, set_r, error_r);
	if (ret <= 0)
		return ret;
	if (referral_ldap_settings_parse(pool_datastack_create(),
					 test_setting, (void *)pairs,
					 &test_ldap, error_r) < 0)
		return -1;
	return ret;
}

static void test_referral_settings_disabled(void)
{
	static const char *none[] = { NULL };
	static const char *empty[] = { "namespaces", "", NULL };
	static const char *spaces[] = { "namespaces", "  ", NULL };
	const struct referral_settings *set;
	const char *error;

	test_begin("referral settings: disabled");
	test_assert(test_parse(none, &set, &error) == 0 && set == NULL);
	test_assert(test_parse(empty, &set, &error) == 0 && set == NULL);
	test_assert(test_parse(spaces, &set, &error) == 0 && set == NULL);
	test_end();
}

static void test_referral_settings_defaults(void)
{
	static const char *minimal[] = {
		"namespaces", "Public/",
		"ldap_uris", "ldap://127.0.0.1:3890",
		"ldap_base", "ou=referrals,dc=example,dc=com",
		NULL
	};
	const struct referral_settings *set;
	const char *error;

	test_begin("referral settings: defaults");
	test_assert(test_parse(minimal, &set, &error) == 1);
	test_assert_strcmp(set->namespaces[0], "Public/");
	test_assert(set->namespaces[1] == NULL);
	test_assert(array_count(&set->self) == 0);
	test_assert(set->cache_ttl_secs == 60);
	test_assert(set->cache_size == 1000);
	test_assert(set->shuffle);
	test_assert(!set->subscriptions_refer);
	test_assert_strcmp(set->directory, "service");
	test_assert(test_ldap->scope == REFERRAL_LDAP_SCOPE_SUBTREE);
	test_assert(test_ldap->timeout_msecs == 5000);
	test_assert(!test_ldap->tls);
	test_assert(test_ldap->dn == NULL && test_ldap->dnpass == NULL);
	test_assert(test_ldap->tls_require_cert == NULL);
	test_end();
}

static void test_referral_settings_full(void)
{
	static const char *full[] = {
		"namespaces", "Public/, shared",
		"self", "imap1.example.com 127.0.0.1:10143,[::1]:10143",
		"cache_ttl", "5 mins",
		"cache_size", "20",
		"shuffle", "no",
		"subscriptions", "referral",
		"directory", "service",
		"ldap_uris", "ldap://a ldap://b",
		"ldap_dn", "cn=imap,dc=example,dc=com",
		"ldap_dnpass", "secret",
		"ldap_base", "ou=referrals,dc=example,dc=com",
		"ldap_scope", "onelevel",
		"ldap_timeout", "1500ms",
		"ldap_tls", "yes",
		"ldap_tls_ca_cert_file", "/etc/ssl/ca.pem",
		"ldap_tls_require_cert", "hard",
		NULL
	};
	const struct referral_settings *set;
	const struct referral_host *self;
	const char *error;

	test_begin("referral settings: every setting");
	test_assert(test_parse(full, &set, &error) == 1);
	test_assert_strcmp(set->namespaces[0], "Public/");
	test_assert_strcmp(set->namespaces[1], "shared");
	test_assert(array_count(&set->self) == 3);
	self = array_idx(&set->self, 0);
	test_assert_strcmp(self->host.name, "imap1.example.com");
	test_assert(self->port == 143);
	self = array_idx(&set->self, 1);
	test_assert(self->port == 10143);
	test_assert(set->cache_ttl_secs == 300);
	test_assert(set->cache_size == 20);
	test_assert(!set->shuffle);
	test_assert(set->subscriptions_refer);
	test_assert_strcmp(set->directory, "service");
	test_assert_strcmp(test_ldap->uris, "ldap://a ldap://b");
	test_assert_strcmp(test_ldap->dnpass, "secret");
	test_assert(test_ldap->scope == REFERRAL_LDAP_SCOPE_ONELEVEL);
	test_assert(test_ldap->timeout_msecs == 1500);
	test_assert(test_ldap->tls);
	test_assert_strcmp(test_ldap->tls_ca_cert_file, "/etc/ssl/ca.pem");
	test_assert_strcmp(test_ldap->tls_require_cert, "hard");
	test_end();
}

static void test_referral_settings_invalid(void)
{
	static const struct {
		const char *key, *value, *error_part;
	} tests[] = {
		{ "ldap_uris", "", "ldap_uris" },
		{ "ldap_base", "", "ldap_base" },
		{ "ldap_scope", "sub", "ldap_scope" },
		{ "ldap_timeout", "soon", "ldap_timeout" },
		{ "ldap_timeout", "0", "ldap_timeout" },
		{ "ldap_tls", "maybe", "ldap_tls" },
		{ "ldap_tls_require_cert", "always", "ldap_tls_require_cert" },
		{ "self", "bad_host", "self" },
		{ "self", "host:99999", "self" },
		{ "cache_ttl", "-1", "cache_ttl" },
		{ "cache_size", "many", "cache_size" },
		{ "shuffle", "sometimes", "shuffle" },
		{ "subscriptions", "remote", "subscriptions" },
	};
	const char *pairs[] = {
		"namespaces", "Public/",
		"ldap_uris", "ldap://127.0.0.1",
		"ldap_base", "dc=example,dc=com",
		"ldap_dnpass", "topsecret",
		NULL, NULL, NULL
	};
	const struct referral_settings *set;
	const char *error;
	unsigned int i, j;

	test_begin("referral settings: invalid values");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		/* override the key, or add it */
		for (j = 0; pairs[j] != NULL; j += 2) {
			if (strcmp(pairs[j], tests[i].key) == 0)
				break;
		}
		const char *old_key = pairs[j], *old_value = pairs[j+1];
		pairs[j] = tests[i].key;
		pairs[j+1] = tests[i].value;
		error = NULL;
		test_assert_idx(test_parse(pairs, &set, &error) < 0, i);
		test_assert_idx(error != NULL &&
				strstr(error, tests[i].error_part) != NULL, i);
		/* the bind password never appears in an error */
		test_assert_idx(error == NULL ||
				strstr(error, "topsecret") == NULL, i);
		pairs[j] = old_key;
		pairs[j+1] = old_value;
		if (old_key == NULL)
			pairs[j+1] = NULL;
	}
	test_end();
}

static int
test_proxy_parse(const char *const *pairs,
		 const struct referral_proxy_settings **set_r,
		 const char **error_r)
{
	return referral_proxy_settings_parse(pool_datastack_create(),
					     test_setting, (void *)pairs,
					     set_r, error_r);
}

static void test_referral_proxy_settings_defaults(void)
{
	static const char *none[] = { NULL };
	static const char *no[] = { "proxy", "no", NULL };
	const struct referral_proxy_settings *set;
	const char *error;

	test_begin("referral proxy settings: defaults");
	test_assert(test_proxy_parse(none, &set, &error) == 0);
	test_assert(set->policy == REFERRAL_PROXY_NO);
	test_assert_strcmp(set->master_user, "");
	test_assert_strcmp(set->password, "");
	test_assert_strcmp(set->ssl, "");
	test_assert(set->ssl_verify);
	test_assert(set->timeout_msecs == 30*1000);
	test_assert_strcmp(set->features,
			   "rfc822.size fetch-headers search modseq");
	test_assert(test_proxy_parse(no, &set, &error) == 0);
	test_assert(set->policy == REFERRAL_PROXY_NO);
	test_end();
}

static void test_referral_proxy_settings_values(void)
{
	static const char *unaware[] = {
		"proxy", "unaware", "proxy_master_user", "mbref-proxy",
		"proxy_password", "s3cret", "proxy_ssl", "imaps",
		"proxy_ssl_verify", "no", "proxy_timeout", "5s",
		"proxy_features", "modseq", "proxy_passthrough", "no", NULL
	};
	static const char *all[] = {
		"proxy", "all", "proxy_ssl", "starttls",
		"proxy_timeout", "1s", NULL
	};
	const struct referral_proxy_settings *set;
	const char *error;

	test_begin("referral proxy settings: values");
	test_assert(test_proxy_parse(unaware, &set, &error) == 0);
	test_assert(set->policy == REFERRAL_PROXY_UNAWARE);
	test_assert_strcmp(set->master_user, "mbref-proxy");
	test_assert_strcmp(set->password, "s3cret");
	test_assert_strcmp(set->ssl, "imaps");
	test_assert(!set->ssl_verify);
	test_assert(set->timeout_msecs == 5000);
	test_assert_strcmp(set->features, "modseq");
	test_assert(!set->passthrough);
	test_assert(test_proxy_parse(all, &set, &error) == 0);
	test_assert(set->policy == REFERRAL_PROXY_ALL);
	test_assert(set->passthrough);
	test_assert_strcmp(set->ssl, "starttls");
	test_assert(set->timeout_msecs == 1000);
	test_end();
}

static void test_referral_proxy_settings_invalid(void)
{
	static const struct {
		const char *pairs[3];
		const char *error;
	} tests[] = {
		{ { "proxy", "yes", NULL },
		  "mailbox_referrals_proxy: Invalid value 'yes' "
		  "(expected no, unaware or all)" },
		{ { "proxy_ssl", "tls", NULL },
		  "mailbox_referrals_proxy_ssl: Invalid value 'tls' "
		  "(expected no, imaps or starttls)" },
		{ { "proxy_ssl_verify", "maybe", NULL },
		  "mailbox_referrals_proxy_ssl_verify: Invalid boolean "
		  "'maybe' (expected yes or no)" },
		{ { "proxy_passthrough", "sometimes", NULL },
		  "mailbox_referrals_proxy_passthrough: Invalid boolean "
		  "'sometimes' (expected yes or no)" },
		{ { "proxy_timeout", "500ms", NULL },
		  "mailbox_referrals_proxy_timeout: must be at least 1s" },
	};
	const struct referral_proxy_settings *set;
	const char *error;
	unsigned int i;

	test_begin("referral proxy settings: invalid");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		error = NULL;
		test_assert_idx(test_proxy_parse(tests[i].pairs, &set,
						 &error) < 0, i);
		test_assert_strcmp_idx(error, tests[i].error, i);
	}
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_referral_settings_disabled,
		test_referral_settings_defaults,
		test_referral_settings_full,
		test_referral_settings_invalid,
		test_referral_proxy_settings_defaults,
		test_referral_proxy_settings_values,
		test_referral_proxy_settings_invalid,
		NULL
	};
	return test_run(test_functions);
}

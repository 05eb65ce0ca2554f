/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "test-common.h"
#include "referral-entry.h"

static void
test_parse(const struct referral_directory_entry *input,
	   struct referral_entry *entry_r, ARRAY_TYPE(const_string) *warnings)
{
	t_array_init(warnings, 4);
	referral_entry_parse(pool_datastack_create(), input, entry_r, warnings);
}

static void test_referral_entry_valid(void)
{
	static const char *servers[] = {
		"20 imap3.example.com", "10 imap2.example.com:1143", NULL
	};
	struct referral_directory_entry input = {
		.dn = "imapReferralMailbox=Public/Sales,ou=referrals",
		.mailbox = "Public/Sales",
		.servers = servers,
		.remote_name = "Sales",
		.scope = "Subtree",
	};
	struct referral_entry entry;
	ARRAY_TYPE(const_string) warnings;
	const struct referral_server *server;

	test_begin("referral_entry_parse valid");
	test_parse(&input, &entry, &warnings);
	test_assert(entry.error == NULL);
	test_assert(entry.subtree);
	test_assert_strcmp(entry.remote_name, "Sales");
	test_assert(array_count(&entry.servers) == 2);
	server = array_idx(&entry.servers, 0);
	test_assert(server->preference == 20);
	test_assert(array_count(&warnings) == 0);

	input.scope = NULL;
	input.remote_name = NULL;
	test_parse(&input, &entry, &warnings);
	test_assert(!entry.subtree && entry.remote_name == NULL);
	input.scope = "mailbox";
	test_parse(&input, &entry, &warnings);
	test_assert(!entry.subtree && entry.error == NULL);
	test_end();
}

static void test_referral_entry_invalid_servers(void)
{
	static const char *servers[] = {
		"abc", "10 127.0.0.1:99999", "10 bad host", "x 127.0.0.1:1",
		"10 evil.example.com\r\nA1 OK", "10 127.0.0.1:10144", NULL
	};
	static const char *all_bad[] = { "abc", "10 [::1", NULL };
	struct referral_directory_entry input = {
		.dn = "cn=Mixed\r\n,ou=referrals",
		.mailbox = "Public/Mixed",
		.servers = servers,
	};
	struct referral_entry entry;
	ARRAY_TYPE(const_string) warnings;
	const char *const *warning;

	test_begin("referral_entry_parse invalid servers");
	test_parse(&input, &entry, &warnings);
	test_assert(entry.error == NULL);
	test_assert(array_count(&entry.servers) == 1);
	test_assert(array_count(&warnings) == 5);
	array_foreach(&warnings, warning) {
		/* the DN is named, and nothing unescaped reaches the log */
		test_assert(strstr(*warning, "cn=Mixed") != NULL);
		test_assert(strstr(*warning, "imapReferralServer") != NULL);
		test_assert(strpbrk(*warning, "\r\n") == NULL);
	}

	input.servers = all_bad;
	test_parse(&input, &entry, &warnings);
	test_assert(entry.error != NULL);
	test_assert(array_count(&entry.servers) == 0);
	test_assert(array_count(&warnings) == 3);

	input.servers = NULL;
	test_parse(&input, &entry, &warnings);
	test_assert(entry.error != NULL);
	test_end();
}

static void test_referral_entry_invalid_other(void)
{
	static const char *servers[] = { "10 imap2.example.com", NULL };
	static const char *bad_names[] = {
		"", "a\r\nb", "a\nb", "tab\there", "del\x7f", "bad\xff\xfe utf8",
		"nul\001",
	};
	struct referral_directory_entry input = {
		.dn = "cn=x", .mailbox = "Public/X", .servers = servers,
	};
	struct referral_entry entry;
	ARRAY_TYPE(const_string) warnings;
	unsigned int i;

	test_begin("referral_entry_parse invalid remote name and scope");
	for (i = 0; i < N_ELEMENTS(bad_names); i++) {
		input.remote_name = bad_names[i];
		test_parse(&input, &entry, &warnings);
		test_assert_idx(entry.error != NULL, i);
		test_assert_idx(array_count(&entry.servers) == 0, i);
		test_assert_idx(array_count(&warnings) == 1, i);
		test_assert_idx(strpbrk(array_idx_elem(&warnings, 0), "\r\n") == NULL, i);
	}
	input.remote_name = "Caf\xC3\xA9 (old) * \\ \"x\"";
	test_parse(&input, &entry, &warnings);
	test_assert(entry.error == NULL);

	input.remote_name = NULL;
	input.scope = "everything";
	test_parse(&input, &entry, &warnings);
	test_assert(entry.error != NULL);
	test_assert(array_count(&warnings) == 1);
	test_end();
}

static void test_referral_entry_many_servers(void)
{
	const char *servers[40];
	struct referral_directory_entry input = {
		.dn = "cn=many", .mailbox = "Public/Many", .servers = servers,
	};
	struct referral_entry entry;
	ARRAY_TYPE(const_string) warnings;
	const struct referral_server *server;
	unsigned int i;

	test_begin("referral_entry_parse caps the servers");
	for (i = 0; i < 39; i++) {
		servers[i] = t_strdup_printf("%u host%u.example.com",
					     100 - i, i);
	}
	servers[39] = NULL;
	test_parse(&input, &entry, &warnings);
	test_assert(entry.error == NULL);
	test_assert(array_count(&entry.servers) == REFERRAL_MAX_SERVERS);
	test_assert(array_count(&warnings) == 1);
	/* the lowest preferences are kept */
	array_foreach(&entry.servers, server)
		test_assert(server->preference <= 100 - 39 + REFERRAL_MAX_SERVERS);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_referral_entry_valid,
		test_referral_entry_invalid_servers,
		test_referral_entry_invalid_other,
		test_referral_entry_many_servers,
		NULL
	};
	return test_run(test_functions);
}

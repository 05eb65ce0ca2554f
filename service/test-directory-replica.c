/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "test-common.h"
#include "directory-replica.h"

static struct event *test_event;

static struct directory_value *value(const char *str)
{
	struct directory_value *v = t_new(struct directory_value, 1);

	v->data = str;
	v->size = strlen(str);
	return v;
}

static bool
set_entry(struct replica *replica, const char *key, const char *mailbox,
	  const char *scope, const char *server)
{
	struct directory_raw_entry raw;

	i_zero(&raw);
	raw.key = key;
	raw.dn = t_strdup_printf("cn=%s,ou=referrals", key);
	raw.mailbox = mailbox == NULL ? NULL : value(mailbox);
	raw.scope = scope == NULL ? NULL : value(scope);
	if (server != NULL) {
		raw.servers = value(server);
		raw.server_count = 1;
	}
	return replica_set(replica, test_event, &raw);
}

static void collect(const struct directory_entry *entry, void *context)
{
	string_t *str = context;

	str_printfa(str, "%s;", entry->key);
}

static const char *lookup(struct replica *replica, const char *name,
			  const char *const *ancestors)
{
	string_t *str = t_str_new(64);

	replica_lookup(replica, name, ancestors, collect, str);
	return str_c(str);
}

static const char *list(struct replica *replica, const char *prefix)
{
	string_t *str = t_str_new(64);
	const struct directory_entry *entry;
	unsigned int idx = replica_seek(replica, prefix, NULL, NULL);

	for (; (entry = replica_entry_at(replica, idx)) != NULL; idx++) {
		if (strncmp(entry->mailbox, prefix, strlen(prefix)) != 0)
			break;
		str_printfa(str, "%s;", entry->mailbox);
	}
	return str_c(str);
}

static void problem(const char *line, void *context)
{
	string_t *str = context;

	str_printfa(str, "%s|", line);
}

static void test_replica_lookup_list(void)
{
	struct replica *replica = replica_init();
	const char *ancestors[] = { "Public", "Public/P", NULL };
	const struct directory_entry *entry;
	unsigned int idx;

	test_begin("replica lookup and list");
	test_assert(set_entry(replica, "k1", "Public/S", NULL, "10 a"));
	test_assert(set_entry(replica, "k2", "Public/P", "subtree", "10 b"));
	test_assert(set_entry(replica, "k3", "Public/P/A", NULL, "10 c"));
	test_assert(set_entry(replica, "k4", "Other", NULL, "10 d"));
	replica_load_finished(replica);
	test_assert(replica_count(replica) == 4);
	test_assert_strcmp(lookup(replica, "Public/S", ancestors + 2), "k1;");
	test_assert_strcmp(lookup(replica, "Public/P/A/B", ancestors), "k2;");
	test_assert_strcmp(lookup(replica, "", ancestors), "k2;");
	test_assert_strcmp(lookup(replica, "None", ancestors + 2), "");
	test_assert_strcmp(list(replica, "Public/"),
			   "Public/P;Public/P/A;Public/S;");
	test_assert_strcmp(list(replica, ""),
			   "Other;Public/P;Public/P/A;Public/S;");

	/* changes after the load keep the order; a listing resumes after
	   its last entry even when entries came and went meanwhile */
	idx = replica_seek(replica, "Public/", "Public/P", "cn=k2,ou=referrals");
	entry = replica_entry_at(replica, idx);
	test_assert(entry != NULL && strcmp(entry->mailbox, "Public/P/A") == 0);
	test_assert(set_entry(replica, "k5", "Public/B", NULL, "10 e"));
	/* a rename: same key, new mailbox */
	test_assert(set_entry(replica, "k1", "Public/Z", NULL, "10 a"));
	replica_remove(replica, "k3");
	test_assert_strcmp(list(replica, "Public/"),
			   "Public/B;Public/P;Public/Z;");
	test_assert_strcmp(lookup(replica, "Public/S", ancestors + 2), "");
	idx = replica_seek(replica, "Public/", "Public/P", "cn=k2,ou=referrals");
	entry = replica_entry_at(replica, idx);
	test_assert(entry != NULL && strcmp(entry->mailbox, "Public/Z") == 0);
	test_assert(replica_count(replica) == 4);
	replica_unref(&replica);
	test_end();
}

static void test_replica_same_name(void)
{
	struct replica *replica = replica_init();

	test_begin("replica entries with the same mailbox");
	test_assert(set_entry(replica, "a", "M", NULL, "10 a"));
	test_assert(set_entry(replica, "b", "M", NULL, "10 b"));
	test_assert(set_entry(replica, "c", "M", NULL, "10 c"));
	replica_load_finished(replica);
	test_assert_strcmp(lookup(replica, "M", t_new(const char *, 1)),
			   "c;b;a;");
	replica_remove(replica, "b");
	test_assert_strcmp(lookup(replica, "M", t_new(const char *, 1)),
			   "c;a;");
	replica_remove(replica, "c");
	test_assert_strcmp(lookup(replica, "M", t_new(const char *, 1)), "a;");
	test_assert_strcmp(list(replica, ""), "M;");
	replica_unref(&replica);
	test_end();
}

static void test_replica_undecodable(void)
{
	struct replica *replica = replica_init();
	struct directory_raw_entry raw;
	struct directory_value mailbox, servers[2];
	string_t *str = t_str_new(256);

	test_begin("replica undecodable values");
	test_expect_errors(3);
	/* invalid UTF-8 in the mailbox: not served */
	i_zero(&raw);
	raw.key = raw.dn = "cn=u";
	mailbox.data = "Public/\xff";
	mailbox.size = strlen(mailbox.data);
	raw.mailbox = &mailbox;
	test_assert(!replica_set(replica, test_event, &raw));
	/* a NUL byte in one server value: that value is skipped */
	raw.key = raw.dn = "cn=n";
	mailbox.data = "Public/N";
	mailbox.size = strlen(mailbox.data);
	servers[0].data = "10 a\0b";
	servers[0].size = 6;
	servers[1].data = "20 good";
	servers[1].size = 7;
	raw.servers = servers;
	raw.server_count = 2;
	test_assert(replica_set(replica, test_event, &raw));
	replica_load_finished(replica);
	test_assert_strcmp(list(replica, ""), "Public/N;");
	test_assert_strcmp(replica_entry_at(replica, 0)->servers[0], "20 good");
	test_assert(replica_entry_at(replica, 0)->servers[1] == NULL);
	replica_problems(replica, problem, str);
	test_assert(strstr(str_c(str), "invalid-value\tcn=u\timapReferralMailbox "
			   "value is not valid UTF-8 text|") != NULL);
	test_assert(strstr(str_c(str), "invalid-value\tcn=n\timapReferralServer "
			   "value is not valid UTF-8 text|") != NULL);
	replica_unref(&replica);
	test_end();
}

static void test_replica_problems(void)
{
	struct replica *replica = replica_init();
	string_t *str = t_str_new(256);
	string_t *long_name = t_str_new(5000);

	test_begin("replica problems");
	test_expect_errors(3);
	str_append(long_name, "Public/");
	while (str_len(long_name) <= DIRECTORY_MAX_MAILBOX_CHARS)
		str_append_c(long_name, 'x');
	test_assert(!set_entry(replica, "m", NULL, NULL, "10 a"));
	test_assert(!set_entry(replica, "l", str_c(long_name), NULL, "10 a"));
	/* served without a server: clients answer UNAVAILABLE */
	test_assert(set_entry(replica, "s", "Public/S", NULL, NULL));
	replica_load_finished(replica);
	test_assert(replica_count(replica) == 1);
	/* unserved entries count against max_entries too */
	test_assert(replica_stored_count(replica) == 3);
	test_assert(replica_has_key(replica, "m"));
	replica_problems(replica, problem, str);
	test_assert(strstr(str_c(str), "missing-attribute\tcn=m,ou=referrals\t"
			   "imapReferralMailbox is missing|") != NULL);
	test_assert(strstr(str_c(str), "too-long\tcn=l,ou=referrals\t"
			   "imapReferralMailbox value is longer than 4096 "
			   "characters|") != NULL);
	test_assert(strstr(str_c(str), "missing-attribute\tcn=s,ou=referrals\t"
			   "imapReferralServer is missing|") != NULL);
	/* a fixed entry loses its problems */
	test_assert(set_entry(replica, "m", "Public/M", NULL, "10 a"));
	replica_remove(replica, "l");
	replica_remove(replica, "s");
	str_truncate(str, 0);
	replica_problems(replica, problem, str);
	test_assert_strcmp(str_c(str), "");
	test_assert(replica_stored_count(replica) == 1);
	test_assert(replica_count(replica) == 1);
	replica_unref(&replica);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_replica_lookup_list,
		test_replica_same_name,
		test_replica_undecodable,
		test_replica_problems,
		NULL
	};
	int ret;

	lib_init();
	test_event = event_create(NULL);
	/* warnings name the DN: expected here, not test failures */
	ret = test_run(test_functions);
	event_unref(&test_event);
	lib_deinit();
	return ret;
}

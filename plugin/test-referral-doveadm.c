/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "test-common.h"
#include "referral-entry.h"
#include "doveadm-referrals-check.h"
#include "doveadm-referrals-output.h"

/* "here.example.com" is this server */
static bool test_is_local(const struct referral_entry *entry,
			  void *context ATTR_UNUSED)
{
	const struct referral_server *server;

	array_foreach(&entry->servers, server) {
		if (strcmp(server->addr.host.name, "here.example.com") == 0)
			return TRUE;
	}
	return FALSE;
}

static void
test_entry(struct referral_check *check, const char *dn, const char *mailbox,
	   const char *scope, const char *remote_name,
	   const char *const *servers)
{
	struct referral_directory_entry raw = {
		.dn = dn,
		.mailbox = mailbox,
		.servers = servers,
		.remote_name = remote_name,
		.scope = scope,
	};
	referral_check_add_entry(check, &raw);
}

static const char *const remote[] = { "10 remote.example.com", NULL };
static const char *const here[] = { "10 here.example.com", NULL };

static const char *
test_problem_str(const struct referral_check_problem *problem)
{
	return t_strdup_printf("%s|%s|%s",
			       referral_check_kind_name(problem->kind),
			       problem->mailbox, problem->dn);
}

static void test_referral_check_clean(void)
{
	struct referral_check *check;
	unsigned int count;
	pool_t pool;

	test_begin("referral check: clean directory");
	pool = pool_alloconly_create("test check", 4096);
	check = referral_check_init(pool, '/', "Public/", test_is_local, NULL);
	test_entry(check, "cn=sales", "Public/Sales", NULL, NULL, remote);
	test_entry(check, "cn=tree", "Public/Tree", "subtree", "Tree", remote);
	test_entry(check, "cn=here", "Public/Here", "mailbox", NULL, here);
	test_entry(check, "cn=heretree", "Public/HereTree", "subtree", NULL,
		   here);
	/* one name may have an entry of each scope */
	test_entry(check, "cn=tree-top", "Public/Tree", NULL, NULL, remote);
	/* this server holds them under their remote names, in this
	   namespace and in another one */
	test_entry(check, "cn=moved", "Public/Moved 2025", NULL,
		   "Public/Moved/2025", here);
	test_entry(check, "cn=private", "Public/Private", "subtree",
		   "Shared/Private", here);
	referral_check_add_local(check, "Public/Moved/2025", TRUE, TRUE);
	referral_check_add_local(check, "Shared/Private/a", FALSE, TRUE);
	/* another namespace's name under a remote subtree entry is not
	   this namespace's business */
	referral_check_add_local(check, "Public/Tree/elsewhere", FALSE, TRUE);
	referral_check_add_local(check, "Public/Here", TRUE, TRUE);
	referral_check_add_local(check, "Public/HereTree", TRUE, FALSE);
	referral_check_add_local(check, "Public/HereTree/a", TRUE, TRUE);
	referral_check_add_local(check, "Public/Mine", TRUE, TRUE);
	(void)referral_check_finish(check, &count);
	test_assert(count == 0);
	pool_unref(&pool);
	test_end();
}

static void test_referral_check_problems(void)
{
	static const char *const mixed[] = {
		"abc", "10 remote.example.com", NULL
	};
	static const char *const bad[] = { "abc", NULL };
	static const char *const expected[] = {
		"invalid-value|Public/Bad\nName|cn=badname",
		"invalid-value|Public/BadRemote|cn=badremote",
		"invalid-value|Public/BadScope|cn=badscope",
		"duplicate|Public/Dup|cn=dup-b",
		"missing-here|Public/EmptyTree|cn=emptytree",
		"missing-here|Public/Gone|cn=gone",
		"missing-here|Public/Gone2|cn=gone2",
		"too-many-servers|Public/Many|cn=many",
		"invalid-value|Public/Mixed|cn=mixed",
		"invalid-value|Public/NoServer|cn=noserver",
		"no-server|Public/NoServer|cn=noserver",
		"local-elsewhere|Public/NoServer|cn=noserver",
		"missing-here|Public/Parent|cn=parent",
		"local-elsewhere|Public/Sales|cn=sales",
		"local-elsewhere|Public/Tree/x|cn=tree",
	};
	ARRAY_TYPE(const_string) many;
	const struct referral_check_problem *problems;
	struct referral_check *check;
	const char *value;
	unsigned int i, count;
	pool_t pool;

	test_begin("referral check: one row per problem");
	pool = pool_alloconly_create("test check", 4096);
	check = referral_check_init(pool, '/', "Public/", test_is_local, NULL);

	/* the namespace root names this server: it doesn't have to exist */
	test_entry(check, "cn=root", "Public", "subtree", NULL, here);
	test_entry(check, "cn=sales", "Public/Sales", NULL, NULL, remote);
	test_entry(check, "cn=tree", "Public/Tree", "subtree", NULL, remote);
	test_entry(check, "cn=mixed", "Public/Mixed", NULL, NULL, mixed);
	test_entry(check, "cn=noserver", "Public/NoServer", NULL, NULL, bad);
	test_entry(check, "cn=badscope", "Public/BadScope", "folder", NULL,
		   remote);
	test_entry(check, "cn=badremote", "Public/BadRemote", NULL,
		   "x\r\ny", remote);
	test_entry(check, "cn=badname", "Public/Bad\nName", NULL, NULL,
		   remote);
	/* same name and scope: the larger DN is the duplicate */
	test_entry(check, "cn=dup-b", "Public/Dup", NULL, NULL, remote);
	test_entry(check, "cn=dup-a", "Public/Dup", NULL, NULL, remote);
	test_entry(check, "cn=dup-c", "Public/Dup", "subtree", NULL, remote);
	t_array_init(&many, 20);
	for (i = 0; i < 17; i++) {
		value = t_strdup_printf("%u r%u.example.com", i, i);
		array_push_back(&many, &value);
	}
	array_append_zero(&many);
	test_entry(check, "cn=many", "Public/Many", NULL, NULL,
		   array_front(&many));
	test_entry(check, "cn=gone", "Public/Gone", NULL, NULL, here);
	/* the client-visible name exists, but clients referred here ask for
	   the remote name */
	test_entry(check, "cn=gone2", "Public/Gone2", NULL, "Public/Gone3",
		   here);
	referral_check_add_local(check, "Public/Gone2", TRUE, TRUE);
	test_entry(check, "cn=parent", "Public/Parent", NULL, NULL, here);
	test_entry(check, "cn=emptytree", "Public/EmptyTree", "subtree", NULL,
		   here);

	referral_check_add_local(check, "Public/Sales", TRUE, TRUE);
	referral_check_add_local(check, "Public/Tree/x", TRUE, TRUE);
	referral_check_add_local(check, "Public/NoServer", TRUE, TRUE);
	referral_check_add_local(check, "Public/Parent", TRUE, FALSE);
	referral_check_add_local(check, "Public/Parent/child", TRUE, TRUE);
	/* covered by the root entry, which names this server */
	referral_check_add_local(check, "Public/Mine", TRUE, TRUE);
	/* a sibling of the empty tree, not below it */
	referral_check_add_local(check, "Public/EmptyTreeX", TRUE, TRUE);

	problems = referral_check_finish(check, &count);
	test_assert(count == N_ELEMENTS(expected));
	for (i = 0; i < count && i < N_ELEMENTS(expected); i++) {
		test_assert_strcmp_idx(test_problem_str(&problems[i]),
				       expected[i], i);
		/* details never carry directory data raw */
		test_assert_idx(strpbrk(problems[i].detail, "\r\n") == NULL, i);
	}
	if (count == N_ELEMENTS(expected)) {
		test_assert_strcmp(problems[1].detail,
			"Invalid imapReferralRemoteName value \"x??y\" "
			"(empty, not UTF-8 or has control characters)");
		test_assert_strcmp(problems[3].detail,
			"Same imapReferralMailbox and scope as \"cn=dup-a\", "
			"which is used instead");
		test_assert_strcmp(problems[4].detail,
			"Names this server, but neither the mailbox nor any "
			"mailbox below it exists here");
		test_assert_strcmp(problems[6].detail,
			"Names this server, but the mailbox does not exist "
			"here under its imapReferralRemoteName "
			"\"Public/Gone3\"");
		test_assert_strcmp(problems[8].detail,
			"Ignoring invalid imapReferralServer value \"abc\": "
			"expected \"PREFERENCE HOST[:PORT]\"");
		test_assert_strcmp(problems[11].detail,
			"Exists here, but the entry covering it is unusable "
			"(no valid imapReferralServer): clients get "
			"UNAVAILABLE");
		test_assert_strcmp(problems[12].detail,
			"Names this server, but the mailbox exists here only "
			"as a hierarchy parent (\\Noselect)");
		test_assert_strcmp(problems[13].detail,
			"Exists here, but the directory places it on "
			"remote.example.com: clients are referred there and "
			"LIST hides it");
	}
	pool_unref(&pool);
	test_end();
}

static void test_doveadm_referrals_printable(void)
{
	static const struct {
		const char *input, *output;
	} tests[] = {
		{ "", "" },
		{ "Public/Caf\xc3\xa9", "Public/Caf\xc3\xa9" },
		{ "cn=a\\2Cb,ou=x", "cn=a\\2Cb,ou=x" },
		{ "a\tb\r\nc", "a\\09b\\0D\\0Ac" },
		{ "\x01\x1b[31m\x7f", "\\01\\1B[31m\\7F" },
		/* C1 controls (U+0085, U+009B CSI), not U+00A0 */
		{ "a\xc2\x85" "b\xc2\x9b\xc2\xa0",
		  "a\\C2\\85" "b\\C2\\9B\xc2\xa0" },
		/* not UTF-8: a lone byte, a truncated sequence */
		{ "a\xff" "b", "a\\FF" "b" },
		{ "a\xe2\x82", "a\\E2\\82" },
		{ "\xe2\x82x", "\\E2\\82x" },
	};
	const char *value;
	unsigned int i;

	test_begin("doveadm_referrals_printable");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		value = doveadm_referrals_printable(tests[i].input);
		test_assert_strcmp_idx(value, tests[i].output, i);
	}
	/* unchanged values are not copied */
	value = "Public/Sales";
	test_assert(doveadm_referrals_printable(value) == value);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_referral_check_clean,
		test_referral_check_problems,
		test_doveadm_referrals_printable,
		NULL
	};
	return test_run(test_functions);
}

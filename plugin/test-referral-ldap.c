/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "str.h"
#include "test-common.h"
#include "referral-ldap.h"

static void test_referral_ldap_filter_escape(void)
{
	static const struct {
		const char *input, *output;
	} tests[] = {
		{ "Public/Sales", "Public/Sales" },
		{ "*", "\\2A" },
		{ "(", "\\28" },
		{ ")", "\\29" },
		{ "\\", "\\5C" },
		{ "Public/star*(x)\\y", "Public/star\\2A\\28x\\29\\5Cy" },
		{ "a)(objectClass=*", "a\\29\\28objectClass=\\2A" },
		{ "\"quoted\" name", "\"quoted\" name" },
		{ "", "" },
	};
	string_t *str = t_str_new(64);
	unsigned int i;

	test_begin("referral_ldap_filter_escape");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		str_truncate(str, 0);
		referral_ldap_filter_escape(str, tests[i].input);
		test_assert_strcmp_idx(str_c(str), tests[i].output, i);
	}
	/* UTF-8 stays a valid filter value (either kept or escaped) */
	str_truncate(str, 0);
	referral_ldap_filter_escape(str, "Caf\xC3\xA9");
	test_assert(strcmp(str_c(str), "Caf\xC3\xA9") == 0 ||
		    strcasecmp(str_c(str), "Caf\\c3\\a9") == 0);
	test_end();
}

static void test_referral_ldap_lookup_filter(void)
{
	static const char *one[] = { "Public", NULL };
	static const char *two[] = { "Public", "Public/Sales*", NULL };

	test_begin("referral_ldap_lookup_filter");
	test_assert_strcmp(referral_ldap_lookup_filter("Top", NULL),
		"(&(objectClass=imapMailboxReferral)(imapReferralMailbox=Top))");
	test_assert_strcmp(referral_ldap_lookup_filter("Public/Sales", one),
		"(&(objectClass=imapMailboxReferral)"
		"(|(imapReferralMailbox=Public/Sales)"
		"(&(imapReferralScope=subtree)(imapReferralMailbox=Public))))");
	test_assert_strcmp(referral_ldap_lookup_filter("Public/Sales*/(Q1)", two),
		"(&(objectClass=imapMailboxReferral)"
		"(|(imapReferralMailbox=Public/Sales\\2A/\\28Q1\\29)"
		"(&(imapReferralScope=subtree)"
		"(|(imapReferralMailbox=Public)"
		"(imapReferralMailbox=Public/Sales\\2A)))))");
	/* a name too long to have an entry: only the subtrees above */
	test_assert_strcmp(referral_ldap_lookup_filter(NULL, one),
		"(&(objectClass=imapMailboxReferral)"
		"(&(imapReferralScope=subtree)(imapReferralMailbox=Public)))");
	test_end();
}

static void test_referral_ldap_list_filter(void)
{
	test_begin("referral_ldap_list_filter");
	test_assert_strcmp(referral_ldap_list_filter(""),
		"(&(objectClass=imapMailboxReferral)(imapReferralMailbox=*))");
	test_assert_strcmp(referral_ldap_list_filter("Public/*)/"),
		"(&(objectClass=imapMailboxReferral)"
		"(imapReferralMailbox=Public/\\2A\\29/*))");
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_referral_ldap_filter_escape,
		test_referral_ldap_lookup_filter,
		test_referral_ldap_list_filter,
		NULL
	};
	return test_run(test_functions);
}

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "test-common.h"
#include "referral-lookup.h"
#include "referral-index.h"

static void
test_add(pool_t pool, ARRAY_TYPE(referral_entry) *entries, const char *dn,
	 const char *mailbox, bool subtree, const char *server)
{
	struct referral_entry *entry = array_append_space(entries);
	struct referral_server *srv;
	const char *error;

	entry->dn = dn;
	entry->mailbox = mailbox;
	entry->subtree = subtree;
	p_array_init(&entry->servers, pool, 1);
	srv = array_append_space(&entry->servers);
	if (referral_server_parse(pool, server, srv, &error) < 0)
		i_unreached();
}

/* "here.example.com" is this server */
static bool test_is_local(const struct referral_entry *entry,
			  void *context ATTR_UNUSED)
{
	const struct referral_server *server = array_front(&entry->servers);

	return strcmp(server->addr.host.name, "here.example.com") == 0;
}

static const char *
test_covering(struct referral_index *index, const char *vname)
{
	const struct referral_entry *entry;
	bool local;

	entry = referral_index_find_covering(index, vname, &local);
	if (entry == NULL)
		return "none";
	return t_strdup_printf("%s%s", entry->dn, local ? " (local)" : "");
}

static void test_referral_index(void)
{
	ARRAY_TYPE(referral_entry) entries;
	struct referral_index *index;
	const struct referral_index_name *names;
	unsigned int count;
	pool_t pool;
	int idx;

	test_begin("referral_index");
	pool = pool_alloconly_create("test index", 4096);
	p_array_init(&entries, pool, 8);
	test_add(pool, &entries, "e1", "Public/Sales", FALSE, "10 remote");
	test_add(pool, &entries, "e2", "Public/Dept/Team/Box", FALSE, "10 remote");
	test_add(pool, &entries, "e3", "Public/Proj", TRUE, "10 remote");
	test_add(pool, &entries, "e4", "Public/Proj", FALSE, "10 here.example.com");
	test_add(pool, &entries, "e6", "Public/Twice", FALSE, "10 remote");
	test_add(pool, &entries, "e5", "Public/Twice", FALSE, "10 remote");
	test_add(pool, &entries, "e7", "Public/Here", FALSE, "10 here.example.com");
	test_add(pool, &entries, "e8", "Public", TRUE, "10 remote");
	index = referral_index_build(pool, &entries, '/', "Public/",
				     test_is_local, NULL);

	/* sorted, each name once, parents of remote entries added below
	   the namespace root */
	names = referral_index_get_names(index, &count);
	test_assert(count == 8);
	test_assert_strcmp(names[0].vname, "Public");
	test_assert_strcmp(names[1].vname, "Public/Dept");
	test_assert(names[1].entry == NULL && names[1].children);
	test_assert_strcmp(names[2].vname, "Public/Dept/Team");
	test_assert(names[2].children);
	idx = referral_index_lookup(index, "Public/Proj");
	test_assert(idx >= 0 && names[idx].local &&
		    strcmp(names[idx].entry->dn, "e4") == 0 &&
		    strcmp(names[idx].subtree_entry->dn, "e3") == 0);
	idx = referral_index_lookup(index, "Public/Twice");
	test_assert(idx >= 0 && strcmp(names[idx].entry->dn, "e5") == 0);
	test_assert(referral_index_lookup(index, "Public/Nothing") == -1);

	/* covering: own entry, else the deepest subtree above */
	test_assert_strcmp(test_covering(index, "Public/Sales"), "e1");
	test_assert_strcmp(test_covering(index, "Public/Proj"), "e4 (local)");
	test_assert_strcmp(test_covering(index, "Public/Proj/x/y"), "e3");
	test_assert_strcmp(test_covering(index, "Public/Here"), "e7 (local)");
	test_assert_strcmp(test_covering(index, "Public/Other"), "e8");
	test_assert_strcmp(test_covering(index, "Public/Dept"), "e8");

	/* entries below a name */
	test_assert(referral_index_has_entries_below(index, "Public/Dept"));
	test_assert(referral_index_has_entries_below(index, "Public/Dept/Team"));
	test_assert(!referral_index_has_entries_below(index, "Public/Dept/Team/Box"));
	test_assert(!referral_index_has_entries_below(index, "Public/Sale"));
	test_assert(!referral_index_has_entries_below(index, "Public/Sales"));
	pool_unref(&pool);
	test_end();
}

static void test_referral_index_deep(void)
{
	ARRAY_TYPE(referral_entry) entries;
	struct referral_index *index;
	string_t *deep = t_str_new(256), *deeper;
	unsigned int i;
	pool_t pool;

	test_begin("referral_index: subtree depth limit as in lookups");
	pool = pool_alloconly_create("test index", 4096);
	p_array_init(&entries, pool, 8);
	/* a subtree entry on level 32 counts, one on level 33 does not */
	str_append(deep, "Public");
	for (i = 1; i < REFERRAL_MAX_ANCESTORS; i++)
		str_append(deep, "/a");
	test_add(pool, &entries, "level32", p_strdup(pool, str_c(deep)),
		 TRUE, "10 remote");
	deeper = t_str_new(256);
	str_printfa(deeper, "%s/b", str_c(deep));
	test_add(pool, &entries, "level33", p_strdup(pool, str_c(deeper)),
		 TRUE, "10 other");
	index = referral_index_build(pool, &entries, '/', "Public/",
				     test_is_local, NULL);
	str_append(deeper, "/c/d");
	test_assert_strcmp(test_covering(index, str_c(deeper)), "level32");
	test_assert(str_array_length(referral_name_ancestors(str_c(deeper), '/'))
		    == REFERRAL_MAX_ANCESTORS);
	pool_unref(&pool);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_referral_index,
		test_referral_index_deep,
		NULL
	};
	return test_run(test_functions);
}

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The referral decision (covering entry, subtree mapping, self detection,
   caching, failures) against a directory backend of the test's own. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "ioloop.h"
#include "lib-event-private.h"
#include "test-common.h"
#include "referral-settings.h"
#include "referral-directory-private.h"
#include "referral-cache.h"
#include "referral-listing.h"
#include "referral-lookup.h"
#include "referral-url.h"
#include "referral-plugin.h"

/* The test directory: a NULL-terminated list of entries, each with up to
   three server values. */
struct test_entry {
	const char *mailbox, *scope, *remote_name;
	const char *servers[4];
	const char *dn; /* NULL: cn=<mailbox> */
};

static const struct test_entry test_entries[] = {
	{ "Public/Sales", NULL, NULL, { "10 imap2.example.com", NULL }, NULL },
	{ "Public/Projects", "subtree", NULL, { "10 imap3.example.com", NULL }, NULL },
	{ "Public/Projects/Secret", "subtree", "Hidden",
	  { "10 imap4.example.com:1143", NULL }, NULL },
	{ "Public/Projects/Here", NULL, NULL, { "10 imap1.example.com", NULL }, NULL },
	{ "Public/Replica", NULL, NULL,
	  { "20 imap2.example.com", "10 127.0.0.1:10143", NULL }, NULL },
	{ "Public/Multi", NULL, NULL,
	  { "30 c.example.com", "10 a.example.com", "20 b.example.com", NULL }, NULL },
	{ "Public/Old", NULL, "Archive/Old", { "10 imap2.example.com", NULL }, NULL },
	{ "Public/Broken", NULL, NULL, { "abc", NULL }, NULL },
	{ "Public/Exact", "mailbox", NULL, { "10 imap2.example.com", NULL }, NULL },
	/* a subtree entry and a mailbox entry for one name: the mailbox one
	   places the top mailbox, the subtree one what is below */
	{ "Public/Dual", "subtree", NULL, { "10 below.example.com", NULL }, NULL },
	{ "Public/Dual", NULL, NULL, { "10 top.example.com", NULL }, NULL },
	/* two entries of one scope for one name: the smaller DN wins,
	   whatever order the directory returns them in */
	{ "Public/Twice", NULL, NULL, { "10 second.example.com", NULL },
	  "cn=twice-b" },
	{ "Public/Twice", NULL, NULL, { "10 first.example.com", NULL },
	  "cn=twice-a" },
	{ NULL, NULL, NULL, { NULL }, NULL }
};

static struct {
	struct referral_directory dir;
	unsigned int lookups;
	bool fail;
} test_dir;
/* test_dir_lookup() returns every entry (a listing) */
static bool test_list_all;

static int
test_dir_lookup(struct referral_directory *dir ATTR_UNUSED,
		const char *name, const char *const *ancestors, pool_t pool,
		ARRAY_TYPE(referral_directory_entry) *entries,
		const char **error_r)
{
	const struct test_entry *te;
	struct referral_directory_entry *entry;

	test_dir.lookups++;
	if (test_dir.fail) {
		*error_r = "test directory down";
		return -1;
	}
	for (te = test_entries; te->mailbox != NULL; te++) {
		if (!test_list_all &&
		    (name == NULL || strcmp(te->mailbox, name) != 0) &&
		    !str_array_find(ancestors, te->mailbox))
			continue;
		entry = array_append_space(entries);
		entry->dn = te->dn != NULL ? te->dn :
			p_strdup_printf(pool, "cn=%s", te->mailbox);
		entry->mailbox = te->mailbox;
		entry->scope = te->scope;
		entry->remote_name = te->remote_name;
		entry->servers = te->servers;
	}
	return 0;
}

static void test_dir_deinit(struct referral_directory *dir ATTR_UNUSED)
{
}

static struct mail_user test_mail_user;
static struct referral_user test_ruser;
static struct referral_settings test_set;
static struct ip_addr test_local_ip;

static void test_setup(unsigned int cache_ttl)
{
	struct referral_host self;
	const char *error;

	i_zero(&test_dir);
	test_dir.dir.name = "test";
	test_dir.dir.v.lookup = test_dir_lookup;
	test_dir.dir.v.deinit = test_dir_deinit;
	test_dir.dir.event = event_create(NULL);

	i_zero(&test_set);
	t_array_init(&test_set.self, 2);
	if (referral_host_parse(pool_datastack_create(), "IMAP1.example.com",
				&self, &error) < 0)
		i_unreached();
	array_push_back(&test_set.self, &self);

	i_zero(&test_mail_user);
	if (net_addr2ip("127.0.0.1", &test_local_ip) < 0)
		i_unreached();
	test_mail_user.conn.local_ip = &test_local_ip;
	test_mail_user.conn.local_port = 10143;

	i_zero(&test_ruser);
	test_ruser.user = &test_mail_user;
	test_ruser.set = &test_set;
	test_ruser.event = test_dir.dir.event;
	test_ruser.dir = &test_dir.dir;
	test_ruser.cache = referral_cache_init(cache_ttl, 100);
	test_ruser.list_cache = referral_cache_init(cache_ttl, 4);
}

static void test_teardown(void)
{
	referral_cache_deinit(&test_ruser.cache);
	referral_cache_deinit(&test_ruser.list_cache);
	event_unref(&test_dir.dir.event);
}

/* Returns "local", "error", or the reply for user alice. */
static const char *test_lookup(const char *vname)
{
	struct referral_target target;
	const char *error;
	int ret;

	ret = referral_lookup(&test_ruser, "Public/", vname, '/', &target, &error);
	if (ret < 0)
		return t_strconcat("error: ", error, NULL);
	if (ret == 0)
		return "local";
	return referral_target_reply("alice", &target);
}

static void test_referral_name_ancestors(void)
{
	const char *const *anc;
	string_t *deep = t_str_new(1024);
	unsigned int i;

	test_begin("referral_name_ancestors");
	anc = referral_name_ancestors("Public/Sales/2026/Q1", '/');
	test_assert(str_array_length(anc) == 3);
	test_assert_strcmp(anc[0], "Public");
	test_assert_strcmp(anc[1], "Public/Sales");
	test_assert_strcmp(anc[2], "Public/Sales/2026");
	test_assert(referral_name_ancestors("Top", '/')[0] == NULL);
	test_assert(str_array_length(referral_name_ancestors("a.b.c", '.')) == 2);

	/* the query stays bounded whatever depth the client asks */
	str_append(deep, "Public");
	for (i = 0; i < 300; i++)
		str_append(deep, "/a");
	anc = referral_name_ancestors(str_c(deep), '/');
	test_assert(str_array_length(anc) == REFERRAL_MAX_ANCESTORS);
	test_assert_strcmp(anc[0], "Public");
	test_end();
}

static void test_referral_lookup_exact_and_subtree(void)
{
	test_begin("referral_lookup: exact and subtree entries");
	test_setup(60);
	test_assert_strcmp(test_lookup("Public/Sales"),
		"[REFERRAL imap://alice;AUTH=*@imap2.example.com/Public/Sales] "
		"Remote mailbox on imap2.example.com");
	/* a mailbox-scope entry does not cover names below it */
	test_assert_strcmp(test_lookup("Public/Sales/Q1"), "local");
	test_assert_strcmp(test_lookup("Public/Exact/Below"), "local");
	test_assert_strcmp(test_lookup("Public/Other"), "local");
	/* subtree: the top and everything below */
	test_assert_strcmp(test_lookup("Public/Projects"),
		"[REFERRAL imap://alice;AUTH=*@imap3.example.com/Public/Projects] "
		"Remote mailbox on imap3.example.com");
	test_assert_strcmp(test_lookup("Public/Projects/2026/Plan"),
		"[REFERRAL imap://alice;AUTH=*@imap3.example.com/Public/Projects/2026/Plan] "
		"Remote mailbox on imap3.example.com");
	/* the deeper subtree wins, and maps names below it */
	test_assert_strcmp(test_lookup("Public/Projects/Secret/X"),
		"[REFERRAL imap://alice;AUTH=*@imap4.example.com:1143/Hidden/X] "
		"Remote mailbox on imap4.example.com:1143");
	/* an exact entry wins over a subtree; this one is us */
	test_assert_strcmp(test_lookup("Public/Projects/Here"), "local");
	/* not a prefix match on characters, only on hierarchy */
	test_assert_strcmp(test_lookup("Public/ProjectsX"), "local");
	test_assert_strcmp(test_lookup("Public/Dual"),
		"[REFERRAL imap://alice;AUTH=*@top.example.com/Public/Dual] "
		"Remote mailbox on top.example.com");
	test_assert_strcmp(test_lookup("Public/Dual/x"),
		"[REFERRAL imap://alice;AUTH=*@below.example.com/Public/Dual/x] "
		"Remote mailbox on below.example.com");
	test_assert_strcmp(test_lookup("Public/Twice"),
		"[REFERRAL imap://alice;AUTH=*@first.example.com/Public/Twice] "
		"Remote mailbox on first.example.com");
	test_assert_strcmp(test_lookup("Public/Old"),
		"[REFERRAL imap://alice;AUTH=*@imap2.example.com/Archive/Old] "
		"Remote mailbox on imap2.example.com");
	test_teardown();
	test_end();
}

static void test_referral_lookup_servers(void)
{
	test_begin("referral_lookup: servers, order and self");
	test_setup(60);
	test_assert_strcmp(test_lookup("Public/Multi"),
		"[REFERRAL imap://alice;AUTH=*@a.example.com/Public/Multi "
		"imap://alice;AUTH=*@b.example.com/Public/Multi "
		"imap://alice;AUTH=*@c.example.com/Public/Multi] "
		"Remote mailbox on a.example.com, b.example.com, c.example.com");
	/* we are a replica (by the address the client connected to) */
	test_assert_strcmp(test_lookup("Public/Replica"), "local");
	test_mail_user.conn.local_port = 10144;
	referral_cache_clear(test_ruser.cache);
	test_assert_strcmp(test_lookup("Public/Replica"),
		"[REFERRAL imap://alice;AUTH=*@127.0.0.1:10143/Public/Replica "
		"imap://alice;AUTH=*@imap2.example.com/Public/Replica] "
		"Remote mailbox on 127.0.0.1:10143, imap2.example.com");
	test_mail_user.conn.local_ip = NULL;
	referral_cache_clear(test_ruser.cache);
	test_assert(str_begins(test_lookup("Public/Replica"), "[REFERRAL "));
	/* the unusable entry is logged (two warnings), never referred */
	test_expect_errors(2);
	test_assert_strcmp(test_lookup("Public/Broken"),
		"error: Remote mailbox has no usable server in the directory");
	test_teardown();
	test_end();
}

static void test_referral_lookup_cache(void)
{
	time_t now = ioloop_time;

	test_begin("referral_lookup: cache");
	test_setup(60);
	(void)test_lookup("Public/Sales");
	(void)test_lookup("Public/Sales");
	(void)test_lookup("Public/Nothing");
	(void)test_lookup("Public/Nothing");
	test_assert(test_dir.lookups == 2);
	/* expiry */
	ioloop_time += 61;
	(void)test_lookup("Public/Sales");
	test_assert(test_dir.lookups == 3);
	ioloop_time = now;
	test_teardown();

	test_setup(0);
	(void)test_lookup("Public/Sales");
	(void)test_lookup("Public/Sales");
	test_assert(test_dir.lookups == 2);
	test_teardown();
	test_end();
}

static bool test_accept_all(const struct referral_directory_entry *raw ATTR_UNUSED,
			    void *context ATTR_UNUSED)
{
	return TRUE;
}

/* Cache the namespace's listing as referral_list_get_entries() does. */
static void test_cache_listing(void)
{
	ARRAY_TYPE(referral_directory_entry) raw_entries;
	const char *error;

	t_array_init(&raw_entries, 16);
	test_assert(test_dir_lookup(&test_dir.dir, "", NULL,
				    pool_datastack_create(),
				    &raw_entries, &error) == 0);
	/* the broken entry's warnings, logged as with every listing */
	test_expect_errors(2);
	(void)referral_listing_add(&test_ruser, "Public/", '/', &raw_entries,
				   test_accept_all, NULL);
	test_expect_no_more_errors();
}

static void test_referral_lookup_from_listing(void)
{
	test_begin("referral_lookup: answered from a cached listing");
	test_setup(60);
	test_list_all = TRUE;
	test_cache_listing();
	test_list_all = FALSE;
	test_dir.lookups = 0;
	/* the same answers as from single queries, and no query at all */
	test_assert(str_begins(test_lookup("Public/Sales"),
		"[REFERRAL imap://alice;AUTH=*@imap2.example.com/Public/Sales]"));
	test_assert_strcmp(test_lookup("Public/Sales/Q1"), "local");
	test_assert_strcmp(test_lookup("Public/Projects/Here"), "local");
	test_assert(str_begins(test_lookup("Public/Projects/Secret/X"),
		"[REFERRAL imap://alice;AUTH=*@imap4.example.com:1143/Hidden/X]"));
	test_assert(str_begins(test_lookup("Public/Dual"),
		"[REFERRAL imap://alice;AUTH=*@top.example.com/"));
	test_assert(str_begins(test_lookup("Public/Dual/x"),
		"[REFERRAL imap://alice;AUTH=*@below.example.com/"));
	test_assert(str_begins(test_lookup("Public/Twice"),
		"[REFERRAL imap://alice;AUTH=*@first.example.com/"));
	test_assert_strcmp(test_lookup("Public/Replica"), "local");
	test_assert_strcmp(test_lookup("Public/Broken"),
		"error: Remote mailbox has no usable server in the directory");
	test_assert(test_dir.lookups == 0);
	test_teardown();
	test_end();
}

static void test_referral_lookup_failure(void)
{
	test_begin("referral_lookup: directory failure");
	test_setup(60);
	test_dir.fail = TRUE;
	test_expect_error_string("test directory down");
	test_assert_strcmp(test_lookup("Public/Sales"),
		"error: Referral directory is unavailable, try again later");
	test_expect_no_more_errors();
	/* the rest of the same command doesn't ask again */
	test_assert_strcmp(test_lookup("Public/Other"),
		"error: Referral directory is unavailable, try again later");
	test_assert(test_dir.lookups == 1);
	/* the next command does; failures are not cached, and the outage
	   is logged once */
	ioloop_timeval.tv_usec++;
	test_assert_strcmp(test_lookup("Public/Sales"),
		"error: Referral directory is unavailable, try again later");
	test_assert(test_dir.lookups == 2);
	ioloop_timeval.tv_usec++;
	test_dir.fail = FALSE;
	test_assert(str_begins(test_lookup("Public/Sales"), "[REFERRAL "));
	test_assert(!test_dir.dir.failing);
	test_teardown();
	test_end();
}

/* The named events sent while capturing, one line each: the name and the
   fields that are set, in a fixed order. */
static ARRAY_TYPE(const_string) test_events;
static pool_t test_events_pool;

static bool
test_event_callback(struct event *event, enum event_callback_type type,
		    struct failure_context *ctx,
		    const char *fmt ATTR_UNUSED, va_list args ATTR_UNUSED)
{
	static const char *const keys[] = {
		"operation", "entries", "mailbox", "result", "source",
		"servers", "error", NULL
	};
	const char *const *key, *value, *line;
	string_t *str;

	if (type != EVENT_CALLBACK_TYPE_SEND)
		return TRUE;
	if (event->sending_name == NULL ||
	    !str_begins(event->sending_name, "mailbox_referrals_")) {
		/* forced debug would log the other debug lines too */
		return ctx->type != LOG_TYPE_DEBUG;
	}
	str = t_str_new(128);
	str_append(str, event->sending_name);
	for (key = keys; *key != NULL; key++) {
		value = event_find_field_recursive_str(event, *key);
		if (value != NULL)
			str_printfa(str, " %s=%s", *key, value);
	}
	line = p_strdup(test_events_pool, str_c(str));
	array_push_back(&test_events, &line);
	/* not logged: the lines are checked here */
	return FALSE;
}

/* Check the captured events against expected (NULL-terminated) and forget
   them. */
static void test_events_check(const char *const *expected)
{
	const char *const *lines;
	unsigned int i, count;

	lines = array_get(&test_events, &count);
	for (i = 0; i < count && expected[i] != NULL; i++)
		test_assert_strcmp_idx(lines[i], expected[i], i);
	/* as many as expected: no more, no fewer */
	test_assert_idx(i == count && expected[i] == NULL, i);
	array_clear(&test_events);
	p_clear(test_events_pool);
}

static void test_referral_lookup_events(void)
{
	test_begin("referral_lookup: events");
	test_setup(60);
	i_array_init(&test_events, 8);
	test_events_pool = pool_alloconly_create("test events", 1024);
	/* e_debug() sends events only when someone wants them: the stats
	   process or a debug filter in a server, forced debug here */
	event_set_forced_debug(test_ruser.event, TRUE);
	event_register_callback(test_event_callback);

	(void)test_lookup("Public/Multi");
	(void)test_lookup("Public/Multi");
	(void)test_lookup("Public/Replica");
	(void)test_lookup("Public/Nothing");
	test_events_check((const char *const []){
		"mailbox_referrals_directory_request_finished "
		"operation=lookup entries=1",
		"mailbox_referrals_decision_finished mailbox=Public/Multi "
		"result=remote source=directory "
		"servers=a.example.com b.example.com c.example.com",
		"mailbox_referrals_decision_finished mailbox=Public/Multi "
		"result=remote source=cache "
		"servers=a.example.com b.example.com c.example.com",
		"mailbox_referrals_directory_request_finished "
		"operation=lookup entries=1",
		"mailbox_referrals_decision_finished mailbox=Public/Replica "
		"result=local source=directory",
		"mailbox_referrals_directory_request_finished "
		"operation=lookup entries=0",
		"mailbox_referrals_decision_finished mailbox=Public/Nothing "
		"result=local source=directory",
		NULL
	});

	/* unusable entries and a failing directory; a lookup skipped while
	   the directory fails is a decision without a request */
	test_expect_errors(2);
	(void)test_lookup("Public/Broken");
	test_expect_no_more_errors();
	test_dir.fail = TRUE;
	ioloop_timeval.tv_usec++;
	test_expect_error_string("test directory down");
	(void)test_lookup("Public/Sales");
	test_expect_no_more_errors();
	(void)test_lookup("Public/Sales");
	test_events_check((const char *const []){
		"mailbox_referrals_directory_request_finished "
		"operation=lookup entries=1",
		"mailbox_referrals_decision_finished mailbox=Public/Broken "
		"result=unavailable source=directory "
		"error=Remote mailbox has no usable server in the directory",
		"mailbox_referrals_directory_request_finished "
		"operation=lookup entries=0 error=test directory down",
		"mailbox_referrals_decision_finished mailbox=Public/Sales "
		"result=unavailable source=directory "
		"error=Referral directory is unavailable, try again later",
		"mailbox_referrals_decision_finished mailbox=Public/Sales "
		"result=unavailable source=directory "
		"error=Referral directory is unavailable, try again later",
		NULL
	});

	/* a cached listing answers */
	test_dir.fail = FALSE;
	ioloop_timeval.tv_usec++;
	test_list_all = TRUE;
	test_cache_listing();
	test_list_all = FALSE;
	(void)test_lookup("Public/Projects/Here");
	test_events_check((const char *const []){
		"mailbox_referrals_decision_finished "
		"mailbox=Public/Projects/Here result=local source=listing",
		NULL
	});

	event_unregister_callback(test_event_callback);
	array_free(&test_events);
	pool_unref(&test_events_pool);
	test_teardown();
	test_end();
}

static int
test_backend_init(const struct referral_directory_params *params ATTR_UNUSED,
		  struct referral_directory **dir_r,
		  const char **error_r ATTR_UNUSED)
{
	i_zero(&test_dir);
	test_dir.dir.name = "test";
	test_dir.dir.v.lookup = test_dir_lookup;
	test_dir.dir.v.deinit = test_dir_deinit;
	*dir_r = &test_dir.dir;
	return 0;
}

static const struct referral_directory_backend test_backend = {
	.name = "test",
	.init = test_backend_init,
};

static void test_referral_directory_registry(void)
{
	static const char *const ancestors[] = { "Public", NULL };
	struct referral_settings set;
	struct referral_directory_params params;
	struct referral_directory *dir;
	ARRAY_TYPE(referral_directory_entry) entries;
	const char *error;

	test_begin("referral directory: backends by name");
	i_zero(&set);
	i_zero(&params);
	params.set = &set;
	set.directory = "test";
	test_assert(referral_directory_init(&params, &dir, &error) < 0);
	test_assert_strcmp(error, "mailbox_referrals_directory: Unknown "
			   "directory backend 'test' (expected ldap or service)");
	referral_directory_backend_register(&test_backend);
	test_assert(referral_directory_init(&params, &dir, &error) == 0);
	test_assert(dir == &test_dir.dir && dir->event != NULL);
	test_assert(!referral_directory_answers_fresh(dir));
	t_array_init(&entries, 4);
	test_assert(referral_directory_lookup(dir, "Public/Sales", ancestors,
		pool_datastack_create(), &entries, &error) == 0);
	test_assert(array_count(&entries) == 1 && test_dir.lookups == 1);
	referral_directory_deinit(&dir);
	referral_directory_backend_unregister(&test_backend);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_referral_name_ancestors,
		test_referral_lookup_exact_and_subtree,
		test_referral_lookup_servers,
		test_referral_lookup_cache,
		test_referral_lookup_from_listing,
		test_referral_lookup_failure,
		test_referral_lookup_events,
		test_referral_directory_registry,
		NULL
	};
	return test_run(test_functions);
}

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "test-common.h"
#include "imap-url.h"
#include "referral-lookup.h"
#include "referral-url.h"

static struct referral_host test_host(const char *str)
{
	struct referral_host host;
	const char *error;

	if (referral_host_parse(pool_datastack_create(), str, &host, &error) < 0)
		i_panic("%s: %s", str, error);
	return host;
}

static void test_referral_url_create(void)
{
	static const struct {
		const char *user, *host, *mailbox, *url;
	} tests[] = {
		{ "alice", "imap2.example.com", "Public/Sales",
		  "imap://alice;AUTH=*@imap2.example.com/Public/Sales" },
		{ "alice", "127.0.0.1:10144", "Public/Sales",
		  "imap://alice;AUTH=*@127.0.0.1:10144/Public/Sales" },
		{ "alice", "imap2.example.com:143", "INBOX",
		  "imap://alice;AUTH=*@imap2.example.com/INBOX" },
		{ "carol@example.com", "h", "Public/Sales",
		  "imap://carol%40example.com;AUTH=*@h/Public/Sales" },
		{ "d;x:y", "h", "M", "imap://d%3Bx%3Ay;AUTH=*@h/M" },
		/* upper-case escapes (RFC 3986 section 2.1) */
		{ "alice", "h", "Public/Sales Team",
		  "imap://alice;AUTH=*@h/Public/Sales%20Team" },
		{ "alice", "h", "Public/100%",
		  "imap://alice;AUTH=*@h/Public/100%25" },
		{ "alice", "h", "Public/Caf\xC3\xA9",
		  "imap://alice;AUTH=*@h/Public/Caf%C3%A9" },
		{ "alice", "h", "Public/a?b#c;d",
		  "imap://alice;AUTH=*@h/Public/a%3Fb%23c%3Bd" },
		{ "alice", "h", "Public/star*(x)\\y\"",
		  "imap://alice;AUTH=*@h/Public/star*(x)%5Cy%22" },
		{ "alice", "[::1]:1143", "M", "imap://alice;AUTH=*@[::1]:1143/M" },
		{ NULL, "h", "Public/Sales", "imap://h/Public/Sales" },
	};
	struct referral_host host;
	struct imap_url *url;
	const char *str, *error;
	unsigned int i;

	test_begin("referral_url_create");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		host = test_host(tests[i].host);
		str = referral_url_create(tests[i].user, &host, tests[i].mailbox);
		test_assert_strcmp_idx(str, tests[i].url, i);
		/* and Dovecot's own parser reads back what we wrote */
		test_assert_idx(imap_url_parse(str, NULL, 0, &url, &error) == 0, i);
		test_assert_strcmp_idx(url->mailbox, tests[i].mailbox, i);
		if (tests[i].user != NULL)
			test_assert_strcmp_idx(url->userid, tests[i].user, i);
	}
	test_end();
}

static void test_referral_target_reply(void)
{
	struct referral_target target;
	struct referral_server server;

	test_begin("referral_target_reply");
	i_zero(&target);
	target.remote_name = "Public/Sales";
	t_array_init(&target.servers, 2);
	i_zero(&server);
	server.preference = 10;
	server.addr = test_host("127.0.0.1:10145");
	array_push_back(&target.servers, &server);
	test_assert_strcmp(referral_target_reply("alice", &target),
		"[REFERRAL imap://alice;AUTH=*@127.0.0.1:10145/Public/Sales] "
		"Remote mailbox on 127.0.0.1:10145");
	server.preference = 20;
	server.addr = test_host("imap2.example.com");
	array_push_back(&target.servers, &server);
	test_assert_strcmp(referral_target_reply("alice", &target),
		"[REFERRAL imap://alice;AUTH=*@127.0.0.1:10145/Public/Sales "
		"imap://alice;AUTH=*@imap2.example.com/Public/Sales] "
		"Remote mailbox on 127.0.0.1:10145, imap2.example.com");
	test_end();
}

static void
test_side_add(struct referral_rename_side *side, unsigned int pref,
	      const char *host)
{
	struct referral_server *server = array_append_space(&side->servers);

	server->preference = pref;
	server->addr = test_host(host);
}

static void test_referral_rename_reply(void)
{
	struct referral_rename_side old_side, new_side;

	test_begin("referral_rename_reply");
	/* remote old name, local new name: one cross-server pair */
	old_side.name = "Public/Sales";
	t_array_init(&old_side.servers, 4);
	test_side_add(&old_side, 10, "imap2.example.com");
	new_side.name = "Public/Sales 2026";
	t_array_init(&new_side.servers, 4);
	test_side_add(&new_side, 0, "imap1.example.com");
	test_assert_strcmp(referral_rename_reply("alice", &old_side, &new_side),
		"[REFERRAL imap://alice;AUTH=*@imap2.example.com/Public/Sales "
		"imap://alice;AUTH=*@imap1.example.com/Public/Sales%202026] "
		"Cannot rename across servers "
		"(imap2.example.com to imap1.example.com)");

	/* replicas on both sides: the pair on one server comes first,
	   then by preference */
	test_side_add(&old_side, 20, "imap3.example.com");
	array_clear(&new_side.servers);
	test_side_add(&new_side, 10, "imap4.example.com");
	test_side_add(&new_side, 20, "imap3.example.com");
	test_assert_strcmp(referral_rename_reply("alice", &old_side, &new_side),
		"[REFERRAL "
		"imap://alice;AUTH=*@imap3.example.com/Public/Sales "
		"imap://alice;AUTH=*@imap3.example.com/Public/Sales%202026 "
		"imap://alice;AUTH=*@imap2.example.com/Public/Sales "
		"imap://alice;AUTH=*@imap4.example.com/Public/Sales%202026 "
		"imap://alice;AUTH=*@imap2.example.com/Public/Sales "
		"imap://alice;AUTH=*@imap3.example.com/Public/Sales%202026 "
		"imap://alice;AUTH=*@imap3.example.com/Public/Sales "
		"imap://alice;AUTH=*@imap4.example.com/Public/Sales%202026] "
		"Rename on remote server imap3.example.com");
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_referral_url_create,
		test_referral_target_reply,
		test_referral_rename_reply,
		NULL
	};
	return test_run(test_functions);
}

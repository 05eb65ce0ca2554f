/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "test-common.h"
#include "referral-server.h"

static void test_referral_host_parse(void)
{
	static const struct {
		const char *input, *output;
		in_port_t port;
	} valid[] = {
		{ "imap2.example.com", "imap2.example.com", 143 },
		{ "imap2.example.com:993", "imap2.example.com:993", 993 },
		{ "IMAP2.Example.COM:143", "IMAP2.Example.COM", 143 },
		{ "127.0.0.1:10144", "127.0.0.1:10144", 10144 },
		{ "[::1]", "[::1]", 143 },
		{ "[::1]:1143", "[::1]:1143", 1143 },
		{ "localhost:65535", "localhost:65535", 65535 },
	};
	static const char *invalid[] = {
		"", ":143", "host:", "host:0", "host:65536", "host:12x",
		"bad host", "host]", "[::1", "user@host", "host/path",
		"host\r\nA1 OK", "h\001st", "-leading.example.com",
		"host:143 ", " host",
	};
	struct referral_host host;
	const char *error;
	unsigned int i;

	test_begin("referral_host_parse");
	for (i = 0; i < N_ELEMENTS(valid); i++) {
		test_assert_idx(referral_host_parse(pool_datastack_create(),
			valid[i].input, &host, &error) == 0, i);
		test_assert_idx(host.port == valid[i].port, i);
		test_assert_strcmp_idx(referral_host_to_string(&host),
				       valid[i].output, i);
	}
	for (i = 0; i < N_ELEMENTS(invalid); i++) {
		error = NULL;
		test_assert_idx(referral_host_parse(pool_datastack_create(),
			invalid[i], &host, &error) < 0, i);
		test_assert_idx(error != NULL, i);
	}
	test_end();
}

static void test_referral_server_parse(void)
{
	static const char *invalid[] = {
		"imap2.example.com", "10", "10 ", "x imap2.example.com",
		"-1 imap2.example.com", "65536 imap2.example.com",
		"10  imap2.example.com", "10 imap2.example.com extra",
		"1e3 host", " 10 host",
	};
	struct referral_server server;
	const char *error;
	unsigned int i;

	test_begin("referral_server_parse");
	test_assert(referral_server_parse(pool_datastack_create(),
		"20 imap3.example.com:1143", &server, &error) == 0);
	test_assert(server.preference == 20);
	test_assert_strcmp(server.addr.host.name, "imap3.example.com");
	test_assert(server.addr.port == 1143);
	test_assert(referral_server_parse(pool_datastack_create(),
		"0 10.1.2.3", &server, &error) == 0);
	test_assert(server.preference == 0 && server.addr.port == 143);
	test_assert(server.addr.host.ip.family == AF_INET);
	for (i = 0; i < N_ELEMENTS(invalid); i++) {
		test_assert_idx(referral_server_parse(pool_datastack_create(),
			invalid[i], &server, &error) < 0, i);
	}
	test_end();
}

static void test_referral_host_equals(void)
{
	struct referral_host a, b;
	struct ip_addr ip;
	const char *error;
	pool_t pool = pool_datastack_create();

	test_begin("referral_host_equals");
	test_assert(referral_host_parse(pool, "Imap2.Example.com", &a, &error) == 0);
	test_assert(referral_host_parse(pool, "imap2.example.COM:143", &b, &error) == 0);
	test_assert(referral_host_equals(&a, &b));
	test_assert(referral_host_parse(pool, "imap2.example.com:144", &b, &error) == 0);
	test_assert(!referral_host_equals(&a, &b));
	test_assert(referral_host_parse(pool, "[::1]:10", &a, &error) == 0);
	test_assert(referral_host_parse(pool, "[0:0::1]:10", &b, &error) == 0);
	test_assert(referral_host_equals(&a, &b));
	test_assert(referral_host_parse(pool, "127.0.0.1:10", &b, &error) == 0);
	test_assert(!referral_host_equals(&a, &b));

	test_assert(net_addr2ip("127.0.0.1", &ip) == 0);
	test_assert(referral_host_is_ip_port(&b, &ip, 10));
	test_assert(!referral_host_is_ip_port(&b, &ip, 11));
	test_assert(referral_host_parse(pool, "localhost:10", &a, &error) == 0);
	/* names are not resolved */
	test_assert(!referral_host_is_ip_port(&a, &ip, 10));
	test_end();
}

static const char *
test_servers_order(const char *const *values, unsigned int seed)
{
	ARRAY_TYPE(referral_server) servers;
	struct referral_server server;
	const struct referral_server *s;
	const char *error;
	string_t *str = t_str_new(128);

	t_array_init(&servers, 8);
	for (; *values != NULL; values++) {
		if (referral_server_parse(pool_datastack_create(), *values,
					  &server, &error) < 0)
			i_unreached();
		array_push_back(&servers, &server);
	}
	referral_servers_sort(&servers, seed);
	array_foreach(&servers, s) {
		if (str_len(str) > 0)
			str_append_c(str, ' ');
		str_append(str, referral_host_to_string(&s->addr));
	}
	return str_c(str);
}

static void test_referral_servers_sort(void)
{
	static const char *values[] = {
		"20 c", "10 b", "30 d", "10 a", "5 z", NULL
	};
	static const char *equal[] = {
		"10 a", "10 b", "10 c", "10 d", "10 e", "10 f", "1 first", NULL
	};
	const char *order, *first_order;
	bool changed = FALSE;
	unsigned int seed;

	test_begin("referral_servers_sort");
	/* without shuffling: by preference, ties in directory order */
	test_assert_strcmp(test_servers_order(values, 0), "z b a c d");
	test_assert_strcmp(test_servers_order(equal, 0), "first a b c d e f");

	/* shuffling reorders only ties, stably for one seed, and different
	   seeds give different orders */
	first_order = test_servers_order(equal, 1);
	for (seed = 1; seed < 50; seed++) {
		order = test_servers_order(equal, seed);
		test_assert_idx(str_begins(order, "first "), seed);
		test_assert_strcmp_idx(order, test_servers_order(equal, seed), seed);
		order = test_servers_order(values, seed);
		test_assert_idx(str_begins(order, "z ") &&
				strcmp(order + strlen(order) - 4, " c d") == 0,
				seed);
		if (strcmp(test_servers_order(equal, seed), first_order) != 0)
			changed = TRUE;
	}
	test_assert(changed);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_referral_host_parse,
		test_referral_server_parse,
		test_referral_host_equals,
		test_referral_servers_sort,
		NULL
	};
	return test_run(test_functions);
}

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The service backend's client against a peer played by the test: one end
   of a socketpair, with the peer's lines written before the request (the
   client is synchronous), and a peer thread on a UNIX socket for
   reconnecting. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strescape.h"
#include "net.h"
#include "write-full.h"
#include "unlink-directory.h"
#include "test-common.h"
#include "referral-directory-private.h"
#include "referral-directory-service.h"

#include <unistd.h>
#include <sys/socket.h>
#include <pthread.h>
#include <sys/stat.h>

#define VERSION_LINE "VERSION\tmailbox-referrals-directory\t1\t0\n"

static const char *test_socket_path;
static const char *test_timeout = "5s";
static struct referral_directory *test_dir;
static int test_peer_fd = -1;

static const char *test_setting(const char *name, void *context ATTR_UNUSED)
{
	if (strcmp(name, "directory_socket") == 0)
		return test_socket_path;
	if (strcmp(name, "directory_timeout") == 0)
		return test_timeout;
	return NULL;
}

static void test_dir_init(void)
{
	struct referral_settings set;
	struct referral_directory_params params;
	const char *error;

	i_zero(&set);
	set.directory = "service";
	i_zero(&params);
	params.set = &set;
	params.lookup = test_setting;
	params.base_dir = "/nonexistent";
	if (referral_directory_init(&params, &test_dir, &error) < 0)
		i_fatal("referral_directory_init() failed: %s", error);
}

/* Connect the client to a new socketpair; the test keeps the peer's end. */
static void test_attach_pair(void)
{
	int fds[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0)
		i_fatal("socketpair() failed: %m");
	if (test_peer_fd != -1)
		i_close_fd(&test_peer_fd);
	test_peer_fd = fds[0];
	referral_directory_service_attach_fd(test_dir, fds[1]);
}

static void test_deinit(void)
{
	if (test_peer_fd != -1)
		i_close_fd(&test_peer_fd);
	referral_directory_deinit(&test_dir);
}

static void test_peer_send(const char *data)
{
	size_t len = strlen(data);

	if (write_full(test_peer_fd, data, len) < 0)
		i_fatal("write() failed: %m");
}

/* Returns what the client sent since the last call. */
static const char *test_peer_received(void)
{
	string_t *str = t_str_new(256);
	char buf[1024];
	ssize_t ret;

	fd_set_nonblock(test_peer_fd, TRUE);
	while ((ret = read(test_peer_fd, buf, sizeof(buf))) > 0)
		str_append_data(str, buf, ret);
	fd_set_nonblock(test_peer_fd, FALSE);
	return str_c(str);
}

static int
test_lookup(const char *name, const char *const *ancestors,
	    ARRAY_TYPE(referral_directory_entry) *entries, const char **error_r)
{
	t_array_init(entries, 4);
	*error_r = NULL;
	return test_dir->v.lookup(test_dir, name, ancestors,
				  pool_datastack_create(), entries, error_r);
}

static void test_service_lookup(void)
{
	static const char *const ancestors[] = { "Public", NULL };
	ARRAY_TYPE(referral_directory_entry) entries;
	const struct referral_directory_entry *entry;
	const char *error;

	test_begin("service client: LOOKUP and its entries");
	test_dir_init();
	test_attach_pair();
	test_peer_send(VERSION_LINE
		"E\t1\tcn=Sales\tPublic/Sales\t\t\t10 imap2.example.com\n"
		"E\t1\tcn=a\001tb\001nc\tPublic\tsubtree\tOther\001\001x\t"
		"10 imap3.example.com\t20 imap4.example.com:1143\n"
		"OK\t1\n");
	test_assert(test_lookup("Public/Sales", ancestors, &entries,
				&error) == 0);
	test_assert_strcmp(test_peer_received(), VERSION_LINE
			   "LOOKUP\t1\tPublic/Sales\tPublic\n");
	test_assert(array_count(&entries) == 2);
	entry = array_idx(&entries, 0);
	test_assert_strcmp(entry->dn, "cn=Sales");
	test_assert_strcmp(entry->mailbox, "Public/Sales");
	test_assert(entry->scope == NULL && entry->remote_name == NULL);
	test_assert(str_array_length(entry->servers) == 1);
	test_assert_strcmp(entry->servers[0], "10 imap2.example.com");
	entry = array_idx(&entries, 1);
	/* every field unescaped */
	test_assert_strcmp(entry->dn, "cn=a\tb\nc");
	test_assert_strcmp(entry->scope, "subtree");
	test_assert_strcmp(entry->remote_name, "Other\001x");
	test_assert(str_array_length(entry->servers) == 2);
	test_assert_strcmp(entry->servers[1], "20 imap4.example.com:1143");

	/* the connection is kept: no new VERSION, the next id; names with
	   TAB and LF are escaped; no name is an empty field */
	test_peer_send("OK\t2\n");
	test_assert(test_lookup("Pub\tlic\n", NULL, &entries, &error) == 0);
	test_assert(array_count(&entries) == 0);
	test_assert_strcmp(test_peer_received(),
			   "LOOKUP\t2\tPub\001tlic\001n\n");
	test_peer_send("OK\t3\n");
	test_assert(test_lookup(NULL, ancestors, &entries, &error) == 0);
	test_assert_strcmp(test_peer_received(), "LOOKUP\t3\t\tPublic\n");

	/* a request that would exceed the protocol's line limit is not sent
	   (the service would drop the connection) */
	T_BEGIN {
		string_t *name = t_str_new(REFERRAL_SERVICE_MAX_LINE_LENGTH);

		while (str_len(name) < REFERRAL_SERVICE_MAX_LINE_LENGTH)
			str_append(name, "Public/Long");
		test_assert(test_lookup(str_c(name), NULL, &entries,
					&error) < 0);
		test_assert_strcmp(error,
			"Request too long for the directory service");
		test_assert_strcmp(test_peer_received(), "");
	} T_END;
	/* and the connection is still good */
	test_peer_send("OK\t4\n");
	test_assert(test_lookup("x", NULL, &entries, &error) == 0);
	test_assert_strcmp(test_peer_received(), "LOOKUP\t4\tx\n");
	test_deinit();
	test_end();
}

static void test_service_list(void)
{
	ARRAY_TYPE(referral_directory_entry) entries;
	const char *error;

	test_begin("service client: LIST");
	test_dir_init();
	test_attach_pair();
	test_peer_send("VERSION\tmailbox-referrals-directory\t1\t7\textra\n"
		"E\t1\tcn=x\tPublic/x\t\t\t10 a.example.com\n"
		"OK\t1\tignored trailing field\n");
	t_array_init(&entries, 4);
	test_assert(test_dir->v.list(test_dir, "Public", pool_datastack_create(),
				     &entries, &error) == 0);
	test_assert(array_count(&entries) == 1);
	test_assert_strcmp(test_peer_received(), VERSION_LINE
			   "LIST\t1\tPublic\n");
	test_deinit();
	test_end();
}

static void test_service_too_many_entries(void)
{
	ARRAY_TYPE(referral_directory_entry) entries;
	const char *error;

	test_begin("service client: a reply with too many entries");
	test_dir_init();
	test_attach_pair();
	referral_directory_service_set_max_entries(test_dir, 2);
	test_peer_send(VERSION_LINE
		"E\t1\tcn=a\tPublic/a\t\t\t10 a.example.com\n"
		"E\t1\tcn=b\tPublic/b\t\t\t10 a.example.com\n"
		"E\t1\tcn=c\tPublic/c\t\t\t10 a.example.com\n"
		"OK\t1\n");
	t_array_init(&entries, 4);
	test_assert(test_dir->v.list(test_dir, "Public", pool_datastack_create(),
				     &entries, &error) == -1);
	/* nothing of the cut reply is kept */
	test_assert(array_count(&entries) == 0);
	test_assert(strstr(error, "more than 2 entries") != NULL);
	test_deinit();
	test_end();
}

static void test_service_fail(void)
{
	ARRAY_TYPE(referral_directory_entry) entries;
	const char *error;

	test_begin("service client: FAIL discards the entries sent");
	test_dir_init();
	test_attach_pair();
	test_peer_send(VERSION_LINE
		"E\t1\tcn=x\tPublic/x\t\t\t10 a.example.com\n"
		"FAIL\t1\tno complete copy \001tyet\n");
	test_assert(test_lookup("Public/x", NULL, &entries, &error) < 0);
	test_assert(array_count(&entries) == 0);
	/* the service's text, with the TAB made harmless for a log line */
	test_assert_strcmp(error,
		"Directory service failed: no complete copy ?yet");
	/* the connection is still good */
	test_peer_send("OK\t2\n");
	test_assert(test_lookup("Public/x", NULL, &entries, &error) == 0);
	test_assert_strcmp(test_peer_received(), VERSION_LINE
			   "LOOKUP\t1\tPublic/x\nLOOKUP\t2\tPublic/x\n");
	test_deinit();
	test_end();
}

static void test_service_malformed(void)
{
	static const struct {
		const char *reply, *error_part;
	} tests[] = {
		{ "OK\t1\n", "expected a VERSION line" },
		{ "VERSION\tother-service\t1\t0\n", "incompatible protocol" },
		{ "VERSION\tmailbox-referrals-directory\t2\t0\n",
		  "incompatible protocol" },
		{ VERSION_LINE "OK\t2\n", "not a reply to request 1" },
		{ VERSION_LINE "OK\tone\n", "not a reply to request 1" },
		{ VERSION_LINE "OK\n", "missing fields" },
		{ VERSION_LINE "S\t1\tsynced\tpersist\t1\t1\t1\n",
		  "unexpected reply type" },
		{ VERSION_LINE "E\t1\tcn=x\tPublic/x\t\n",
		  "entry with missing fields" },
		{ VERSION_LINE "FAIL\t1\n", "FAIL without an error" },
		{ VERSION_LINE "E\t1\tcn=x\tx\t\t\t10 a\n", "closed the connection" },
	};
	ARRAY_TYPE(referral_directory_entry) entries;
	const char *error;
	unsigned int i;

	test_begin("service client: malformed replies");
	test_dir_init();
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		test_attach_pair();
		test_peer_send(tests[i].reply);
		/* the peer goes away after its reply: a client waiting for
		   more finds the connection closed */
		(void)shutdown(test_peer_fd, SHUT_WR);
		test_assert_idx(test_lookup("x", NULL, &entries, &error) < 0, i);
		test_assert_idx(array_count(&entries) == 0, i);
		test_assert_idx(error != NULL &&
				strstr(error, tests[i].error_part) != NULL, i);
		/* no control characters from the peer in the error */
		test_assert_idx(error != NULL && strchr(error, '\t') == NULL &&
				strchr(error, '\n') == NULL, i);
	}

	/* a line over the limit */
	test_attach_pair();
	test_peer_send(VERSION_LINE "E\t1\tcn=x\tx\t\t\t");
	T_BEGIN {
		string_t *str = t_str_new(REFERRAL_SERVICE_MAX_LINE_LENGTH + 2);

		str_append(str, "10 ");
		while (str_len(str) < REFERRAL_SERVICE_MAX_LINE_LENGTH)
			str_append_c(str, 'a');
		str_append(str, "\nOK\t1\n");
		test_peer_send(str_c(str));
	} T_END;
	test_assert(test_lookup("x", NULL, &entries, &error) < 0);
	test_assert(error != NULL &&
		    strstr(error, "longer than 65536 bytes") != NULL);

	/* after a malformed reply the connection is closed: the next
	   request connects anew (here: to a socket that does not exist) */
	test_socket_path = "/nonexistent/socket";
	test_assert(test_lookup("x", NULL, &entries, &error) < 0);
	test_assert(error != NULL && strstr(error, "connect(") != NULL);
	test_socket_path = NULL;
	test_deinit();
	test_end();
}

static void test_service_timeout(void)
{
	ARRAY_TYPE(referral_directory_entry) entries;
	const char *error;

	test_begin("service client: a silent peer costs one timeout");
	test_timeout = "100ms";
	test_dir_init();
	test_attach_pair();
	test_assert(test_lookup("x", NULL, &entries, &error) < 0);
	test_assert(error != NULL && strstr(error, "Timed out after 100 ms") != NULL);
	/* a late answer is never taken for the next request's: the
	   connection was closed */
	test_socket_path = "/nonexistent/socket";
	test_assert(test_lookup("x", NULL, &entries, &error) < 0);
	test_assert(error != NULL && strstr(error, "connect(") != NULL);
	test_socket_path = NULL;
	test_timeout = "5s";
	test_deinit();
	test_end();
}

/* The restarted service, in a thread of its own (plain system calls only:
   Dovecot's lib is not thread-safe): accept one connection, check its
   handshake and request, answer OK. Returns 0 or the failed step. */
static void *test_peer_serve(void *context)
{
	int listen_fd = *(int *)context;
	static const char expected[] = VERSION_LINE "LOOKUP\t1\tx\n";
	static const char reply[] = VERSION_LINE "OK\t1\n";
	char buf[sizeof(expected)];
	size_t received = 0;
	ssize_t ret;
	intptr_t result = 0;
	int fd;

	fd = accept(listen_fd, NULL, NULL);
	if (fd < 0)
		return (void *)1;
	while (received < sizeof(expected) - 1) {
		ret = read(fd, buf + received, sizeof(expected) - 1 - received);
		if (ret <= 0) {
			result = 2;
			break;
		}
		received += ret;
	}
	if (result == 0 && memcmp(buf, expected, sizeof(expected) - 1) != 0)
		result = 3;
	if (result == 0 &&
	    write(fd, reply, sizeof(reply) - 1) != sizeof(reply) - 1)
		result = 4;
	close(fd);
	return (void *)result;
}

static void test_service_reconnect(void)
{
	ARRAY_TYPE(referral_directory_entry) entries;
	const char *error, *dir, *error2;
	pthread_t thread;
	void *result;
	int listen_fd;

	test_begin("service client: reconnects once to a restarted service");
	dir = t_strdup_printf("/tmp/test-referral-service.%ld", (long)getpid());
	if (mkdir(dir, 0700) < 0)
		i_fatal("mkdir(%s) failed: %m", dir);
	test_socket_path = t_strconcat(dir, "/socket", NULL);
	listen_fd = net_listen_unix(test_socket_path, 1);
	if (listen_fd < 0)
		i_fatal("net_listen_unix() failed: %m");

	test_dir_init();
	test_attach_pair();
	test_peer_send(VERSION_LINE "OK\t1\n");
	test_assert(test_lookup("x", NULL, &entries, &error) == 0);
	/* the service restarts: the old connection is closed */
	i_close_fd(&test_peer_fd);

	fd_set_nonblock(listen_fd, FALSE);
	if (pthread_create(&thread, NULL, test_peer_serve, &listen_fd) != 0)
		i_fatal("pthread_create() failed");
	test_assert(test_lookup("x", NULL, &entries, &error) == 0);
	test_assert(pthread_join(thread, &result) == 0 && result == NULL);

	/* the new connection dies as well, and nobody listens any more:
	   one more attempt, which fails */
	i_close_fd(&listen_fd);
	i_unlink(test_socket_path);
	test_assert(test_lookup("x", NULL, &entries, &error) < 0);
	test_assert(error != NULL && strstr(error, "connect(") != NULL);

	test_socket_path = NULL;
	test_deinit();
	if (unlink_directory(dir, UNLINK_DIRECTORY_FLAG_RMDIR, &error2) < 0)
		i_error("%s", error2);
	test_end();
}

static void test_service_settings(void)
{
	struct referral_settings set;
	struct referral_directory_params params;
	struct referral_directory *dir;
	const char *error;

	test_begin("service client: settings");
	i_zero(&set);
	set.directory = "service";
	i_zero(&params);
	params.set = &set;
	params.lookup = test_setting;
	params.base_dir = "/run/dovecot";
	test_timeout = "0";
	test_assert(referral_directory_init(&params, &dir, &error) < 0);
	test_assert(strstr(error, "directory_timeout") != NULL);
	test_timeout = "5s";
	/* relative to base_dir: a session never connects before a request */
	test_assert(referral_directory_init(&params, &dir, &error) == 0);
	test_assert(referral_directory_answers_fresh(dir));
	referral_directory_deinit(&dir);
	params.base_dir = NULL;
	test_assert(referral_directory_init(&params, &dir, &error) < 0);
	test_assert(strstr(error, "base_dir") != NULL);
	set.directory = "nis";
	test_assert(referral_directory_init(&params, &dir, &error) < 0);
	test_assert(strstr(error, "Unknown directory backend 'nis'") != NULL);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_service_lookup,
		test_service_list,
		test_service_too_many_entries,
		test_service_fail,
		test_service_malformed,
		test_service_timeout,
		test_service_reconnect,
		test_service_settings,
		NULL
	};
	return test_run(test_functions);
}

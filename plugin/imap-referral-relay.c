/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* Passing a selected remote mailbox's commands through to its server
   (mailbox_referrals_proxy_passthrough, README "Proxying for clients
   that do not follow referrals").

   A proxied session's SELECT or EXAMINE of a remote mailbox opens (or
   reuses) a connection of its own to the mailbox's server, logged in as
   the user, and sends it the client's command with the mailbox's remote
   name. While that mailbox is selected, the commands that work on it
   (FETCH, STORE, SEARCH, SORT, THREAD, their UID forms, EXPUNGE, NOOP,
   CHECK, IDLE, CLOSE, UNSELECT, and COPY/MOVE within the server) go to
   the server as the client sent them, and the server's reply comes back
   as it sent it: its untagged lines and literals are copied to the client
   without being parsed further, so sequence numbers, UIDs, flags,
   modseqs and message texts are the server's own. The client's tag is
   used on the connection, so ESEARCH's TAG correlator is right too.

   Everything else (LIST, STATUS, APPEND, CREATE, RENAME, a COPY or MOVE
   to another server or to a local mailbox) goes through lib-storage as
   before (referral-proxy.c): a session uses both, each with its own
   connection to the server.

   Why: through lib-storage's imapc storage a FETCH of a large mailbox
   cost 3.4 times the instructions of the same FETCH on the remote server,
   and a SELECT refetched every message's flags (README, "Proxy
   benchmark"). Copying the reply costs a read and a write per block. */

#include "imap-common.h"
#include "array.h"
#include "base64.h"
#include "safe-memset.h"
#include "iostream-ssl.h"
#include "mail-user.h"
#include "ioloop.h"
#include "istream.h"
#include "ostream.h"
#include "net.h"
#include "str.h"
#include "str-sanitize.h"
#include "strnum.h"
#include "imap-arg.h"
#include "imap-quote.h"
#include "imap-seqset.h"
#include "imap-util.h"
#include "mail-search-build.h"
#include "imap-resp-code.h"
#include "imap-commands.h"
#include "imap-commands-util.h"
#include "mail-namespace.h"
#include "imap-referral-plugin.h"
#include "referral-plugin.h"
#include "referral-proxy.h"
#include "referral-imap-arg.h"

/* The remote server's lines are read in blocks of up to this size; a
   longer line is copied in parts. */
#define RELAY_INPUT_MAX_SIZE (256*1024)
/* The client's output buffer is filled up to this before the relay waits
   for the client to read. */
#define RELAY_CLIENT_OUTPUT_MAX (128*1024)
/* Bytes of a long line kept back so that its end ("{123}") can be
   recognised when the rest arrives. */
#define RELAY_LINE_TAIL 24

/* README, "Events and metrics" */
#define RELAY_EVENT_CONNECT_FINISHED \
	"mailbox_referrals_passthrough_connect_finished"
#define RELAY_EVENT_COMMAND_FINISHED \
	"mailbox_referrals_passthrough_command_finished"

#define RELAY_CLIENT_CONTEXT(obj) \
	MODULE_CONTEXT(obj, relay_client_module)

enum relay_kind {
	RELAY_KIND_OTHER = 0,
	RELAY_KIND_SELECT,
	RELAY_KIND_IDLE,
	/* CLOSE, UNSELECT */
	RELAY_KIND_DESELECT,
};

struct relay_conn {
	struct relay_client *rclient;
	/* "HOST[:PORT]", for logs and errors */
	char *server;
	/* the plugin's session event's child, with the server's name */
	struct event *event;
	/* the namespace where the client names the mailboxes */
	struct mail_namespace *home_ns;
	unsigned int timeout_msecs;

	int fd;
	struct istream *input;
	struct ostream *output;
	/* TLS (mailbox_referrals_proxy_ssl): the host name the server's
	   certificate must match, and whether an invalid one is accepted */
	struct ssl_iostream *ssl_iostream;
	char *tls_host;
	bool tls_allow_invalid;
	struct io *io;
	struct timeout *to;
	/* " CAP1 CAP2 ... " (upper case), after login */
	char *capabilities;
	/* " FEATURE ... " enabled with ENABLE */
	string_t *enabled;
	unsigned int internal_tag;
};

/* The command under way on a connection. */
struct relay_exchange {
	struct client_command_context *cmd;
	struct relay_conn *conn;
	/* the command's event (conn's child) and the client's output
	   offset when it began */
	struct event *event;
	uoff_t output_offset;
	enum relay_kind kind;
	const char *tag;
	/* bytes of a literal still to copy */
	uoff_t literal_left;
	/* part of a line was copied: the client is in the middle of it */
	bool mid_line;
	/* the line being read continues a response after its literal
	   (FETCH's ")"): not a response of its own */
	bool continued;
	/* a server's "* OK [CLOSED]" is dropped: the client got ours */
	bool drop_closed;
	/* IDLE: the server sent its continuation, the client's DONE was
	   sent, the client sent something else */
	bool idling, idle_done_sent, idle_bad;
	/* the IDLE's reading of the client's input, and the check that it
	   is still there after imap's own input handling (which removes
	   the client's io when it sees input it cannot take) */
	struct io *idle_io;
	struct timeout *to_idle_io;
};

struct relay_client {
	union imap_module_context module_ctx;
	struct client *client;
	ARRAY(struct relay_conn *) conns;
	/* the remote mailbox selected through the relay */
	struct relay_conn *selected;
	/* the selected mailbox's connection was lost: its commands fail
	   until the client selects a mailbox again; lost_server names it */
	bool lost;
	char *lost_server;
	/* the selected mailbox's name in home_ns (for lib-storage) */
	char *selected_vname;
	/* it was selected read-only (EXAMINE, or the server said so) */
	bool selected_readonly;
	struct relay_exchange exch;
	bool exch_active;
};

static MODULE_CONTEXT_DEFINE_INIT(relay_client_module, &imap_module_register);

/* The commands that work on the selected mailbox (their UID forms are
   matched by the name after "UID "). */
static const char *const relay_selected_commands[] = {
	"CHECK", "CLOSE", "COPY", "EXPUNGE", "FETCH", "IDLE", "MOVE", "NOOP",
	"SEARCH", "SORT", "STORE", "THREAD", "UNSELECT", NULL
};

static void relay_conn_destroy(struct relay_conn **_conn);
static void relay_exchange_clear(struct relay_client *rclient);
static bool relay_line_literal(const unsigned char *data, size_t size,
			       uoff_t *size_r);
static void relay_conn_input(struct relay_client *rclient);
static void relay_conn_timeout(struct relay_client *rclient);

/* Connections */

static void relay_client_destroy(struct client *client, const char *reason)
{
	struct relay_client *rclient = RELAY_CLIENT_CONTEXT(client);

	/* This runs before imap cancels the client's commands: an exchange
	   under way ends here (its connection is in the middle of a reply,
	   and goes), and imap's cancel of the command finds it over
	   (relay_cmd_continue()). */
	if (rclient->exch_active)
		relay_exchange_clear(rclient);
	while (array_count(&rclient->conns) > 0) {
		struct relay_conn *conn =
			array_idx_elem(&rclient->conns, 0);
		relay_conn_destroy(&conn);
	}
	array_free(&rclient->conns);
	i_free(rclient->lost_server);
	i_free(rclient->selected_vname);
	rclient->module_ctx.super.destroy(client, reason);
}

static struct relay_client *relay_client_get(struct client *client)
{
	struct relay_client *rclient = RELAY_CLIENT_CONTEXT(client);

	if (rclient != NULL)
		return rclient;
	rclient = p_new(client->pool, struct relay_client, 1);
	rclient->client = client;
	i_array_init(&rclient->conns, 4);
	rclient->module_ctx.super = client->v;
	client->v.destroy = relay_client_destroy;
	MODULE_CONTEXT_SET(client, relay_client_module, rclient);
	return rclient;
}

static void relay_conn_destroy(struct relay_conn **_conn)
{
	struct relay_conn *conn = *_conn;
	struct relay_client *rclient = conn->rclient;
	struct relay_conn *const *connp;

	*_conn = NULL;
	array_foreach(&rclient->conns, connp) {
		if (*connp == conn) {
			array_delete(&rclient->conns,
				     array_foreach_idx(&rclient->conns, connp),
				     1);
			break;
		}
	}
	if (rclient->selected == conn)
		rclient->selected = NULL;
	io_remove(&conn->io);
	timeout_remove(&conn->to);
	if (conn->output != NULL && !conn->output->closed) {
		/* a polite end; the server may be gone already */
		o_stream_nsend_str(conn->output, "L LOGOUT\r\n");
		(void)o_stream_flush(conn->output);
	}
	ssl_iostream_destroy(&conn->ssl_iostream);
	i_stream_destroy(&conn->input);
	o_stream_destroy(&conn->output);
	i_close_fd(&conn->fd);
	i_free(conn->tls_host);
	event_unref(&conn->event);
	str_free(&conn->enabled);
	i_free(conn->capabilities);
	i_free(conn->server);
	i_free(conn);
}

static const char *relay_timeout_error(unsigned int msecs)
{
	/* (the setting is in whole seconds) */
	return t_strdup_printf("timed out after %u seconds", msecs / 1000);
}

/* Waiting for a connection in a private ioloop, as a command does
   before its first byte reaches the client. */
struct relay_wait {
	struct ioloop *ioloop;
	bool timed_out;
};

static void relay_wait_stop(struct relay_wait *wait)
{
	io_loop_stop(wait->ioloop);
}

static void relay_wait_timeout(struct relay_wait *wait)
{
	wait->timed_out = TRUE;
	io_loop_stop(wait->ioloop);
}

/* Why reading conn failed (ret: i_stream_read()'s -1 or -2). */
static const char *relay_conn_input_error(struct relay_conn *conn,
					  ssize_t ret)
{
	const char *error;

	if (ret == -2)
		return "Reply line too long";
	if (conn->ssl_iostream != NULL &&
	    (error = ssl_iostream_get_last_error(conn->ssl_iostream)) != NULL)
		return t_strconcat("TLS: ", error, NULL);
	return conn->input->stream_errno == 0 ? "Connection closed" :
		i_stream_get_error(conn->input);
}

/* Read more of conn's server's output, waiting up to its timeout.
   Returns 0, or -1 with error_r. */
static int relay_conn_read_more(struct relay_conn *conn, const char **error_r)
{
	struct ioloop *prev_ioloop = current_ioloop;
	struct relay_wait wait;
	struct io *io;
	struct timeout *to;
	ssize_t ret;

	for (;;) {
		ret = i_stream_read(conn->input);
		if (ret > 0)
			return 0;
		if (ret < 0) {
			*error_r = relay_conn_input_error(conn, ret);
			return -1;
		}
		i_zero(&wait);
		wait.ioloop = io_loop_create();
		/* the output too: a command not written whole, or TLS
		   writing while it reads, goes on in this loop */
		i_stream_switch_ioloop_to(conn->input, wait.ioloop);
		o_stream_switch_ioloop_to(conn->output, wait.ioloop);
		io = io_add_istream(conn->input, relay_wait_stop, &wait);
		to = timeout_add(conn->timeout_msecs, relay_wait_timeout, &wait);
		io_loop_run(wait.ioloop);
		io_remove(&io);
		timeout_remove(&to);
		io_loop_set_current(prev_ioloop);
		i_stream_switch_ioloop_to(conn->input, prev_ioloop);
		o_stream_switch_ioloop_to(conn->output, prev_ioloop);
		io_loop_set_current(wait.ioloop);
		io_loop_destroy(&wait.ioloop);
		if (wait.timed_out) {
			*error_r = relay_timeout_error(conn->timeout_msecs);
			return -1;
		}
	}
}

/* Read the next line of conn's server, waiting up to its timeout.
   Returns the line (without CRLF), or NULL with error_r. */
static const char *
relay_conn_read_line(struct relay_conn *conn, const char **error_r)
{
	const char *line;

	while ((line = i_stream_next_line(conn->input)) == NULL) {
		if (relay_conn_read_more(conn, error_r) < 0)
			return NULL;
	}
	return line;
}

/* Skip size bytes of conn's server's output (a literal). Returns 0, or -1
   with error_r. */
static int relay_conn_skip(struct relay_conn *conn, uoff_t size,
			   const char **error_r)
{
	size_t avail;

	while (size > 0) {
		(void)i_stream_get_data(conn->input, &avail);
		if (avail == 0) {
			if (relay_conn_read_more(conn, error_r) < 0)
				return -1;
			continue;
		}
		if (avail > size)
			avail = size;
		i_stream_skip(conn->input, avail);
		size -= avail;
	}
	return 0;
}

/* Send line (an internal command, tagged by us) and read the reply up to
   its tagged line, whose text (after the tag) goes to reply_r. Untagged
   lines go to untagged (if not NULL). Returns 0 (any status), -1 with
   error_r if the connection failed. */
static int
relay_conn_command(struct relay_conn *conn, const char *line,
		   ARRAY_TYPE(const_string) *untagged,
		   const char **reply_r, const char **error_r)
{
	const char *tag = t_strdup_printf("M%u", ++conn->internal_tag);
	const char *reply;
	size_t tag_len = strlen(tag);
	uoff_t literal_size;
	string_t *cmdline;

	/* one write; the copy is wiped (a login's credentials) */
	cmdline = t_str_new(strlen(tag) + strlen(line) + 3);
	str_printfa(cmdline, "%s %s\r\n", tag, line);
	o_stream_nsend(conn->output, str_data(cmdline), str_len(cmdline));
	safe_memset(str_c_modifiable(cmdline), 0, str_len(cmdline));
	/* (0: the rest is written while the reply is waited for) */
	if (o_stream_flush(conn->output) < 0) {
		*error_r = o_stream_get_error(conn->output);
		return -1;
	}
	for (;;) {
		reply = relay_conn_read_line(conn, error_r);
		if (reply == NULL)
			return -1;
		if (strncmp(reply, tag, tag_len) == 0 &&
		    reply[tag_len] == ' ') {
			*reply_r = t_strdup(reply + tag_len + 1);
			return 0;
		}
		if (str_begins(reply, "* BYE")) {
			*error_r = t_strdup_printf("Server said: %s",
						   str_sanitize(reply, 256));
			return -1;
		}
		if (relay_line_literal((const unsigned char *)reply,
				       strlen(reply), &literal_size)) {
			/* a response with a literal (none is expected here):
			   skipped whole, its lines are not one response each */
			do {
				if (relay_conn_skip(conn, literal_size,
						    error_r) < 0)
					return -1;
				reply = relay_conn_read_line(conn, error_r);
				if (reply == NULL)
					return -1;
			} while (relay_line_literal((const unsigned char *)reply,
						    strlen(reply),
						    &literal_size));
			continue;
		}
		if (untagged != NULL) {
			reply = t_strdup(reply);
			array_push_back(untagged, &reply);
		}
	}
}

/* Take the capabilities from "[CAPABILITY ...]" at the start of text, or
   from a "* CAPABILITY ..." line. */
static bool relay_conn_set_capabilities(struct relay_conn *conn,
					const char *text)
{
	const char *end;

	if (str_begins(text, "* CAPABILITY "))
		end = text + strlen(text);
	else {
		const char *p = strstr(text, "[CAPABILITY ");

		if (p == NULL)
			return FALSE;
		text = p + 1;
		end = strchr(text, ']');
		if (end == NULL)
			return FALSE;
	}
	text += strlen("* CAPABILITY ") - (text[0] == '*' ? 0 : 2);
	i_free(conn->capabilities);
	conn->capabilities = i_strdup(t_str_ucase(t_strconcat(
		" ", t_strdup_until(text, end), " ", NULL)));
	return TRUE;
}

static bool relay_conn_has_capability(struct relay_conn *conn,
				      const char *cap)
{
	return conn->capabilities != NULL &&
		strstr(conn->capabilities,
		       t_strconcat(" ", cap, " ", NULL)) != NULL;
}

/* Ask the server for its capabilities. Returns 0, or -1 with error_r. */
static int relay_conn_ask_capabilities(struct relay_conn *conn,
				       const char **error_r)
{
	ARRAY_TYPE(const_string) untagged;
	const char *reply, *const *linep;

	t_array_init(&untagged, 4);
	if (relay_conn_command(conn, "CAPABILITY", &untagged, &reply,
			       error_r) < 0)
		return -1;
	array_foreach(&untagged, linep)
		(void)relay_conn_set_capabilities(conn, *linep);
	return 0;
}

/* Log in: SASL PLAIN, as the user (with the master user's name and
   password, or the user's own password). */
static int
relay_conn_login(struct relay_conn *conn,
		 const struct referral_proxy_route *route,
		 const char **error_r)
{
	const struct referral_proxy_settings *set = route->set;
	const char *line, *reply;
	string_t *plain, *b64;
	int ret;

	/* authorization identity, authentication identity, password */
	plain = t_str_new(128);
	if (set->master_user[0] != '\0') {
		str_append(plain, route->username);
		str_append_c(plain, '\0');
		str_append(plain, set->master_user);
	} else {
		str_append_c(plain, '\0');
		str_append(plain, route->username);
	}
	str_append_c(plain, '\0');
	str_append(plain, set->password);
	b64 = t_str_new(MAX_BASE64_ENCODED_SIZE(str_len(plain)));
	base64_encode(str_data(plain), str_len(plain), b64);

	if (relay_conn_has_capability(conn, "SASL-IR")) {
		line = t_strconcat("AUTHENTICATE PLAIN ", str_c(b64), NULL);
		ret = relay_conn_command(conn, line, NULL, &reply, error_r);
		safe_memset((char *)line, 0, strlen(line));
	} else {
		/* the continuation "+" comes first */
		const char *tag = t_strdup_printf("M%u", ++conn->internal_tag);

		o_stream_nsend_str(conn->output, t_strconcat(
			tag, " AUTHENTICATE PLAIN\r\n", NULL));
		line = relay_conn_read_line(conn, error_r);
		if (line == NULL || line[0] != '+') {
			if (line != NULL) {
				*error_r = t_strdup_printf("Login failed: %s",
					str_sanitize(line, 256));
			}
			safe_memset(str_c_modifiable(plain), 0, str_len(plain));
			safe_memset(str_c_modifiable(b64), 0, str_len(b64));
			return -1;
		}
		o_stream_nsend(conn->output, str_data(b64), str_len(b64));
		o_stream_nsend(conn->output, "\r\n", 2);
		ret = 0;
		for (;;) {
			line = relay_conn_read_line(conn, error_r);
			if (line == NULL) {
				ret = -1;
				break;
			}
			if (str_begins(line, tag) &&
			    line[strlen(tag)] == ' ') {
				reply = t_strdup(line + strlen(tag) + 1);
				break;
			}
		}
	}
	safe_memset(str_c_modifiable(plain), 0, str_len(plain));
	safe_memset(str_c_modifiable(b64), 0, str_len(b64));
	if (ret < 0)
		return -1;
	if (!str_begins(reply, "OK")) {
		*error_r = t_strdup_printf("Login failed: %s",
					   str_sanitize(reply, 256));
		return -1;
	}
	if (relay_conn_set_capabilities(conn, reply))
		return 0;
	return relay_conn_ask_capabilities(conn, error_r);
}

static int relay_conn_tls_handshaked(const char **error_r, void *context)
{
	struct relay_conn *conn = context;
	const char *error;

	if (ssl_iostream_check_cert_validity(conn->ssl_iostream,
					     conn->tls_host, &error) == 0 ||
	    conn->tls_allow_invalid)
		return 0;
	*error_r = error;
	return -1;
}

/* Put TLS on conn's streams (right after connecting for imaps, after
   STARTTLS's OK for starttls), verified as imapc verifies its own: the
   certificate against ssl_client_ca_file / ssl_client_ca_dir and the
   server's host name from the directory. The handshake goes on as the
   streams are used. Returns 0, or -1 with error_r. */
static int relay_conn_start_tls(struct relay_conn *conn,
				const struct referral_proxy_route *route,
				const struct referral_proxy_route_server *server,
				const char **error_r)
{
	struct ssl_iostream_settings ssl_set;
	struct ssl_iostream_context *ssl_ctx;
	const char *error;
	size_t len;

	i_zero(&ssl_set);
	mail_user_init_ssl_client_settings(conn->rclient->client->user,
					   &ssl_set);
	if (!route->set->ssl_verify)
		ssl_set.allow_invalid_cert = TRUE;
	conn->tls_allow_invalid = ssl_set.allow_invalid_cert;
	/* an IPv6 literal without its brackets */
	len = strlen(server->host);
	conn->tls_host = server->host[0] == '[' && len > 2 ?
		i_strndup(server->host + 1, len - 2) : i_strdup(server->host);
	if (ssl_iostream_client_context_cache_get(&ssl_set, &ssl_ctx,
						  &error) < 0) {
		*error_r = t_strdup_printf("TLS: Cannot initialize: %s", error);
		return -1;
	}
	if (io_stream_create_ssl_client(ssl_ctx, conn->tls_host, &ssl_set,
					&conn->input, &conn->output,
					&conn->ssl_iostream, &error) < 0) {
		ssl_iostream_context_unref(&ssl_ctx);
		*error_r = t_strdup_printf("TLS: Cannot initialize: %s", error);
		return -1;
	}
	ssl_iostream_context_unref(&ssl_ctx);
	i_stream_set_init_buffer_size(conn->input, RELAY_INPUT_MAX_SIZE);
	ssl_iostream_set_handshake_callback(conn->ssl_iostream,
					    relay_conn_tls_handshaked, conn);
	if (ssl_iostream_handshake(conn->ssl_iostream) < 0) {
		*error_r = t_strdup_printf("TLS: %s",
			ssl_iostream_get_last_error(conn->ssl_iostream));
		return -1;
	}
	return 0;
}

/* STARTTLS on conn, whose greeting was read; the capabilities are asked
   again over TLS. Returns 0, or -1 with error_r. */
static int relay_conn_starttls(struct relay_conn *conn,
			       const struct referral_proxy_route *route,
			       const struct referral_proxy_route_server *server,
			       const char **error_r)
{
	const char *reply;

	if (conn->capabilities == NULL &&
	    relay_conn_ask_capabilities(conn, error_r) < 0)
		return -1;
	if (!relay_conn_has_capability(conn, "STARTTLS")) {
		*error_r = "The server does not offer STARTTLS";
		return -1;
	}
	if (relay_conn_command(conn, "STARTTLS", NULL, &reply, error_r) < 0)
		return -1;
	if (!str_begins(reply, "OK")) {
		*error_r = t_strdup_printf("STARTTLS failed: %s",
					   str_sanitize(reply, 256));
		return -1;
	}
	if (relay_conn_start_tls(conn, route, server, error_r) < 0)
		return -1;
	/* what the server offered before TLS does not count */
	i_free(conn->capabilities);
	return relay_conn_ask_capabilities(conn, error_r);
}

/* Connect to server and log in; NULL with error_r if either fails. */
static struct relay_conn *
relay_conn_create(struct relay_client *rclient, struct mail_namespace *ns,
		  const struct referral_proxy_route *route,
		  const struct referral_proxy_route_server *server,
		  const char **error_r)
{
	struct ioloop *prev_ioloop = current_ioloop;
	struct relay_conn *conn;
	struct relay_wait wait;
	struct ip_addr ip, *ips;
	unsigned int ips_count;
	struct io *io;
	struct timeout *to;
	const char *line;
	int fd, err;

	if (server->ip.family != 0)
		ip = server->ip;
	else {
		err = net_gethostbyname(server->host, &ips, &ips_count);
		if (err != 0) {
			*error_r = t_strdup_printf("Cannot resolve %s: %s",
				server->host, net_gethosterror(err));
			return NULL;
		}
		ip = ips[0];
	}
	fd = net_connect_ip(&ip, server->port, NULL);
	if (fd < 0) {
		*error_r = t_strdup_printf("connect() failed: %m");
		return NULL;
	}
	/* wait for the connection */
	i_zero(&wait);
	wait.ioloop = io_loop_create();
	io = io_add(fd, IO_WRITE, relay_wait_stop, &wait);
	to = timeout_add(route->set->timeout_msecs, relay_wait_timeout, &wait);
	io_loop_run(wait.ioloop);
	io_remove(&io);
	timeout_remove(&to);
	io_loop_set_current(prev_ioloop);
	io_loop_set_current(wait.ioloop);
	io_loop_destroy(&wait.ioloop);
	if (wait.timed_out) {
		i_close_fd(&fd);
		*error_r = t_strconcat("connect() ", relay_timeout_error(
			route->set->timeout_msecs), NULL);
		return NULL;
	}
	err = net_geterror(fd);
	if (err != 0) {
		i_close_fd(&fd);
		*error_r = t_strdup_printf("connect() failed: %s",
					   strerror(err));
		return NULL;
	}

	conn = i_new(struct relay_conn, 1);
	conn->rclient = rclient;
	conn->server = i_strdup(server->name);
	conn->event = event_create(route->event);
	event_add_str(conn->event, "server", server->name);
	conn->home_ns = ns;
	conn->timeout_msecs = route->set->timeout_msecs;
	conn->fd = fd;
	conn->input = i_stream_create_fd(fd, RELAY_INPUT_MAX_SIZE);
	/* the reply is consumed as it is read, so the buffer would stay at
	   its first size (a few KB): one read syscall per few KB of a large
	   FETCH */
	i_stream_set_init_buffer_size(conn->input, RELAY_INPUT_MAX_SIZE);
	conn->output = o_stream_create_fd(fd, SIZE_MAX);
	o_stream_set_no_error_handling(conn->output, TRUE);
	conn->enabled = str_new(default_pool, 32);
	str_append_c(conn->enabled, ' ');
	array_push_back(&rclient->conns, &conn);

	if (strcmp(route->set->ssl, "imaps") == 0 &&
	    relay_conn_start_tls(conn, route, server, error_r) < 0)
		line = NULL;
	else
		line = relay_conn_read_line(conn, error_r);
	if (line == NULL)
		;
	else if (!str_begins(line, "* OK")) {
		*error_r = t_strdup_printf("Server refused the connection: %s",
					   str_sanitize(line, 256));
	} else {
		(void)relay_conn_set_capabilities(conn, line);
		if ((strcmp(route->set->ssl, "starttls") != 0 ||
		     relay_conn_starttls(conn, route, server, error_r) == 0) &&
		    relay_conn_login(conn, route, error_r) == 0)
			return conn;
	}
	/* no LOGOUT for a connection that failed */
	o_stream_close(conn->output);
	relay_conn_destroy(&conn);
	return NULL;
}

/* Returns TRUE if the server closed conn between commands (it says
   "* BYE ...", then closes it). */
static bool relay_conn_is_closed(struct relay_conn *conn)
{
	const unsigned char *data, *p;
	size_t size;
	ssize_t ret;

	while ((ret = i_stream_read(conn->input)) > 0) ;
	if (ret == -1)
		return TRUE;
	data = i_stream_get_data(conn->input, &size);
	for (p = data; p != NULL && (size_t)(p - data) + 5 <= size; ) {
		if (memcmp(p, "* BYE", 5) == 0)
			return TRUE;
		p = memchr(p, '\n', size - (p - data));
		if (p != NULL)
			p++;
	}
	return FALSE;
}

/* The session's connection to the first of route's servers that can be
   reached for ns, created if needed; NULL with error_r (for the client)
   if none can. */
static struct relay_conn *
relay_conn_get(struct relay_client *rclient, struct mail_namespace *ns,
	       const struct referral_proxy_route *route, const char **error_r)
{
	const struct referral_proxy_route_server *server;
	struct relay_conn *conn, *const *connp;
	string_t *names = t_str_new(64);
	struct event *event;
	struct event_passthrough *e;
	const char *error;

	array_foreach(&route->servers, server) {
		conn = NULL;
		array_foreach(&rclient->conns, connp) {
			if ((*connp)->home_ns == ns &&
			    strcmp((*connp)->server, server->name) == 0) {
				conn = *connp;
				break;
			}
		}
		if (conn != NULL) {
			/* a server that closed the connection meanwhile (its
			   idle timeout, a restart) is connected again */
			if (!relay_conn_is_closed(conn))
				return conn;
			if (conn == rclient->selected) {
				/* its selected mailbox is gone with it */
				rclient->lost = TRUE;
				i_free(rclient->lost_server);
				rclient->lost_server = i_strdup(conn->server);
			}
			relay_conn_destroy(&conn);
		}
		event = event_create(route->event);
		event_add_str(event, "server", server->name);
		if (route->set->ssl[0] != '\0')
			event_add_str(event, "tls", route->set->ssl);
		conn = relay_conn_create(rclient, ns, route, server, &error);
		e = event_create_passthrough(event)->
			set_name(RELAY_EVENT_CONNECT_FINISHED);
		if (conn != NULL) {
			e_debug(e->event(), "Passing commands through to %s",
				conn->server);
			event_unref(&event);
			return conn;
		}
		e->add_str("error", str_sanitize(error, 512));
		e_debug(e->event(), "Connecting to %s failed", server->name);
		event_unref(&event);
		/* the reason may quote the remote server's words, or its
		   certificate's names */
		e_warning(rclient->client->event, "mailbox-referrals: "
			  "Remote server %s: %s", server->name,
			  str_sanitize(error, 512));
		if (str_len(names) > 0)
			str_append(names, ", ");
		str_append(names, server->name);
	}
	*error_r = array_count(&route->servers) == 1 ?
		t_strdup_printf("Remote server %s is unavailable", str_c(names)) :
		t_strdup_printf("Remote servers %s are unavailable",
				str_c(names));
	return NULL;
}

/* ENABLE on the server what the client has enabled here, so that the
   server's replies have what the client expects (CONDSTORE's MODSEQ,
   QRESYNC's VANISHED). Returns 0, or -1 with error_r. */
static int relay_conn_sync_features(struct relay_conn *conn,
				    const char **error_r)
{
	const char *const *features, *reply, *const *linep;
	ARRAY_TYPE(const_string) untagged;
	string_t *missing = t_str_new(64);

	features = client_enabled_features(conn->rclient->client);
	if (features == NULL)
		return 0;
	for (; *features != NULL; features++) {
		const char *word = t_strconcat(*features, " ", NULL);

		if (strstr(str_c(conn->enabled), word) != NULL)
			continue;
		str_append_c(missing, ' ');
		str_append(missing, *features);
	}
	if (str_len(missing) == 0 || !relay_conn_has_capability(conn, "ENABLE"))
		return 0;
	t_array_init(&untagged, 4);
	if (relay_conn_command(conn, t_strconcat("ENABLE", str_c(missing),
						 NULL),
			       &untagged, &reply, error_r) < 0)
		return -1;
	/* (a server that refuses is asked again before the next command) */
	if (str_begins(reply, "OK")) {
		str_append(conn->enabled, str_c(missing) + 1);
		str_append_c(conn->enabled, ' ');
	}
	/* what enabling says about the selected mailbox (CONDSTORE's
	   HIGHESTMODSEQ) is the client's */
	if (conn == conn->rclient->selected) {
		array_foreach(&untagged, linep) {
			if (!str_begins(*linep, "* ENABLED"))
				client_send_line(conn->rclient->client, *linep);
		}
	}
	return 0;
}

/* Exchanges: a client's command on the server */

static void relay_exchange_clear(struct relay_client *rclient)
{
	struct relay_conn *conn = rclient->exch.conn;
	struct client *client = rclient->client;

	if (conn != NULL) {
		io_remove(&conn->io);
		timeout_remove(&conn->to);
	}
	timeout_remove(&rclient->exch.to_idle_io);
	if (rclient->exch.idle_io != NULL && client->io == rclient->exch.idle_io) {
		/* imap adds its own input handler back */
		io_remove(&client->io);
	}
	if (client->output_cmd_lock == rclient->exch.cmd)
		client->output_cmd_lock = NULL;
	event_unref(&rclient->exch.event);
	i_zero(&rclient->exch);
	rclient->exch_active = FALSE;
}

/* What the client has been sent so far (written and buffered). */
static uoff_t relay_client_output_total(struct client *client)
{
	return client->output->offset +
		o_stream_get_buffer_used_size(client->output);
}

/* A command passed through to conn's server ends: its event (created
   when it began, in event_r, then unreferenced), with the result ("ok",
   "no", "bad" from the server's tagged reply, or "failed" with error
   when the connection failed) and the bytes the client was sent. */
static void
relay_command_event(struct relay_conn *conn, struct event **event_r,
		    uoff_t output_start, const char *text, const char *error)
{
	struct client *client = conn->rclient->client;
	struct event_passthrough *e;
	const char *result;

	if (error != NULL)
		result = "failed";
	else if (str_begins(text, "OK"))
		result = "ok";
	else if (str_begins(text, "NO"))
		result = "no";
	else
		result = "bad";
	e = event_create_passthrough(*event_r)->
		set_name(RELAY_EVENT_COMMAND_FINISHED)->
		add_str("result", result)->
		add_int("bytes", relay_client_output_total(client) -
			output_start);
	if (error != NULL)
		e->add_str("error", error);
	e_debug(e->event(), "Passed through to %s: %s: %s",
		conn->server, event_find_field_recursive_str(*event_r,
							     "command"),
		result);
	event_unref(event_r);
}

static struct event *
relay_command_event_begin(struct relay_conn *conn,
			  struct client_command_context *cmd)
{
	struct event *event = event_create(conn->event);

	event_add_str(event, "command", cmd->name);
	return event;
}

static const char *relay_lost_error(const char *server)
{
	return t_strdup_printf("Lost the connection to the server of this "
			       "mailbox (%s); select it again", server);
}

/* The connection of the exchange failed (why: reason). The client gets
   a tagged NO, or, in the middle of a reply, is disconnected: its reply
   cannot be completed. */
static void relay_exchange_failed(struct relay_client *rclient,
				  const char *reason)
{
	struct relay_exchange *exch = &rclient->exch;
	struct client_command_context *cmd = exch->cmd;
	struct relay_conn *conn = exch->conn;
	const char *error;

	e_warning(rclient->client->event, "mailbox-referrals: "
		  "Remote server %s: Lost the connection: %s",
		  conn->server, str_sanitize(reason, 256));
	if (exch->event == NULL) {
		exch->event = relay_command_event_begin(conn, cmd);
		exch->output_offset = relay_client_output_total(cmd->client);
	}
	relay_command_event(conn, &exch->event, exch->output_offset, NULL,
			    str_sanitize(reason, 256));
	if (exch->kind == RELAY_KIND_SELECT)
		error = t_strdup_printf("Remote server %s is unavailable",
					conn->server);
	else
		error = relay_lost_error(conn->server);
	if (rclient->selected == conn || exch->kind == RELAY_KIND_SELECT) {
		rclient->selected = NULL;
		rclient->lost = exch->kind != RELAY_KIND_SELECT &&
			exch->kind != RELAY_KIND_DESELECT;
		i_free(rclient->lost_server);
		rclient->lost_server = i_strdup(conn->server);
	}
	if (exch->mid_line || exch->continued || exch->literal_left > 0) {
		relay_exchange_clear(rclient);
		client_disconnect_with_error(cmd->client, t_strdup_printf(
			"Lost the connection to the server of the selected "
			"mailbox (%s) in the middle of a reply", conn->server));
	} else {
		relay_exchange_clear(rclient);
		client_send_tagline(cmd, t_strdup_printf(
			"NO ["IMAP_RESP_CODE_UNAVAILABLE"] %s", error));
	}
	relay_conn_destroy(&conn);
}

/* The text of the server's tagged reply as the client gets it: without
   the timing Dovecot appends (imap appends ours), and a temporary
   failure with the server's name, as the proxy's others
   (referral-proxy.c). */
static const char *relay_tagged_text(const struct relay_conn *conn,
				     const char *text)
{
	const char *p = strrchr(text, '(');
	size_t len = strlen(text);

	if (p != NULL && p > text && p[-1] == ' ' && len > 7 &&
	    strcmp(text + len - 7, " secs).") == 0 &&
	    p[1] >= '0' && p[1] <= '9')
		text = t_strconcat(t_strdup_until(text, p - 1), ".", NULL);
	if (str_begins(text, "NO ["IMAP_RESP_CODE_UNAVAILABLE"] ")) {
		len = strlen("NO ["IMAP_RESP_CODE_UNAVAILABLE"] ");
		text = t_strdup_printf("NO ["IMAP_RESP_CODE_UNAVAILABLE"] "
				       "Remote server %s: %s", conn->server,
				       text + len);
	}
	return text;
}

/* The tagged reply (text: "OK ...", "NO ...", "BAD ...") arrived. */
static void relay_exchange_finish(struct relay_client *rclient,
				  const char *text)
{
	struct relay_exchange *exch = &rclient->exch;
	struct client_command_context *cmd = exch->cmd;
	bool ok = str_begins(text, "OK");
	struct relay_conn *conn;
	struct event *event;
	uoff_t output_offset;

	switch (exch->kind) {
	case RELAY_KIND_SELECT:
		rclient->selected = ok ? exch->conn : NULL;
		rclient->selected_readonly =
			strcasecmp(cmd->name, "EXAMINE") == 0 ||
			strstr(text, "[READ-ONLY]") != NULL;
		break;
	case RELAY_KIND_DESELECT:
		if (ok)
			rclient->selected = NULL;
		break;
	case RELAY_KIND_IDLE:
		if (exch->idle_bad)
			text = "BAD Expected DONE.";
		break;
	case RELAY_KIND_OTHER:
		break;
	}
	text = relay_tagged_text(exch->conn, text);
	conn = exch->conn;
	event = exch->event;
	output_offset = exch->output_offset;
	exch->event = NULL;
	relay_exchange_clear(rclient);
	client_send_tagline(cmd, text);
	relay_command_event(conn, &event, output_offset, text, NULL);
}

/* IDLE: the client's input is read here until its DONE. */
static void relay_idle_client_input(struct relay_client *rclient)
{
	struct relay_exchange *exch = &rclient->exch;
	struct client *client = rclient->client;
	const char *line;
	ssize_t ret;

	client->last_input = ioloop_time;
	timeout_reset(client->to_idle);
	ret = i_stream_read(client->input);
	if (ret == -1) {
		/* imap cancels the command (relay_cmd_continue()) */
		io_remove(&client->io);
		exch->idle_io = NULL;
		client_disconnect(client, NULL);
		return;
	}
	while ((line = i_stream_next_line(client->input)) != NULL) {
		/* the rest of the IDLE command's own line */
		if (!client->input_skip_line)
			break;
		client->input_skip_line = FALSE;
	}
	if (line == NULL && ret == -2) {
		/* a long line that is not DONE */
		client->input_skip_line = TRUE;
		line = "";
	}
	if (line == NULL)
		return;
	io_remove(&client->io);
	exch->idle_io = NULL;
	timeout_remove(&exch->to_idle_io);
	exch->idle_bad = strcasecmp(line, "DONE") != 0;
	exch->idle_done_sent = TRUE;
	o_stream_nsend_str(exch->conn->output, "DONE\r\n");
	(void)o_stream_flush(exch->conn->output);
	/* the server's tagged reply ends the command, within the timeout
	   (not while the client does not read: relay_exchange_pump()) */
	if (exch->conn->to == NULL &&
	    exch->cmd->state != CLIENT_COMMAND_STATE_WAIT_OUTPUT) {
		exch->conn->to = timeout_add(exch->conn->timeout_msecs,
					     relay_conn_timeout, rclient);
	}
}

/* Read the client's input for the IDLE's DONE. */
static void relay_idle_io_add(struct relay_client *rclient)
{
	struct relay_exchange *exch = &rclient->exch;
	struct client *client = rclient->client;

	io_remove(&client->io);
	client->io = io_add_istream(client->input,
				    relay_idle_client_input, rclient);
	exch->idle_io = client->io;
	/* a DONE may have been read already (sent with the IDLE) */
	i_stream_set_input_pending(client->input, TRUE);
}

static void relay_idle_io_check(struct relay_client *rclient)
{
	struct relay_exchange *exch = &rclient->exch;

	timeout_remove(&exch->to_idle_io);
	if (rclient->exch_active && exch->idling && !exch->idle_done_sent &&
	    !rclient->client->disconnected &&
	    rclient->client->io != exch->idle_io)
		relay_idle_io_add(rclient);
}

/* While idling, after imap's own handling of the client's I/O: imap
   removes (or replaces) the client's io when input it cannot take as a
   command is buffered, and the DONE in it would never be read. Checked
   once that handling is over, as imap's IDLE does in its own way. */
static void relay_idle_io_check_later(struct relay_client *rclient)
{
	struct relay_exchange *exch = &rclient->exch;

	if (exch->idling && !exch->idle_done_sent && exch->to_idle_io == NULL) {
		exch->to_idle_io = timeout_add_short(0, relay_idle_io_check,
						     rclient);
	}
}

/* Is line (the start of a line of the server) the exchange's tagged
   reply? */
static bool relay_line_is_tagged(const struct relay_exchange *exch,
				 const unsigned char *line, size_t size)
{
	size_t tag_len = strlen(exch->tag);

	return size > tag_len && memcmp(line, exch->tag, tag_len) == 0 &&
		line[tag_len] == ' ';
}

/* If the line (data, up to but without its CRLF) ends with a literal's
   "{N}", returns TRUE with its size. */
static bool relay_line_literal(const unsigned char *data, size_t size,
			       uoff_t *size_r)
{
	size_t i;

	if (size < 3 || data[size-1] != '}')
		return FALSE;
	for (i = size - 1; i > 0 && data[i-1] >= '0' && data[i-1] <= '9'; i--) ;
	if (i == 0 || i == size - 1 || data[i-1] != '{')
		return FALSE;
	return str_to_uoff(t_strndup(data + i, size - 1 - i), size_r) == 0;
}

/* A line of the server at a line start that the relay handles itself
   (the tagged reply, BYE, a continuation, a CLOSED it drops). Returns 1
   if the line is to be copied after all, 0 if it was consumed and the
   copy goes on, -1 if the exchange is over. */
static int relay_exchange_special_line(struct relay_client *rclient,
				       const unsigned char *data, size_t end,
				       size_t line_len)
{
	struct relay_exchange *exch = &rclient->exch;
	struct relay_conn *conn = exch->conn;

	if (relay_line_is_tagged(exch, data, end)) {
		const char *text = t_strndup(data + strlen(exch->tag) + 1,
					     end - strlen(exch->tag) - 1);

		i_stream_skip(conn->input, line_len);
		relay_exchange_finish(rclient, text);
		return -1;
	}
	if (end >= 5 && memcmp(data, "* BYE", 5) == 0) {
		relay_exchange_failed(rclient, t_strdup_printf(
			"Server said: %s", t_strndup(data, end)));
		return -1;
	}
	if (data[0] == '+') {
		if (exch->kind != RELAY_KIND_IDLE || exch->idling) {
			relay_exchange_failed(rclient, "Unexpected continuation");
			return -1;
		}
		/* IDLE started: the client's DONE is read here, and the
		   server may be silent */
		exch->idling = TRUE;
		timeout_remove(&conn->to);
		relay_idle_io_add(rclient);
		return 1;
	}
	if (exch->drop_closed && end >= 13 &&
	    memcmp(data, "* OK [CLOSED]", 13) == 0) {
		i_stream_skip(conn->input, line_len);
		return 0;
	}
	return 1;
}

/* Is the line at data one the relay handles itself? (The common lines,
   "* N FETCH" and the like, are not: one test each.) */
static bool relay_line_is_special(const unsigned char *data, size_t end)
{
	if (data[0] == '*')
		return end >= 5 && (data[2] == 'B' || data[2] == 'O');
	return TRUE;
}

/* Is the line at data (a response's start, end bytes without CRLF) a
   status response, untagged or tagged ("* OK", "A1 NO", ...)? */
static bool relay_line_is_status(const unsigned char *data, size_t end)
{
	const unsigned char *sp = memchr(data, ' ', end);
	size_t rest;

	if (sp == NULL)
		return FALSE;
	sp++;
	rest = end - (sp - data);
	return (rest >= 3 && (memcmp(sp, "OK ", 3) == 0 ||
			      memcmp(sp, "NO ", 3) == 0)) ||
		(rest >= 4 && (memcmp(sp, "BAD ", 4) == 0 ||
			       memcmp(sp, "BYE ", 4) == 0)) ||
		(rest >= 8 && memcmp(sp, "PREAUTH ", 8) == 0);
}

/* Copy the server's reply to the client until its tagged line, the
   client's buffer is full, or the server has sent nothing more. What the
   read buffer holds is copied in one write: whole lines and literals
   (a literal's bytes are not looked at). Returns TRUE when the exchange
   is over (the client got its tagged line, or was disconnected). */
static bool relay_exchange_pump(struct relay_client *rclient)
{
	struct relay_exchange *exch = &rclient->exch;
	struct relay_conn *conn = exch->conn;
	struct client *client = rclient->client;
	const unsigned char *data, *lf;
	size_t size, pos, line_len, end, n;
	uoff_t literal_size;
	ssize_t ret;
	int special;
	bool at_start;

	/* the server has the timeout to reply, except while the client
	   idles or does not read */
	if (conn->to == NULL && (!exch->idling || exch->idle_done_sent)) {
		conn->to = timeout_add(conn->timeout_msecs,
				       relay_conn_timeout, rclient);
	}
	for (;;) {
		if (o_stream_get_buffer_used_size(client->output) >=
		    RELAY_CLIENT_OUTPUT_MAX) {
			/* imap runs the command again when the client has
			   read (relay_cmd_continue()) */
			io_remove(&conn->io);
			timeout_remove(&conn->to);
			exch->cmd->state = CLIENT_COMMAND_STATE_WAIT_OUTPUT;
			/* (and the deadline for a client that does not read) */
			(void)client_handle_unfinished_cmd(exch->cmd);
			return FALSE;
		}
		data = i_stream_get_data(conn->input, &size);
		pos = 0;
		while (pos < size) {
			if (exch->literal_left > 0) {
				n = I_MIN(size - pos, exch->literal_left);
				pos += n;
				exch->literal_left -= n;
				continue;
			}
			lf = memchr(data + pos, '\n', size - pos);
			if (lf == NULL)
				break;
			line_len = lf - (data + pos) + 1;
			end = line_len - 1;
			if (end > 0 && data[pos + end - 1] == '\r')
				end--;
			at_start = !exch->mid_line && !exch->continued;
			if (at_start && (end == 0 ||
			    relay_line_is_special(data + pos, end))) {
				/* what comes before it goes first */
				if (pos > 0) {
					o_stream_nsend(client->output, data, pos);
					i_stream_skip(conn->input, pos);
				}
				special = end == 0 ? 1 :
					relay_exchange_special_line(rclient,
						data + pos, end, line_len);
				if (special < 0)
					return TRUE;
				data = i_stream_get_data(conn->input, &size);
				pos = 0;
				if (special == 0)
					continue;
			}
			exch->mid_line = FALSE;
			/* a status response's text ("* OK ... {5}") has no
			   literal; every other line may end in one */
			exch->continued =
				!(at_start && relay_line_is_status(data + pos,
								   end)) &&
				relay_line_literal(data + pos, end,
						   &literal_size);
			if (exch->continued)
				exch->literal_left = literal_size;
			pos += line_len;
		}
		if (pos == 0 && size >= RELAY_INPUT_MAX_SIZE &&
		    exch->literal_left == 0) {
			/* a long line: copy all but its tail */
			if (!exch->mid_line && !exch->continued &&
			    relay_line_is_tagged(exch, data, size)) {
				relay_exchange_failed(rclient,
					"Tagged reply line too long");
				return TRUE;
			}
			exch->mid_line = TRUE;
			pos = size - RELAY_LINE_TAIL;
		}
		if (pos > 0) {
			o_stream_nsend(client->output, data, pos);
			i_stream_skip(conn->input, pos);
			if (exch->idling) {
				/* the server's news keep an idling client
				   alive, as imap's own IDLE keepalives do */
				timeout_reset(client->to_idle);
			}
			continue;
		}
		ret = i_stream_read(conn->input);
		if (ret > 0) {
			if (conn->to != NULL)
				timeout_reset(conn->to);
			continue;
		}
		if (ret == 0) {
			exch->cmd->state = CLIENT_COMMAND_STATE_WAIT_EXTERNAL;
			if (conn->io == NULL) {
				conn->io = io_add_istream(conn->input,
					relay_conn_input, rclient);
			}
			return FALSE;
		}
		relay_exchange_failed(rclient, relay_conn_input_error(conn, ret));
		return TRUE;
	}
}

/* The connection has input: copy. The command ends here when its reply
   is complete (imap frees it, and goes on with the client's input). The
   client's output is not corked: a block of the reply is written at
   once, without first being copied into the output buffer. */
static void relay_conn_input(struct relay_client *rclient)
{
	struct client_command_context *cmd = rclient->exch.cmd;

	if (relay_exchange_pump(rclient)) {
		cmd->state = CLIENT_COMMAND_STATE_WAIT_EXTERNAL;
		client_command_free(&cmd);
	}
}

static void relay_conn_timeout(struct relay_client *rclient)
{
	struct client_command_context *cmd = rclient->exch.cmd;

	relay_exchange_failed(rclient, relay_timeout_error(
		rclient->exch.conn->timeout_msecs));
	cmd->state = CLIENT_COMMAND_STATE_WAIT_EXTERNAL;
	client_command_free(&cmd);
}

static bool relay_cmd_continue(struct client_command_context *cmd)
{
	struct relay_client *rclient = RELAY_CLIENT_CONTEXT(cmd->client);
	struct relay_conn *conn;

	if (cmd->cancel) {
		/* the client is gone: the server's reply has nowhere to go,
		   and the connection is in the middle of it (unless the
		   client's destroy ended the exchange already) */
		if (rclient->exch_active && rclient->exch.cmd == cmd) {
			conn = rclient->exch.conn;
			relay_exchange_clear(rclient);
			relay_conn_destroy(&conn);
		}
		return TRUE;
	}
	if (relay_exchange_pump(rclient))
		return TRUE;
	relay_idle_io_check_later(rclient);
	return FALSE;
}

/* Send the client's command (line, without tag) to conn and copy the
   reply. */
static bool relay_forward(struct client_command_context *cmd,
			  struct relay_conn *conn, const char *line,
			  enum relay_kind kind, bool drop_closed)
{
	struct relay_client *rclient = conn->rclient;
	struct relay_exchange *exch = &rclient->exch;
	const char *error;

	i_assert(!rclient->exch_active);
	i_zero(exch);
	exch->cmd = cmd;
	exch->conn = conn;
	exch->kind = kind;
	exch->tag = cmd->tag;
	exch->drop_closed = drop_closed;
	exch->event = relay_command_event_begin(conn, cmd);
	exch->output_offset = relay_client_output_total(cmd->client);
	rclient->exch_active = TRUE;

	if (relay_conn_sync_features(conn, &error) < 0) {
		relay_exchange_failed(rclient, error);
		return TRUE;
	}
	o_stream_nsend_str(conn->output, t_strconcat(cmd->tag, " ", line,
						     "\r\n", NULL));
	if (o_stream_flush(conn->output) < 0) {
		relay_exchange_failed(rclient, o_stream_get_error(conn->output));
		return TRUE;
	}
	/* nothing else may write to the client until the reply is copied */
	cmd->client->output_cmd_lock = cmd;
	cmd->func = relay_cmd_continue;
	if (relay_exchange_pump(rclient))
		return TRUE;
	relay_idle_io_check_later(rclient);
	return FALSE;
}

/* Commands */

static const char *
relay_args_to_str(const struct imap_arg *args, bool literal_plus)
{
	string_t *str = t_str_new(128);

	for (; !IMAP_ARG_IS_EOL(args); args++) {
		if (str_len(str) > 0 && !referral_imap_arg_closes_section(args))
			str_append_c(str, ' ');
		if (!referral_imap_write_arg(str, args, literal_plus))
			return NULL;
	}
	return str_c(str);
}

/* Run imap's own command instead (the mailbox is not passed through). */
static bool relay_cmd_dovecot(struct client_command_context *cmd)
{
	struct command *command = command_find(cmd->name);

	i_assert(command != NULL);
	cmd->func = command->func;
	return cmd->func(cmd);
}

static bool relay_has_option(const struct imap_arg *params, const char *name)
{
	const char *atom;

	for (; params != NULL && !IMAP_ARG_IS_EOL(params); params++) {
		if (imap_arg_get_atom(params, &atom) &&
		    strcasecmp(atom, name) == 0)
			return TRUE;
	}
	return FALSE;
}

/* SELECT and EXAMINE of a proxied session: passed through if the mailbox
   is remote, imap's own otherwise. */
static bool cmd_relay_select(struct client_command_context *cmd)
{
	struct client *client = cmd->client;
	struct relay_client *rclient;
	struct relay_conn *conn;
	struct mail_namespace *ns = NULL;
	struct referral_proxy_route route;
	const struct imap_arg *args, *params = NULL;
	const char *mailbox, *vname, *error, *line, *options;
	bool had_mailbox;

	if (!client_read_args(cmd, 0, 0, &args))
		return FALSE;
	vname = NULL;
	if (imap_arg_get_astring(&args[0], &mailbox) &&
	    (IMAP_ARG_IS_EOL(&args[1]) ||
	     (imap_arg_get_list(&args[1], &params) &&
	      IMAP_ARG_IS_EOL(&args[2])))) {
		vname = mailbox;
		ns = client_find_namespace_full(client, &vname, &error);
		if (ns == NULL ||
		    mailbox_referrals_proxy_route(ns, vname, &route) <= 0)
			vname = NULL;
	}
	if (vname == NULL) {
		/* a local mailbox, or one imap's own SELECT reports (invalid
		   arguments too): a remote one selected is closed, as imap
		   closes its own before it fails */
		rclient = RELAY_CLIENT_CONTEXT(client);
		if (rclient != NULL) {
			had_mailbox = rclient->selected != NULL ||
				rclient->lost;
			rclient->selected = NULL;
			rclient->lost = FALSE;
			if (had_mailbox && client->mailbox == NULL) {
				/* imap does not know a mailbox was open */
				client_send_line(client, "* OK [CLOSED] "
						 "Previous mailbox closed.");
			}
		}
		return relay_cmd_dovecot(cmd);
	}
	options = params == NULL ? "" : relay_args_to_str(&args[1], TRUE);
	if (options == NULL)
		return relay_cmd_dovecot(cmd);

	rclient = relay_client_get(client);
	had_mailbox = client->mailbox != NULL || rclient->selected != NULL ||
		rclient->lost;
	if (client->mailbox != NULL)
		imap_client_close_mailbox(client);
	rclient->selected = NULL;
	rclient->lost = FALSE;
	if (had_mailbox) {
		/* as imap's SELECT does (QRESYNC wants it); the server's own
		   is dropped (relay_exchange_pump()) */
		client_send_line(client, "* OK [CLOSED] Previous mailbox closed.");
	}
	/* as imap's SELECT does with these options */
	if (relay_has_option(params, "CONDSTORE"))
		client_enable(client, imap_feature_condstore);
	if (relay_has_option(params, "QRESYNC"))
		client_enable(client, imap_feature_qresync);

	conn = relay_conn_get(rclient, ns, &route, &error);
	if (conn == NULL) {
		client_send_tagline(cmd, t_strdup_printf(
			"NO ["IMAP_RESP_CODE_UNAVAILABLE"] %s", error));
		return TRUE;
	}
	{
		string_t *str = t_str_new(128);

		str_append(str, strcasecmp(cmd->name, "EXAMINE") == 0 ?
			   "EXAMINE " : "SELECT ");
		imap_append_astring(str, route.remote_name);
		if (options[0] != '\0') {
			str_append_c(str, ' ');
			str_append(str, options);
		}
		line = str_c(str);
	}
	i_free(rclient->selected_vname);
	rclient->selected_vname = i_strdup(vname);
	return relay_forward(cmd, conn, line, RELAY_KIND_SELECT, TRUE);
}

/* COPY or MOVE from the selected mailbox to dest_name, which its server
   does not hold: the messages are copied through lib-storage (imapc for
   the source, and for a destination on another server). */
static bool
relay_copy_other(struct client_command_context *cmd, struct relay_conn *conn,
		 const char *set, const char *dest_name, bool move);

static void relay_command_failed(struct client_command_context *cmd,
				 struct relay_conn *conn, enum relay_kind kind,
				 const char *reason);

/* Is conn's server the first of route's? (A COPY or MOVE within it is
   the server's own.) */
static bool relay_route_first_is(const struct referral_proxy_route *route,
				 const struct relay_conn *conn)
{
	const struct referral_proxy_route_server *server =
		array_idx(&route->servers, 0);

	return strcmp(server->name, conn->server) == 0;
}

/* A command on the selected remote mailbox. */
static bool cmd_relay_selected(struct client_command_context *cmd)
{
	struct relay_client *rclient = RELAY_CLIENT_CONTEXT(cmd->client);
	struct relay_conn *conn = rclient->selected;
	const struct imap_arg *args;
	const char *name, *line, *set, *dest_name, *vname;
	struct mail_namespace *dest_ns;
	struct referral_proxy_route route;
	enum relay_kind kind = RELAY_KIND_OTHER;
	string_t *str;

	if (!client_read_args(cmd, 0, 0, &args))
		return FALSE;
	name = cmd->uid ? cmd->name + 4 : cmd->name;
	if (strcasecmp(name, "CLOSE") == 0 || strcasecmp(name, "UNSELECT") == 0)
		kind = RELAY_KIND_DESELECT;
	else if (strcasecmp(name, "IDLE") == 0)
		kind = RELAY_KIND_IDLE;
	if (conn != NULL && relay_conn_is_closed(conn)) {
		/* the server closed the connection between commands */
		if (kind != RELAY_KIND_DESELECT) {
			relay_command_failed(cmd, conn, kind,
					     "Connection closed");
			return TRUE;
		}
		e_warning(cmd->client->event, "mailbox-referrals: Remote "
			  "server %s: Lost the connection: Connection closed",
			  conn->server);
		relay_conn_destroy(&conn);
	}
	if (conn == NULL && kind == RELAY_KIND_DESELECT) {
		/* the client's mailbox is closed all the same (a NO would
		   leave it thinking it is still selected); CLOSE could not
		   expunge, and says so */
		rclient->selected = NULL;
		rclient->lost = FALSE;
		client_send_tagline(cmd, strcasecmp(name, "CLOSE") == 0 ?
			"OK Close completed; the server of this mailbox is "
			"unreachable: nothing was expunged." :
			"OK Unselect completed.");
		return TRUE;
	}
	if (conn == NULL) {
		/* the connection was lost */
		client_send_tagline(cmd, t_strdup_printf(
			"NO ["IMAP_RESP_CODE_UNAVAILABLE"] %s",
			relay_lost_error(rclient->lost_server)));
		return TRUE;
	}

	str = t_str_new(128);
	str_append(str, cmd->name);
	if ((strcasecmp(name, "COPY") == 0 || strcasecmp(name, "MOVE") == 0) &&
	    imap_arg_get_atom(&args[0], &set) &&
	    imap_arg_get_astring(&args[1], &dest_name) &&
	    IMAP_ARG_IS_EOL(&args[2])) {
		/* the destination's name on the server */
		vname = dest_name;
		dest_ns = client_find_namespace_full(cmd->client, &vname,
						     &line);
		if (dest_ns != conn->home_ns ||
		    mailbox_referrals_proxy_route(dest_ns, vname, &route) <= 0 ||
		    !relay_route_first_is(&route, conn)) {
			return relay_copy_other(cmd, conn, set, dest_name,
						strcasecmp(name, "MOVE") == 0);
		}
		str_printfa(str, " %s ", set);
		imap_append_astring(str, route.remote_name);
	} else if (!IMAP_ARG_IS_EOL(args)) {
		line = relay_args_to_str(args, relay_conn_has_capability(
			conn, "LITERAL+"));
		if (line == NULL) {
			client_send_tagline(cmd, "NO The server of this mailbox "
				"cannot take this command's strings");
			return TRUE;
		}
		str_append_c(str, ' ');
		str_append(str, line);
	}
	return relay_forward(cmd, conn, str_c(str), kind, FALSE);
}

/* The command failed because conn did (reason): as an exchange that
   lost its connection before its first byte. */
static void relay_command_failed(struct client_command_context *cmd,
				 struct relay_conn *conn, enum relay_kind kind,
				 const char *reason)
{
	struct relay_client *rclient = conn->rclient;

	i_zero(&rclient->exch);
	rclient->exch.conn = conn;
	rclient->exch.cmd = cmd;
	rclient->exch.kind = kind;
	rclient->exch_active = TRUE;
	relay_exchange_failed(rclient, reason);
}

/* The UIDs of set (UIDs if uid, else sequence numbers of the client's
   view, which is the server's) into uids. Returns 0, 1 with reply_r if
   the server refused, -1 with error_r if the connection failed. */
static int relay_collect_uids(struct relay_client *rclient,
			      struct relay_conn *conn, bool uid,
			      const char *set, ARRAY_TYPE(seq_range) *uids,
			      const char **reply_r, const char **error_r)
{
	ARRAY_TYPE(const_string) untagged;
	const char *reply, *const *linep, *const *words;
	uint32_t num;
	bool esearch;

	/* ESEARCH's ALL is a set (1:40000), where SEARCH lists every UID
	   on one line, longer than a line may be for a large mailbox */
	esearch = relay_conn_has_capability(conn, "ESEARCH");
	t_array_init(&untagged, 8);
	if (relay_conn_command(conn, t_strdup_printf("UID SEARCH %s%s%s",
				esearch ? "RETURN (ALL) " : "",
				uid ? "UID " : "", set),
			       &untagged, &reply, error_r) < 0)
		return -1;
	array_foreach(&untagged, linep) {
		if (esearch && str_begins(*linep, "* ESEARCH ")) {
			words = t_strsplit_spaces(*linep, " ");
			for (; *words != NULL; words++) {
				if (strcasecmp(*words, "ALL") == 0 &&
				    words[1] != NULL &&
				    imap_seq_set_nostar_parse(words[1],
							      uids) < 0) {
					*error_r = "Invalid ESEARCH reply";
					return -1;
				}
			}
			continue;
		}
		if (!esearch && str_begins(*linep, "* SEARCH")) {
			words = t_strsplit_spaces(*linep + 8, " ");
			for (; *words != NULL; words++) {
				if (str_to_uint32(*words, &num) == 0)
					seq_range_array_add(uids, num);
			}
			continue;
		}
		/* news of the mailbox: the client's too */
		client_send_line(rclient->client, *linep);
	}
	if (!str_begins(reply, "OK")) {
		*reply_r = reply;
		return 1;
	}
	return 0;
}

static bool
relay_copy_other(struct client_command_context *cmd, struct relay_conn *conn,
		 const char *set, const char *dest_name, bool move)
{
	struct relay_client *rclient = conn->rclient;
	struct client *client = cmd->client;
	struct mail_namespace *ns = conn->home_ns;
	struct mailbox *box, *destbox, *errbox;
	struct mailbox_transaction_context *src_trans, *dest_trans;
	struct mail_transaction_commit_changes changes;
	struct mail_search_args *search_args;
	struct mail_search_arg *sarg;
	struct mail_search_context *search_ctx;
	struct mail_save_context *save_ctx;
	struct mail *mail;
	ARRAY_TYPE(seq_range) uids, copied_uids;
	ARRAY_TYPE(const_string) untagged;
	const char *reply, *error, *const *linep;
	string_t *msg;
	int ret;

	if (move && rclient->selected_readonly) {
		/* as imap's own MOVE from an EXAMINEd mailbox */
		client_send_tagline(cmd, "NO [READ-ONLY] "
				    "Mailbox is read-only.");
		return TRUE;
	}
	/* the set goes into a UID SEARCH: only a set, or SEARCHRES' $ */
	t_array_init(&uids, 16);
	if (strcmp(set, "$") != 0 && imap_seq_set_parse(set, &uids) < 0) {
		client_send_command_error(cmd, "Invalid messageset");
		return TRUE;
	}
	array_clear(&uids);
	ret = relay_collect_uids(rclient, conn, cmd->uid, set, &uids,
				 &reply, &error);
	if (ret < 0) {
		relay_command_failed(cmd, conn, RELAY_KIND_OTHER, error);
		return TRUE;
	}
	if (ret > 0) {
		client_send_tagline(cmd, reply);
		return TRUE;
	}
	if (array_count(&uids) == 0) {
		client_send_tagline(cmd, "OK No messages found.");
		return TRUE;
	}
	if (client_open_save_dest_box(cmd, dest_name, &destbox) < 0)
		return TRUE;

	/* the source, through lib-storage (the proxy's imapc) */
	box = mailbox_alloc(ns->list, rclient->selected_vname,
			    move ? 0 : MAILBOX_FLAG_READONLY);
	if (mailbox_open(box) < 0 ||
	    mailbox_sync(box, 0) < 0) {
		client_send_box_error(cmd, box);
		mailbox_free(&box);
		mailbox_free(&destbox);
		return TRUE;
	}
	search_args = mail_search_build_init();
	sarg = mail_search_build_add(search_args, SEARCH_UIDSET);
	p_array_init(&sarg->value.seqset, search_args->pool, array_count(&uids));
	array_append_array(&sarg->value.seqset, &uids);

	src_trans = mailbox_transaction_begin(box, 0, "relay copy");
	dest_trans = mailbox_transaction_begin(destbox,
		MAILBOX_TRANSACTION_FLAG_EXTERNAL |
		MAILBOX_TRANSACTION_FLAG_ASSIGN_UIDS, "relay copy");
	search_ctx = mailbox_search_init(src_trans, search_args, NULL, 0, NULL);
	mail_search_args_unref(&search_args);
	ret = 0;
	errbox = destbox;
	t_array_init(&copied_uids, array_count(&uids));
	while (mailbox_search_next(search_ctx, &mail)) {
		/* (a message expunged meanwhile is not among them) */
		seq_range_array_add(&copied_uids, mail->uid);
		save_ctx = mailbox_save_alloc(dest_trans);
		mailbox_save_copy_flags(save_ctx, mail);
		if ((move ? mailbox_move(&save_ctx, mail) :
		     mailbox_copy(&save_ctx, mail)) < 0) {
			ret = -1;
			break;
		}
	}
	if (mailbox_search_deinit(&search_ctx) < 0 && ret == 0) {
		ret = -1;
		errbox = box;
	}
	msg = t_str_new(128);
	if (ret < 0) {
		/* the error is the source's or the destination's */
		mailbox_transaction_rollback(&dest_trans);
		mailbox_transaction_rollback(&src_trans);
		client_send_box_error(cmd, errbox);
	} else if (mailbox_transaction_commit_get_changes(&dest_trans,
							  &changes) < 0) {
		/* nothing was saved: the source stays as it was */
		mailbox_transaction_rollback(&src_trans);
		client_send_box_error(cmd, destbox);
	} else if (move && (mailbox_transaction_commit(&src_trans) < 0 ||
			    /* imapc expunges when it syncs */
			    mailbox_sync(box, 0) < 0)) {
		pool_unref(&changes.pool);
		e_error(client->event, "mailbox-referrals: MOVE from %s: "
			"copied, but not expunged: %s",
			str_sanitize(rclient->selected_vname, 256),
			str_sanitize(mailbox_get_last_internal_error(box, NULL),
				     256));
		client_send_tagline(cmd, t_strdup_printf(
			"NO [SERVERBUG] The messages were copied, but not "
			"removed from this mailbox: %s",
			MAIL_ERRSTR_CRITICAL_MSG));
	} else {
		if (!move)
			mailbox_transaction_rollback(&src_trans);
		if (changes.uid_validity != 0 &&
		    array_count(&changes.saved_uids) > 0) {
			str_printfa(msg, "[COPYUID %u ", changes.uid_validity);
			imap_write_seq_range(msg, &copied_uids);
			str_append_c(msg, ' ');
			imap_write_seq_range(msg, &changes.saved_uids);
			str_append(msg, "] ");
		}
		pool_unref(&changes.pool);
		ret = 1;
	}
	mailbox_free(&box);
	mailbox_free(&destbox);
	if (ret <= 0)
		return TRUE;
	if (!move) {
		client_send_tagline(cmd, t_strdup_printf("OK %sCopy completed.",
							 str_c(msg)));
		return TRUE;
	}
	/* the server tells this connection of the expunges */
	if (str_len(msg) > 0) {
		client_send_line(client, t_strdup_printf(
			"* OK %sMoved UIDs.", str_c(msg)));
	}
	t_array_init(&untagged, 16);
	if (relay_conn_command(conn, "NOOP", &untagged, &reply, &error) < 0) {
		relay_command_failed(cmd, conn, RELAY_KIND_OTHER, error);
		return TRUE;
	}
	array_foreach(&untagged, linep)
		client_send_line(client, *linep);
	client_send_tagline(cmd, "OK Move completed.");
	return TRUE;
}

/* The rest of a "* STATUS name (...)" line after the name (an atom or
   a quoted string, as servers send mailbox names without 8-bit
   characters), or NULL. */
static const char *relay_status_rest(const char *line)
{
	const char *p = line + strlen("* STATUS ");

	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '\0')
				return NULL;
		}
		p++;
	} else {
		if (*p == '{')
			return NULL;
		p = strchr(p, ' ');
		if (p == NULL)
			return NULL;
	}
	return *p == ' ' ? p : NULL;
}

/* STATUS of a remote mailbox of a session that passes commands through:
   on the connection SELECT uses (or would), its reply under the client's
   name for the mailbox. */
static bool cmd_relay_status(struct client_command_context *cmd)
{
	struct client *client = cmd->client;
	struct relay_client *rclient;
	struct relay_conn *conn;
	struct mail_namespace *ns;
	struct referral_proxy_route route;
	ARRAY_TYPE(const_string) untagged;
	const struct imap_arg *args;
	const char *mailbox, *vname, *items, *error, *reply, *rest;
	const char *const *linep;
	string_t *str;
	struct event *event;
	uoff_t output_offset;

	if (!client_read_args(cmd, 0, 0, &args))
		return FALSE;
	if (!imap_arg_get_astring(&args[0], &mailbox) ||
	    args[1].type != IMAP_ARG_LIST || !IMAP_ARG_IS_EOL(&args[2]))
		return relay_cmd_dovecot(cmd);
	vname = mailbox;
	ns = client_find_namespace_full(client, &vname, &error);
	if (ns == NULL || mailbox_referrals_proxy_route(ns, vname, &route) <= 0)
		return relay_cmd_dovecot(cmd);
	items = relay_args_to_str(&args[1], FALSE);
	if (items == NULL)
		return relay_cmd_dovecot(cmd);
	rclient = relay_client_get(client);
	conn = relay_conn_get(rclient, ns, &route, &error);
	if (conn == NULL) {
		client_send_tagline(cmd, t_strdup_printf(
			"NO ["IMAP_RESP_CODE_UNAVAILABLE"] %s", error));
		return TRUE;
	}
	str = t_str_new(128);
	str_append(str, "STATUS ");
	imap_append_astring(str, route.remote_name);
	str_append_c(str, ' ');
	str_append(str, items);
	t_array_init(&untagged, 4);
	event = relay_command_event_begin(conn, cmd);
	output_offset = relay_client_output_total(client);
	if (relay_conn_command(conn, str_c(str), &untagged, &reply,
			       &error) < 0) {
		event_unref(&event);
		relay_command_failed(cmd, conn, RELAY_KIND_OTHER, error);
		return TRUE;
	}
	array_foreach(&untagged, linep) {
		if (str_begins(*linep, "* STATUS ") &&
		    (rest = relay_status_rest(*linep)) != NULL) {
			str_truncate(str, 0);
			str_append(str, "* STATUS ");
			imap_append_astring(str, mailbox);
			str_append(str, rest);
			client_send_line(client, str_c(str));
		} else if (conn == rclient->selected &&
			   str_begins(*linep, "* ")) {
			/* news of the selected mailbox */
			client_send_line(client, *linep);
		}
	}
	reply = relay_tagged_text(conn, reply);
	client_send_tagline(cmd, reply);
	relay_command_event(conn, &event, output_offset, reply, NULL);
	return TRUE;
}

/* Before a command: TRUE if it is passed through (cmd->func replaced). */
bool imap_referral_relay_command_pre(struct client_command_context *cmd)
{
	struct relay_client *rclient = RELAY_CLIENT_CONTEXT(cmd->client);
	const char *name;

	if (strcasecmp(cmd->name, "SELECT") == 0 ||
	    strcasecmp(cmd->name, "EXAMINE") == 0) {
		if (!mailbox_referrals_user_may_pass_through(cmd->client->user))
			return FALSE;
		cmd->func = cmd_relay_select;
		return TRUE;
	}
	if (strcasecmp(cmd->name, "STATUS") == 0) {
		if (!mailbox_referrals_user_may_pass_through(cmd->client->user))
			return FALSE;
		cmd->func = cmd_relay_status;
		return TRUE;
	}
	if (rclient == NULL || (rclient->selected == NULL && !rclient->lost))
		return FALSE;
	name = cmd->uid && strncasecmp(cmd->name, "UID ", 4) == 0 ?
		cmd->name + 4 : cmd->name;
	if (!str_array_icase_find(relay_selected_commands, name))
		return FALSE;
	if (cmd->uid && strcasecmp(name, "CLOSE") == 0)
		return FALSE;
	cmd->func = cmd_relay_selected;
	return TRUE;
}

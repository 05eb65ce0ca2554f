/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* Client connections (doc/directory-service-protocol.md). Requests are
   answered in the order received: while a reply cannot be written at once
   (a LIST streaming from the replica, or output the client doesn't read),
   the connection stops reading requests. A LIST writes entries only while
   the output buffer is below DIRECTORY_CLIENT_OUTPUT_THRESHOLD and
   continues from the flush callback, so a slow reader costs a bounded
   buffer and never delays other clients. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strnum.h"
#include "strescape.h"
#include "str-sanitize.h"
#include "ioloop.h"
#include "istream.h"
#include "ostream.h"
#include "connection.h"
#include "master-service.h"
#include "directory-replica.h"
#include "directory-service.h"

/* The protocol's line limit, LF included. */
#define DIRECTORY_CLIENT_MAX_LINE 65536
#define DIRECTORY_CLIENT_OUTPUT_THRESHOLD (64*1024)
/* LIST entries written between two checks of the output buffer */
#define DIRECTORY_CLIENT_LIST_BATCH 64

struct directory_list {
	uint32_t id;
	char *prefix;
	/* the replica the listing reads: a new complete copy doesn't mix
	   into a listing in progress */
	struct replica *replica;
	/* where to continue; NULL before the first entry */
	char *last_mailbox, *last_dn;
	unsigned int entries;
	struct event *event;
};

struct directory_client {
	struct connection conn;
	/* the LIST in progress, or NULL */
	struct directory_list *list;
	/* input is halted until the output buffer drains */
	bool output_blocked;
};

static struct connection_list *directory_clients;

static void directory_client_resume(struct directory_client *client);

static void
directory_request_finished(struct directory_client *client,
			   struct event *parent, const char *command,
			   unsigned int entries, const char *error)
{
	struct event_passthrough *e =
		event_create_passthrough(parent != NULL ? parent :
					 client->conn.event)->
		set_name(DIRECTORY_EVENT_REQUEST_FINISHED)->
		add_str("command", command)->
		add_int("entries", entries);

	if (error != NULL) {
		e->add_str("error", error);
		e_debug(e->event(), "%s failed: %s", command, error);
	} else {
		e_debug(e->event(), "%s finished: %u entries",
			command, entries);
	}
}

static void
directory_client_reply(struct directory_client *client, const char *type,
		       uint32_t id, const char *const *fields)
{
	string_t *str = t_str_new(256);

	str_printfa(str, "%s\t%u", type, id);
	for (; fields != NULL && *fields != NULL; fields++) {
		str_append_c(str, '\t');
		str_append_tabescaped(str, *fields);
	}
	str_append_c(str, '\n');
	o_stream_nsend(client->conn.output, str_data(str), str_len(str));
}

static void
directory_client_fail(struct directory_client *client, uint32_t id,
		      const char *error)
{
	const char *fields[] = { error, NULL };

	directory_client_reply(client, "FAIL", id, fields);
}

/* Why LOOKUP and LIST can't be answered now, or NULL. */
static const char *directory_unavailable_reason(void)
{
	if (directory_service->set.referral == NULL) {
		return t_strdup_printf("The directory service is not "
			"configured: %s", directory_service->set.error);
	}
	if (directory_service->replica != NULL)
		return NULL;
	if (directory_service->over_limit_problem != NULL) {
		return t_strdup_printf("The directory service has no complete "
			"copy of the directory: %s",
			directory_service->over_limit_problem);
	}
	return "The directory service has no complete copy of the "
		"directory yet";
}

static void
directory_send_entry(struct directory_client *client, uint32_t id,
		     const struct directory_entry *entry)
{
	ARRAY_TYPE(const_string) fields;
	const char *const *server;

	t_array_init(&fields, 8);
	array_push_back(&fields, &entry->dn);
	array_push_back(&fields, &entry->mailbox);
	array_push_back(&fields, &entry->scope);
	array_push_back(&fields, &entry->remote_name);
	for (server = entry->servers; *server != NULL; server++)
		array_push_back(&fields, server);
	array_append_zero(&fields);
	directory_client_reply(client, "E", id, array_front(&fields));
}

struct directory_lookup_context {
	struct directory_client *client;
	uint32_t id;
	unsigned int entries;
};

static void directory_lookup_entry(const struct directory_entry *entry,
				   void *context)
{
	struct directory_lookup_context *ctx = context;

	directory_send_entry(ctx->client, ctx->id, entry);
	ctx->entries++;
}

static int
cmd_lookup(struct directory_client *client, uint32_t id,
	   const char *const *args)
{
	struct directory_lookup_context ctx;
	const char *error;

	if (args[0] == NULL) {
		e_error(client->conn.event, "LOOKUP without a name");
		return -1;
	}
	if ((error = directory_unavailable_reason()) != NULL) {
		directory_client_fail(client, id, error);
		directory_request_finished(client, NULL, "LOOKUP", 0, error);
		return 1;
	}
	i_zero(&ctx);
	ctx.client = client;
	ctx.id = id;
	replica_lookup(directory_service->replica, args[0], args + 1,
		       directory_lookup_entry, &ctx);
	directory_client_reply(client, "OK", id, NULL);
	directory_request_finished(client, NULL, "LOOKUP", ctx.entries, NULL);
	return 1;
}

static void directory_list_free(struct directory_list **_list)
{
	struct directory_list *list = *_list;

	*_list = NULL;
	replica_unref(&list->replica);
	event_unref(&list->event);
	i_free(list->prefix);
	i_free(list->last_mailbox);
	i_free(list->last_dn);
	i_free(list);
}

/* Write entries while the output buffer has room. Returns 1 when the
   listing is complete, 0 when it continues on the next flush. */
static int directory_list_continue(struct directory_client *client)
{
	struct directory_list *list = client->list;
	const struct directory_entry *entry;
	unsigned int idx, n;
	size_t prefix_len = strlen(list->prefix);

	idx = replica_seek(list->replica, list->prefix, list->last_mailbox,
			   list->last_dn);
	o_stream_cork(client->conn.output);
	for (;;) {
		if (o_stream_get_buffer_used_size(client->conn.output) >=
		    DIRECTORY_CLIENT_OUTPUT_THRESHOLD) {
			entry = replica_entry_at(list->replica, idx - 1);
			if (entry != NULL && list->entries > 0) {
				i_free(list->last_mailbox);
				i_free(list->last_dn);
				list->last_mailbox = i_strdup(entry->mailbox);
				list->last_dn = i_strdup(entry->dn);
			}
			o_stream_uncork(client->conn.output);
			/* The uncork may have handed the whole buffer to the
			   socket: the stream then waits for nothing and would
			   never call the flush callback that continues this
			   listing. Ask for the call. */
			o_stream_set_flush_pending(client->conn.output, TRUE);
			return 0;
		}
		for (n = 0; n < DIRECTORY_CLIENT_LIST_BATCH; n++, idx++) {
			entry = replica_entry_at(list->replica, idx);
			if (entry == NULL ||
			    strncmp(entry->mailbox, list->prefix,
				    prefix_len) != 0)
				break;
			T_BEGIN {
				directory_send_entry(client, list->id, entry);
			} T_END;
			list->entries++;
		}
		if (n < DIRECTORY_CLIENT_LIST_BATCH)
			break;
	}
	directory_client_reply(client, "OK", list->id, NULL);
	o_stream_uncork(client->conn.output);
	directory_request_finished(client, list->event, "LIST", list->entries,
				   NULL);
	directory_list_free(&client->list);
	return 1;
}

static int
cmd_list(struct directory_client *client, uint32_t id,
	 const char *const *args)
{
	struct directory_list *list;
	const char *error;

	if (args[0] == NULL) {
		e_error(client->conn.event, "LIST without a prefix");
		return -1;
	}
	if ((error = directory_unavailable_reason()) != NULL) {
		directory_client_fail(client, id, error);
		directory_request_finished(client, NULL, "LIST", 0, error);
		return 1;
	}
	list = i_new(struct directory_list, 1);
	list->id = id;
	list->prefix = i_strdup(args[0]);
	list->replica = directory_service->replica;
	replica_ref(list->replica);
	list->event = event_create(client->conn.event);
	client->list = list;
	if (directory_list_continue(client) > 0)
		return 1;
	/* the rest comes from the flush callback; read no further request
	   before this one is answered */
	connection_input_halt(&client->conn);
	return 0;
}

struct directory_problems_context {
	struct directory_client *client;
	uint32_t id;
	unsigned int count;
};

static void directory_problem(const char *line, void *context)
{
	struct directory_problems_context *ctx = context;
	string_t *str = t_str_new(256);

	/* line's fields are escaped already */
	str_printfa(str, "P\t%u\t%s\n", ctx->id, line);
	o_stream_nsend(ctx->client->conn.output, str_data(str), str_len(str));
	ctx->count++;
}

static int
cmd_problems(struct directory_client *client, uint32_t id,
	     const char *const *args ATTR_UNUSED)
{
	struct directory_problems_context ctx;

	i_zero(&ctx);
	ctx.client = client;
	ctx.id = id;
	if (directory_service->over_limit_problem != NULL) {
		const char *fields[] = {
			"over-limit", "", directory_service->over_limit_problem,
			NULL
		};
		directory_client_reply(client, "P", id, fields);
		ctx.count++;
	}
	if (directory_service->replica != NULL) {
		replica_problems(directory_service->replica,
				 directory_problem, &ctx);
	}
	directory_client_reply(client, "OK", id, NULL);
	directory_request_finished(client, NULL, "PROBLEMS", ctx.count, NULL);
	return 1;
}

static int
cmd_status(struct directory_client *client, uint32_t id,
	   const char *const *args ATTR_UNUSED)
{
	const char *fields[6];

	fields[0] = directory_service->replica == NULL ? "loading" :
		(directory_service->synced ? "synced" : "stale");
	fields[1] = directory_service->persist ? "persist" : "poll";
	fields[2] = dec2str(directory_service->replica == NULL ? 0 :
			    replica_count(directory_service->replica));
	fields[3] = dec2str(directory_service->generation);
	fields[4] = dec2str(directory_service->changed_msecs);
	fields[5] = NULL;
	directory_client_reply(client, "S", id, fields);
	directory_client_reply(client, "OK", id, NULL);
	directory_request_finished(client, NULL, "STATUS", 0, NULL);
	return 1;
}

static const struct {
	const char *name;
	int (*func)(struct directory_client *client, uint32_t id,
		    const char *const *args);
} directory_commands[] = {
	{ "LOOKUP", cmd_lookup },
	{ "LIST", cmd_list },
	{ "PROBLEMS", cmd_problems },
	{ "STATUS", cmd_status },
};

static int
directory_client_input_args(struct connection *conn, const char *const *args)
{
	struct directory_client *client =
		container_of(conn, struct directory_client, conn);
	uint32_t id;
	unsigned int i;
	int ret;

	if (args[0] == NULL || args[1] == NULL ||
	    str_to_uint32(args[1], &id) < 0 || id == 0) {
		e_error(conn->event, "Malformed request: %s",
			str_sanitize(t_strarray_join(args, " "),
						 128));
		return -1;
	}
	for (i = 0; i < N_ELEMENTS(directory_commands); i++) {
		if (strcmp(directory_commands[i].name, args[0]) == 0)
			break;
	}
	if (i == N_ELEMENTS(directory_commands)) {
		e_error(conn->event, "Unknown command: %s",
			str_sanitize(args[0], 64));
		return -1;
	}
	ret = directory_commands[i].func(client, id, args + 2);
	if (ret > 0 && o_stream_get_buffer_used_size(conn->output) >=
	    DIRECTORY_CLIENT_OUTPUT_THRESHOLD) {
		/* the client isn't reading: wait for it before answering
		   more requests */
		client->output_blocked = TRUE;
		connection_input_halt(conn);
		return 0;
	}
	return ret;
}

static int directory_client_output(struct directory_client *client)
{
	struct ostream *output = client->conn.output;
	int ret;

	if ((ret = o_stream_flush(output)) <= 0) {
		if (ret < 0)
			connection_disconnect(&client->conn);
		return ret;
	}
	if (client->list != NULL) {
		/* 0: not finished, call again when the client has read */
		if (directory_list_continue(client) == 0)
			return 0;
		directory_client_resume(client);
	} else if (client->output_blocked &&
		   o_stream_get_buffer_used_size(output) <
		   DIRECTORY_CLIENT_OUTPUT_THRESHOLD) {
		client->output_blocked = FALSE;
		directory_client_resume(client);
	}
	return 1;
}

static void directory_client_resume(struct directory_client *client)
{
	/* answers requests already read, then reads more */
	connection_input_resume(&client->conn);
}

static void directory_client_destroy(struct connection *conn)
{
	struct directory_client *client =
		container_of(conn, struct directory_client, conn);

	switch (conn->disconnect_reason) {
	case CONNECTION_DISCONNECT_BUFFER_FULL:
		e_error(conn->event, "Request line longer than %u bytes: "
			"disconnecting", DIRECTORY_CLIENT_MAX_LINE);
		break;
	case CONNECTION_DISCONNECT_HANDSHAKE_FAILED:
		e_error(conn->event, "Handshake failed: disconnecting");
		break;
	default:
		break;
	}
	if (client->list != NULL) {
		directory_request_finished(client, client->list->event, "LIST",
			client->list->entries, "client disconnected");
		directory_list_free(&client->list);
	}
	connection_deinit(conn);
	i_free(client);
	master_service_client_connection_destroyed(master_service);
}

static const struct connection_vfuncs directory_client_vfuncs = {
	.destroy = directory_client_destroy,
	.input_args = directory_client_input_args,
};

static const struct connection_settings directory_client_set = {
	.service_name_in = DIRECTORY_SERVICE_NAME,
	.service_name_out = DIRECTORY_SERVICE_NAME,
	.major_version = 1,
	.minor_version = 0,
	.input_max_size = DIRECTORY_CLIENT_MAX_LINE,
	.output_max_size = SIZE_MAX,
	.client = FALSE,
};

void directory_client_create(int fd)
{
	struct directory_client *client;
	client = i_new(struct directory_client, 1);
	client->conn.event_parent = directory_service->event;
	/* the connection's log prefix names the peer by pid and uid */
	connection_init_server(directory_clients, &client->conn, "client",
			       fd, fd);
	o_stream_set_flush_callback(client->conn.output,
				    directory_client_output, client);
}

void directory_clients_init(void)
{
	directory_clients = connection_list_init(&directory_client_set,
						 &directory_client_vfuncs);
}

void directory_clients_deinit(void)
{
	connection_list_deinit(&directory_clients);
}

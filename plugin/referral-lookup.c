/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "str-sanitize.h"
#include "referral-settings.h"
#include "referral-directory.h"
#include "referral-cache.h"
#include "referral-listing.h"
#include "referral-lookup.h"
#include "referral-plugin.h"

/* A directory full of bad entries must not flood the log once per
   listing per session. */
#define REFERRAL_MAX_LOGGED_WARNINGS 10

#define REFERRAL_UNUSABLE_ENTRY_ERROR \
	"Remote mailbox has no usable server in the directory"

bool referral_server_is_self(struct referral_user *ruser,
			     const struct referral_server *server)
{
	const struct mail_user_connection_data *conn = &ruser->user->conn;
	const struct referral_host *self;

	array_foreach(&ruser->set->self, self) {
		if (referral_host_equals(self, &server->addr))
			return TRUE;
	}
	return conn->local_ip != NULL &&
		referral_host_is_ip_port(&server->addr, conn->local_ip,
					 conn->local_port);
}

void referral_lookup_fill_record(struct referral_user *ruser,
				 struct referral_cache_record *record,
				 const ARRAY_TYPE(referral_directory_entry) *raw_entries,
				 referral_entry_filter_t *filter, void *context)
{
	const struct referral_directory_entry *raw;
	unsigned int logged = 0, skipped = 0;

	array_foreach(raw_entries, raw) T_BEGIN {
		ARRAY_TYPE(const_string) warnings;
		const char *const *warning, *msg;

		/* one data stack frame per entry: a listing may have tens
		   of thousands */
		t_array_init(&warnings, 2);
		if (!referral_mailbox_name_is_safe(raw->mailbox)) {
			/* the name may reach the IMAP protocol (listings) */
			msg = t_strdup_printf("Directory entry \"%s\": "
				"imapReferralMailbox is not UTF-8 or has "
				"control characters - ignored",
				str_sanitize(raw->dn, 256));
			array_push_back(&warnings, &msg);
		} else if (filter(raw, context)) {
			referral_entry_parse(record->pool, raw,
				array_append_space(&record->entries),
				&warnings);
		}
		array_foreach(&warnings, warning) {
			if (logged < REFERRAL_MAX_LOGGED_WARNINGS) {
				e_warning(ruser->event, "%s", *warning);
				logged++;
			} else {
				skipped++;
			}
		}
	} T_END;
	if (skipped > 0) {
		e_warning(ruser->event, "%u more warnings about directory "
			  "entries not logged", skipped);
	}
}

struct referral_covers_context {
	const char *vname;
	char sep;
};

static bool
referral_raw_entry_covers(const struct referral_directory_entry *raw,
			  void *context)
{
	struct referral_covers_context *ctx = context;

	/* keep only what really covers vname: the directory's matching
	   rules (e.g. case) may differ from ours */
	return strcmp(raw->mailbox, ctx->vname) == 0 ||
		referral_name_is_ancestor(raw->mailbox, ctx->vname, ctx->sep);
}

/* Ask the directory about vname and cache the answer. */
static const struct referral_cache_record *
referral_lookup_directory(struct referral_user *ruser, const char *vname,
			  char sep, const char **error_r)
{
	ARRAY_TYPE(referral_directory_entry) raw_entries;
	struct referral_covers_context covers = { vname, sep };
	struct referral_cache_record *record;
	const char *const *ancestors = referral_name_ancestors(vname, sep);
	const char *name = vname;
	pool_t pool;

	if (strlen(vname) > REFERRAL_MAX_NAME_LENGTH) {
		/* no entry has such a name (the schema caps it): ask only
		   for the subtree entries above, if there are any */
		name = NULL;
	}
	pool = pool_alloconly_create("referral lookup", 1024);
	p_array_init(&raw_entries, pool, 4);
	if ((name != NULL || ancestors[0] != NULL) &&
	    referral_directory_lookup(ruser->dir, name, ancestors,
				      pool, &raw_entries, error_r) < 0) {
		pool_unref(&pool);
		return NULL;
	}

	record = referral_cache_add(ruser->cache, vname);
	referral_lookup_fill_record(ruser, record, &raw_entries,
				    referral_raw_entry_covers, &covers);
	e_debug(ruser->event, "Directory has %u entries for %s",
		array_count(&record->entries), str_sanitize(vname, 128));
	pool_unref(&pool);
	return record;
}

bool referral_entry_is_local(struct referral_user *ruser,
			     const struct referral_entry *entry)
{
	const struct referral_server *server;

	array_foreach(&entry->servers, server) {
		if (referral_server_is_self(ruser, server))
			return TRUE;
	}
	return FALSE;
}

/* Where the answer of a decision came from (the event's "source").
   "directory" also covers a lookup that failed or was skipped while the
   directory fails, and a name too long for any entry that has no parent to
   ask about (referral_lookup_directory() then knows the answer). */
#define REFERRAL_SOURCE_CACHE "cache"
#define REFERRAL_SOURCE_LISTING "listing"
#define REFERRAL_SOURCE_DIRECTORY "directory"

/* Returns the entry covering vname (NULL if none), from the caches or the
   directory; -1 with error_r if the directory could not be asked. source_r
   says where the answer came from (or would have). The entry is valid until
   the caches change. Exported for doveadm. */
int
referral_lookup_entry(struct referral_user *ruser, const char *ns_prefix,
		      const char *vname, char sep,
		      const struct referral_entry **entry_r,
		      const char **source_r, const char **error_r)
{
	const struct referral_cache_record *record;

	*source_r = REFERRAL_SOURCE_CACHE;
	record = referral_cache_lookup(ruser->cache, vname);
	if (record == NULL) {
		/* a fresh listing of the namespace knows every name in it:
		   after a LIST, opening its mailboxes costs no queries */
		if (referral_listing_find_covering(ruser, ns_prefix, vname,
						   entry_r)) {
			*source_r = REFERRAL_SOURCE_LISTING;
			return 0;
		}
		*source_r = REFERRAL_SOURCE_DIRECTORY;
		record = referral_lookup_directory(ruser, vname, sep, error_r);
		if (record == NULL)
			return -1;
	}
	*entry_r = referral_entries_find_covering(&record->entries, vname, sep);
	return 0;
}

/* The decision itself: see referral_lookup(). */
static int
referral_lookup_decide(struct referral_user *ruser, const char *ns_prefix,
		       const char *vname, char sep, const char **source_r,
		       struct referral_target *target_r, const char **error_r)
{
	const struct referral_entry *entry;
	const struct referral_server *server;
	struct referral_server *copy;

	i_zero(target_r);
	if (referral_lookup_entry(ruser, ns_prefix, vname, sep,
				  &entry, source_r, error_r) < 0)
		return -1;
	if (entry == NULL)
		return 0;
	target_r->own_entry = strcmp(entry->mailbox, vname) == 0;
	if (entry->error != NULL) {
		*error_r = REFERRAL_UNUSABLE_ENTRY_ERROR;
		return -1;
	}
	/* RFC 2193 section 3: never refer a client to ourselves. A server
	   holding the mailbox (or a replica) serves it, whatever its
	   preference. */
	if (referral_entry_is_local(ruser, entry))
		return 0;

	/* the target outlives the cache record (a second lookup may empty
	   the cache): copy what it needs into the data stack */
	target_r->remote_name = t_strdup(referral_entry_remote_name(entry, vname));
	t_array_init(&target_r->servers, array_count(&entry->servers));
	array_foreach(&entry->servers, server) {
		copy = array_append_space(&target_r->servers);
		*copy = *server;
		copy->addr.host.name = t_strdup(server->addr.host.name);
	}
	referral_servers_sort(&target_r->servers, ruser->shuffle_seed);
	return 1;
}

/* Send the mailbox_referrals_decision_finished event of a decision (ret as
   referral_lookup() returns). The fields are data for filters and stats;
   the log line escapes the client's name. */
static void
referral_lookup_finished(struct event *event, const char *vname, int ret,
			 const char *source,
			 const struct referral_target *target,
			 const char *error)
{
	struct event_passthrough *e;
	const struct referral_server *server;
	string_t *servers;

	e = event_create_passthrough(event)->
		set_name(REFERRAL_EVENT_DECISION_FINISHED)->
		add_str("source", source);
	if (ret < 0) {
		e->add_str("result", "unavailable")->add_str("error", error);
		e_debug(e->event(), "Mailbox %s is unavailable "
			"(answer from %s): %s", str_sanitize(vname, 128),
			source, error);
	} else if (ret == 0) {
		e->add_str("result", "local");
		e_debug(e->event(), "Mailbox %s is local (answer from %s)",
			str_sanitize(vname, 128), source);
	} else {
		/* validated HOST[:PORT] values: safe in a log line */
		servers = t_str_new(64);
		array_foreach(&target->servers, server) {
			if (str_len(servers) > 0)
				str_append_c(servers, ' ');
			str_append(servers,
				   referral_host_to_string(&server->addr));
		}
		e->add_str("result", "remote")->
			add_str("servers", str_c(servers));
		e_debug(e->event(), "Mailbox %s is remote on %s "
			"(answer from %s)", str_sanitize(vname, 128),
			str_c(servers), source);
	}
}

int referral_lookup(struct referral_user *ruser, const char *ns_prefix,
		    const char *vname, char sep,
		    struct referral_target *target_r, const char **error_r)
{
	struct event *event;
	const char *source, *error = NULL;
	int ret;

	/* created before the decision, so that its duration covers the
	   directory request */
	event = event_create(ruser->event);
	event_add_str(event, "mailbox", vname);
	ret = referral_lookup_decide(ruser, ns_prefix, vname, sep, &source,
				     target_r, &error);
	referral_lookup_finished(event, vname, ret, source, target_r, error);
	event_unref(&event);
	if (ret < 0)
		*error_r = error;
	return ret;
}

bool referral_self_host(struct referral_user *ruser,
			struct referral_host *host_r)
{
	const struct mail_user_connection_data *conn = &ruser->user->conn;
	const char *addr;

	if (array_count(&ruser->set->self) > 0) {
		*host_r = *array_front(&ruser->set->self);
		return TRUE;
	}
	if (conn->local_ip == NULL || conn->local_ip->family == 0)
		return FALSE;
	i_zero(host_r);
	addr = net_ip2addr(conn->local_ip);
	host_r->host.name = conn->local_ip->family == AF_INET6 ?
		t_strdup_printf("[%s]", addr) : addr;
	host_r->host.ip = *conn->local_ip;
	host_r->port = conn->local_port;
	return TRUE;
}

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strescape.h"
#include "str-sanitize.h"
#include "bsearch-insert-pos.h"
#include "referral-entry.h"
#include "referral-lookup.h"
#include "doveadm-referrals-check.h"

/* Longest directory value quoted in a detail, as in log lines. */
#define REFERRAL_CHECK_QUOTE_MAX_LEN 128

struct referral_check_local {
	const char *vname;
	bool in_namespace;
	bool selectable;
};

struct referral_check {
	pool_t pool;
	char sep;
	const char *ns_prefix;
	referral_index_is_local_t *is_local;
	void *context;

	/* the entries whose names sessions accept, validated; indexed only
	   in referral_check_finish(), once the array stops growing */
	ARRAY_TYPE(referral_entry) entries;
	ARRAY(struct referral_check_local) locals;
	ARRAY(struct referral_check_problem) problems;
};

static const char *const referral_check_kind_names[] = {
	[REFERRAL_CHECK_INVALID_VALUE] = "invalid-value",
	[REFERRAL_CHECK_TOO_MANY_SERVERS] = "too-many-servers",
	[REFERRAL_CHECK_DUPLICATE] = "duplicate",
	[REFERRAL_CHECK_NO_SERVER] = "no-server",
	[REFERRAL_CHECK_LOCAL_ELSEWHERE] = "local-elsewhere",
	[REFERRAL_CHECK_MISSING_HERE] = "missing-here",
};

const char *referral_check_kind_name(enum referral_check_kind kind)
{
	i_assert(kind < N_ELEMENTS(referral_check_kind_names));
	return referral_check_kind_names[kind];
}

/* A directory value inside a detail: quoted, control characters replaced
   and quotes escaped, as the plugin's log lines show them. */
static const char *referral_check_quote(const char *value)
{
	return t_strdup_printf("\"%s\"", str_escape(
		str_sanitize(value, REFERRAL_CHECK_QUOTE_MAX_LEN)));
}

struct referral_check *
referral_check_init(pool_t pool, char sep, const char *ns_prefix,
		    referral_index_is_local_t *is_local, void *context)
{
	struct referral_check *check;

	check = p_new(pool, struct referral_check, 1);
	check->pool = pool;
	check->sep = sep;
	check->ns_prefix = p_strdup(pool, ns_prefix);
	check->is_local = is_local;
	check->context = context;
	p_array_init(&check->entries, pool, 64);
	p_array_init(&check->locals, pool, 64);
	p_array_init(&check->problems, pool, 16);
	return check;
}

static void
referral_check_problem(struct referral_check *check,
		       enum referral_check_kind kind, const char *mailbox,
		       const char *dn, const char *detail)
{
	struct referral_check_problem *problem;

	problem = array_append_space(&check->problems);
	problem->kind = kind;
	problem->mailbox = p_strdup(check->pool, mailbox);
	problem->dn = p_strdup(check->pool, dn);
	problem->detail = p_strdup(check->pool, detail);
}

static enum referral_check_kind
referral_check_warning_kind(enum referral_entry_warning_kind kind)
{
	switch (kind) {
	case REFERRAL_ENTRY_WARNING_INVALID_VALUE:
		return REFERRAL_CHECK_INVALID_VALUE;
	case REFERRAL_ENTRY_WARNING_TOO_MANY_SERVERS:
		return REFERRAL_CHECK_TOO_MANY_SERVERS;
	case REFERRAL_ENTRY_WARNING_NO_SERVER:
		return REFERRAL_CHECK_NO_SERVER;
	}
	i_unreached();
}

void referral_check_add_entry(struct referral_check *check,
			      const struct referral_directory_entry *raw)
{
	T_BEGIN {
		ARRAY_TYPE(referral_entry_warning) warnings;
		const struct referral_entry_warning *warning;

		if (!referral_mailbox_name_is_safe(raw->mailbox)) {
			/* sessions skip the entry (see
			   referral_lookup_fill_record()) */
			referral_check_problem(check,
				REFERRAL_CHECK_INVALID_VALUE,
				raw->mailbox, raw->dn,
				"imapReferralMailbox is empty, not UTF-8 or "
				"has control characters: the entry is ignored");
		} else {
			t_array_init(&warnings, 4);
			referral_entry_validate(check->pool, raw,
				array_append_space(&check->entries),
				&warnings);
			array_foreach(&warnings, warning) {
				referral_check_problem(check,
					referral_check_warning_kind(warning->kind),
					raw->mailbox, raw->dn, warning->text);
			}
		}
	} T_END;
}

void referral_check_add_local(struct referral_check *check,
			      const char *vname, bool in_namespace,
			      bool selectable)
{
	struct referral_check_local *local;

	local = array_append_space(&check->locals);
	local->vname = p_strdup(check->pool, vname);
	local->in_namespace = in_namespace;
	local->selectable = selectable;
}

/* Entries of one name and scope: sessions use the first by
   referral_entry_precedes() (the smallest DN); the others are reported. */
static void referral_check_duplicates(struct referral_check *check)
{
	ARRAY(const struct referral_entry *) sorted;
	const struct referral_entry *entry, *const *entries, *used = NULL;
	unsigned int i, count;

	t_array_init(&sorted, array_count(&check->entries));
	array_foreach(&check->entries, entry)
		array_push_back(&sorted, &entry);
	array_sort(&sorted, referral_entry_cmp);

	entries = array_get(&sorted, &count);
	for (i = 0; i < count; i++) {
		entry = entries[i];
		if (used == NULL || strcmp(used->mailbox, entry->mailbox) != 0 ||
		    used->subtree != entry->subtree) {
			used = entry;
			continue;
		}
		i_assert(referral_entry_precedes(used, entry));
		referral_check_problem(check, REFERRAL_CHECK_DUPLICATE,
			entry->mailbox, entry->dn, t_strdup_printf(
				"Same imapReferralMailbox and scope as %s, "
				"which is used instead",
				referral_check_quote(used->dn)));
	}
}

static const char *
referral_check_servers_text(const struct referral_entry *entry)
{
	ARRAY_TYPE(referral_server) servers;
	const struct referral_server *server;
	string_t *str = t_str_new(128);

	t_array_init(&servers, array_count(&entry->servers));
	array_append_array(&servers, &entry->servers);
	referral_servers_sort(&servers, 0);
	array_foreach(&servers, server) {
		if (str_len(str) > 0)
			str_append(str, ", ");
		str_append(str, referral_host_to_string(&server->addr));
	}
	return str_c(str);
}

/* Mailboxes of the namespace that exist here but are covered by an entry
   that doesn't name this server. */
static void
referral_check_locals_elsewhere(struct referral_check *check,
				struct referral_index *index)
{
	const struct referral_check_local *local;
	const struct referral_entry *entry;
	const char *detail;
	bool is_local;

	array_foreach(&check->locals, local) T_BEGIN {
		entry = !local->in_namespace ? NULL :
			referral_index_find_covering(index, local->vname,
						     &is_local);
		if (entry != NULL && !is_local) {
			if (entry->error != NULL) {
				detail = t_strdup_printf(
					"Exists here, but the entry covering "
					"it is unusable (%s): clients get "
					"UNAVAILABLE", entry->error);
			} else {
				detail = t_strdup_printf(
					"Exists here, but the directory "
					"places it on %s: clients are referred "
					"there and LIST hides it",
					referral_check_servers_text(entry));
			}
			referral_check_problem(check,
				REFERRAL_CHECK_LOCAL_ELSEWHERE,
				local->vname, entry->dn, detail);
		}
	} T_END;
}

static int
referral_check_local_cmp(const struct referral_check_local *l1,
			 const struct referral_check_local *l2)
{
	return strcmp(l1->vname, l2->vname);
}

static int
referral_check_local_key_cmp(const char *key,
			     const struct referral_check_local *local)
{
	return strcmp(key, local->vname);
}

/* Returns TRUE if a local mailbox exists strictly below vname. */
static bool
referral_check_has_local_below(struct referral_check *check,
			       const char *vname)
{
	const struct referral_check_local *locals;
	const char *prefix = t_strdup_printf("%s%c", vname, check->sep);
	unsigned int idx, count;

	/* the first name >= prefix: names below vname start there */
	(void)array_bsearch_insert_pos(&check->locals, prefix,
				       referral_check_local_key_cmp, &idx);
	locals = array_get(&check->locals, &count);
	return idx < count &&
		strncmp(locals[idx].vname, prefix, strlen(prefix)) == 0;
}

/* Returns why entry, which names this server, has no mailbox here, or NULL
   if it has one. Clients referred here ask for the name the entry gives
   the mailbox on its servers. */
static const char *
referral_check_missing_detail(struct referral_check *check,
			      const struct referral_entry *entry)
{
	const struct referral_check_local *local;
	const char *name = entry->remote_name != NULL ?
		entry->remote_name : entry->mailbox;
	const char *what;

	local = array_bsearch(&check->locals, name,
			      referral_check_local_key_cmp);
	if (entry->subtree) {
		if (local != NULL ||
		    referral_check_has_local_below(check, name))
			return NULL;
		what = "neither the mailbox nor any mailbox below it exists "
			"here";
	} else if (local == NULL) {
		what = "the mailbox does not exist here";
	} else if (!local->selectable) {
		what = "the mailbox exists here only as a hierarchy parent "
			"(\\Noselect)";
	} else {
		return NULL;
	}
	if (entry->remote_name == NULL)
		return t_strconcat("Names this server, but ", what, NULL);
	return t_strdup_printf("Names this server, but %s under its "
			       "imapReferralRemoteName %s", what,
			       referral_check_quote(entry->remote_name));
}

/* Entries naming this server whose mailbox doesn't exist here. Unusable
   entries are reported already; the namespace root exists with the
   namespace. */
static void referral_check_missing_here(struct referral_check *check)
{
	const struct referral_entry *entry;
	size_t prefix_len = strlen(check->ns_prefix);
	const char *detail;

	array_foreach(&check->entries, entry) T_BEGIN {
		if (entry->error == NULL &&
		    strlen(entry->mailbox) >= prefix_len &&
		    check->is_local(entry, check->context)) {
			detail = referral_check_missing_detail(check, entry);
			if (detail != NULL) {
				referral_check_problem(check,
					REFERRAL_CHECK_MISSING_HERE,
					entry->mailbox, entry->dn, detail);
			}
		}
	} T_END;
}

static int
referral_check_problem_cmp(const struct referral_check_problem *p1,
			   const struct referral_check_problem *p2)
{
	int ret;

	if ((ret = strcmp(p1->mailbox, p2->mailbox)) != 0)
		return ret;
	if (p1->kind != p2->kind)
		return p1->kind < p2->kind ? -1 : 1;
	return strcmp(p1->dn, p2->dn);
}

const struct referral_check_problem *
referral_check_finish(struct referral_check *check, unsigned int *count_r)
{
	struct referral_index *index;

	array_sort(&check->locals, referral_check_local_cmp);
	T_BEGIN {
		referral_check_duplicates(check);
		/* the same index, and so the same decisions, as listings */
		index = referral_index_build(check->pool, &check->entries,
					     check->sep, check->ns_prefix,
					     check->is_local, check->context);
		referral_check_locals_elsewhere(check, index);
		referral_check_missing_here(check);
	} T_END;
	array_sort(&check->problems, referral_check_problem_cmp);
	return array_get(&check->problems, count_r);
}

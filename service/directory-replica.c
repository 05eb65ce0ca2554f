/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The in-memory copy of the referral entries. Two hash tables find an
   entry by key (entryUUID or DN: for changes) and by mailbox name (for
   LOOKUP: one probe per name asked); an array of entry pointers sorted by
   (mailbox, DN) serves LIST in name order and a prefix with a binary
   search. A change costs one memmove of that array: 8 MB at a million
   entries, far cheaper than re-sorting for every listing. */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "str.h"
#include "strescape.h"
#include "str-sanitize.h"
#include "unichar.h"
#include "referral-entry.h"
#include "directory-replica.h"

struct replica {
	int refcount;
	HASH_TABLE(const char *, struct directory_entry *) by_key;
	HASH_TABLE(const char *, struct directory_entry *) by_name;
	/* sorted by (mailbox, dn) unless loading */
	ARRAY(struct directory_entry *) sorted;
	/* key -> one allocation: key NUL problem-lines */
	HASH_TABLE(const char *, char *) problems;
	/* keys with problems but no served entry */
	unsigned int unserved_count;
	bool loading;
};

struct replica *replica_init(void)
{
	struct replica *replica = i_new(struct replica, 1);

	replica->refcount = 1;
	hash_table_create(&replica->by_key, default_pool, 0, str_hash, strcmp);
	hash_table_create(&replica->by_name, default_pool, 0, str_hash, strcmp);
	hash_table_create(&replica->problems, default_pool, 0,
			  str_hash, strcmp);
	i_array_init(&replica->sorted, 1024);
	replica->loading = TRUE;
	return replica;
}

void replica_ref(struct replica *replica)
{
	i_assert(replica->refcount > 0);
	replica->refcount++;
}

void replica_unref(struct replica **_replica)
{
	struct replica *replica = *_replica;
	struct hash_iterate_context *iter;
	const char *key;
	struct directory_entry *entry;
	char *block;

	*_replica = NULL;
	i_assert(replica->refcount > 0);
	if (--replica->refcount > 0)
		return;

	iter = hash_table_iterate_init(replica->by_key);
	while (hash_table_iterate(iter, replica->by_key, &key, &entry))
		i_free(entry);
	hash_table_iterate_deinit(&iter);
	iter = hash_table_iterate_init(replica->problems);
	while (hash_table_iterate(iter, replica->problems, &key, &block))
		i_free(block);
	hash_table_iterate_deinit(&iter);
	hash_table_destroy(&replica->by_key);
	hash_table_destroy(&replica->by_name);
	hash_table_destroy(&replica->problems);
	array_free(&replica->sorted);
	i_free(replica);
}

unsigned int replica_count(const struct replica *replica)
{
	return hash_table_count(replica->by_key);
}

unsigned int replica_stored_count(const struct replica *replica)
{
	return hash_table_count(replica->by_key) + replica->unserved_count;
}

bool replica_has_key(struct replica *replica, const char *key)
{
	return hash_table_lookup(replica->by_key, key) != NULL ||
		hash_table_lookup(replica->problems, key) != NULL;
}

static int entry_cmp(const struct directory_entry *e1,
		     const struct directory_entry *e2)
{
	int ret = strcmp(e1->mailbox, e2->mailbox);

	return ret != 0 ? ret : strcmp(e1->dn, e2->dn);
}

static int entry_ptr_cmp(struct directory_entry *const *e1,
			 struct directory_entry *const *e2)
{
	return entry_cmp(*e1, *e2);
}

/* Index of the first entry >= (mailbox, dn); dn NULL sorts before every DN
   of that mailbox. */
static unsigned int
replica_lower_bound(struct replica *replica, const char *mailbox,
		    const char *dn)
{
	struct directory_entry *const *entries;
	unsigned int count, lo = 0, hi;
	int ret;

	entries = array_get(&replica->sorted, &count);
	hi = count;
	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		ret = strcmp(entries[mid]->mailbox, mailbox);
		if (ret == 0)
			ret = dn == NULL ? 1 : strcmp(entries[mid]->dn, dn);
		if (ret < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void replica_unlink(struct replica *replica,
			   struct directory_entry *entry)
{
	struct directory_entry *head, **pp;
	unsigned int idx;

	hash_table_remove(replica->by_key, entry->key);

	head = hash_table_lookup(replica->by_name, entry->mailbox);
	i_assert(head != NULL);
	if (head == entry) {
		if (entry->next_same_name == NULL)
			hash_table_remove(replica->by_name, entry->mailbox);
		else {
			hash_table_update(replica->by_name,
					  entry->next_same_name->mailbox,
					  entry->next_same_name);
		}
	} else {
		for (pp = &head->next_same_name; *pp != entry;
		     pp = &(*pp)->next_same_name)
			i_assert(*pp != NULL);
		*pp = entry->next_same_name;
	}

	if (replica->loading) {
		/* rare: the same key twice in one load */
		struct directory_entry *const *entries;
		unsigned int count;

		entries = array_get(&replica->sorted, &count);
		for (idx = 0; idx < count; idx++) {
			if (entries[idx] == entry)
				break;
		}
	} else {
		idx = replica_lower_bound(replica, entry->mailbox, entry->dn);
	}
	i_assert(idx < array_count(&replica->sorted) &&
		 array_idx_elem(&replica->sorted, idx) == entry);
	array_delete(&replica->sorted, idx, 1);
}

static void replica_remove_problems(struct replica *replica, const char *key)
{
	char *block = hash_table_lookup(replica->problems, key);

	if (block != NULL) {
		hash_table_remove(replica->problems, key);
		i_free(block);
	}
}

void replica_remove(struct replica *replica, const char *key)
{
	struct directory_entry *entry;
	bool had_problems = hash_table_lookup(replica->problems, key) != NULL;

	replica_remove_problems(replica, key);
	entry = hash_table_lookup(replica->by_key, key);
	if (entry != NULL) {
		replica_unlink(replica, entry);
		i_free(entry);
	} else if (had_problems) {
		i_assert(replica->unserved_count > 0);
		replica->unserved_count--;
	}
}

struct replica_check {
	struct event *event;
	const char *dn;
	string_t *problems;
};

static void
replica_problem(struct replica_check *check, const char *kind,
		const char *text)
{
	const char *dn = str_sanitize(check->dn, 256);

	e_warning(check->event, "Directory entry %s: %s", dn, text);
	if (str_len(check->problems) > 0)
		str_append_c(check->problems, '\n');
	str_append(check->problems, kind);
	str_append_c(check->problems, '\t');
	str_append_tabescaped(check->problems, check->dn);
	str_append_c(check->problems, '\t');
	str_append_tabescaped(check->problems, text);
}

/* Returns the value as a string, or NULL (with a problem recorded) when it
   cannot be served: a NUL byte or invalid UTF-8, or longer than the
   schema allows. */
static const char *
replica_check_value(struct replica_check *check, const char *attr,
		    const struct directory_value *value, unsigned int max_chars)
{
	const char *str;

	if (memchr(value->data, '\0', value->size) != NULL ||
	    !uni_utf8_data_is_valid((const unsigned char *)value->data,
				    value->size)) {
		replica_problem(check, "invalid-value", t_strdup_printf(
			"%s value is not valid UTF-8 text", attr));
		return NULL;
	}
	str = t_strndup(value->data, value->size);
	if (uni_utf8_strlen(str) > max_chars) {
		replica_problem(check, "too-long", t_strdup_printf(
			"%s value is longer than %u characters",
			attr, max_chars));
		return NULL;
	}
	return str;
}

static struct directory_entry *
replica_entry_alloc(const char *key, const char *dn, const char *mailbox,
		    const char *scope, const char *remote_name,
		    const char *const *servers, unsigned int server_count)
{
	struct directory_entry *entry;
	const char **server_ptrs;
	size_t size, len;
	unsigned int i;
	char *p;

	/* dn is used as the key when following without RFC 4533: share it */
	bool key_is_dn = strcmp(key, dn) == 0;

	size = sizeof(*entry) + sizeof(char *) * (server_count + 1) +
		(key_is_dn ? 0 : strlen(key) + 1) + strlen(dn) + 1 +
		strlen(mailbox) + 1 + strlen(scope) + 1 +
		strlen(remote_name) + 1;
	for (i = 0; i < server_count; i++)
		size += strlen(servers[i]) + 1;
	entry = i_malloc(size);
	server_ptrs = (const char **)(entry + 1);
	p = (char *)(server_ptrs + server_count + 1);
#define COPY_STR(dest, src) STMT_START { \
	len = strlen(src) + 1; memcpy(p, src, len); dest = p; p += len; \
	} STMT_END
	COPY_STR(entry->dn, dn);
	if (key_is_dn)
		entry->key = entry->dn;
	else
		COPY_STR(entry->key, key);
	COPY_STR(entry->mailbox, mailbox);
	COPY_STR(entry->scope, scope);
	COPY_STR(entry->remote_name, remote_name);
	for (i = 0; i < server_count; i++)
		COPY_STR(server_ptrs[i], servers[i]);
#undef COPY_STR
	server_ptrs[server_count] = NULL;
	entry->servers = server_ptrs;
	i_assert(p == (char *)entry + size);
	return entry;
}

static bool
replica_set_entry(struct replica *replica, struct replica_check *check,
		  const struct directory_raw_entry *raw)
{
	const char *mailbox, *scope = "", *remote_name = "";
	ARRAY_TYPE(const_string) servers;
	const char *const *server_list;
	struct directory_entry *entry, *head;
	unsigned int i, idx, server_count;
	string_t *line;

	if (strlen(raw->dn) > DIRECTORY_MAX_DN_BYTES) {
		replica_problem(check, "too-long", t_strdup_printf(
			"the DN is longer than %u bytes",
			DIRECTORY_MAX_DN_BYTES));
		return FALSE;
	}
	if (raw->mailbox == NULL) {
		replica_problem(check, "missing-attribute",
				"imapReferralMailbox is missing");
		return FALSE;
	}
	mailbox = replica_check_value(check, "imapReferralMailbox",
				      raw->mailbox,
				      DIRECTORY_MAX_MAILBOX_CHARS);
	if (mailbox == NULL)
		return FALSE;
	if (raw->scope != NULL) {
		scope = replica_check_value(check, "imapReferralScope",
					    raw->scope,
					    DIRECTORY_MAX_SCOPE_CHARS);
		if (scope == NULL) {
			/* a subtree entry must not shrink to one mailbox */
			return FALSE;
		}
	}
	if (raw->remote_name != NULL) {
		remote_name = replica_check_value(check,
			"imapReferralRemoteName", raw->remote_name,
			DIRECTORY_MAX_REMOTE_NAME_CHARS);
		if (remote_name == NULL) {
			/* serving the local name instead would refer
			   clients to the wrong mailbox */
			return FALSE;
		}
	}
	t_array_init(&servers, I_MIN(raw->server_count, REFERRAL_MAX_SERVERS));
	for (i = 0; i < raw->server_count; i++) {
		const char *server = replica_check_value(check,
			"imapReferralServer", &raw->servers[i],
			DIRECTORY_MAX_SERVER_CHARS);

		if (server == NULL)
			continue;
		if (array_count(&servers) == REFERRAL_MAX_SERVERS) {
			replica_problem(check, "invalid-value", t_strdup_printf(
				"more than %u imapReferralServer values",
				REFERRAL_MAX_SERVERS));
			break;
		}
		array_push_back(&servers, &server);
	}
	if (raw->server_count == 0) {
		/* still served: clients answer UNAVAILABLE for it */
		replica_problem(check, "missing-attribute",
				"imapReferralServer is missing");
	}

	/* the reply line must fit the protocol's line limit */
	line = t_str_new(1024);
	str_append_tabescaped(line, raw->dn);
	str_append_tabescaped(line, mailbox);
	str_append_tabescaped(line, remote_name);
	str_append_tabescaped(line, scope);
	for (i = 0; i < array_count(&servers); i++)
		str_append_tabescaped(line, array_idx_elem(&servers, i));
	if (str_len(line) > DIRECTORY_MAX_LINE_BYTES) {
		replica_problem(check, "too-long",
				"the entry's values together are too long");
		return FALSE;
	}

	/* NULL-terminate in this data stack frame (not the T_BEGIN's) */
	array_append_zero(&servers);
	array_pop_back(&servers);
	server_list = array_get(&servers, &server_count);

	/* report what the plugin will find wrong with the values (server
	   syntax, unsafe names, scope words), for doveadm check */
	T_BEGIN {
		struct referral_directory_entry input;
		struct referral_entry parsed;
		ARRAY_TYPE(referral_entry_warning) warnings;
		const struct referral_entry_warning *warning;
		pool_t pool = pool_datastack_create();

		i_zero(&input);
		input.dn = raw->dn;
		input.mailbox = mailbox;
		input.scope = raw->scope == NULL ? NULL : scope;
		input.remote_name = raw->remote_name == NULL ?
			NULL : remote_name;
		input.servers = server_list;
		t_array_init(&warnings, 4);
		referral_entry_validate(pool, &input, &parsed, &warnings);
		array_foreach(&warnings, warning) {
			if (warning->kind == REFERRAL_ENTRY_WARNING_NO_SERVER &&
			    raw->server_count == 0)
				continue;
			replica_problem(check, "invalid-value", warning->text);
		}
	} T_END;

	entry = replica_entry_alloc(raw->key, raw->dn, mailbox, scope,
				    remote_name, server_list, server_count);
	hash_table_insert(replica->by_key, entry->key, entry);
	head = hash_table_lookup(replica->by_name, entry->mailbox);
	entry->next_same_name = head;
	hash_table_update(replica->by_name, entry->mailbox, entry);
	if (replica->loading)
		array_push_back(&replica->sorted, &entry);
	else {
		idx = replica_lower_bound(replica, entry->mailbox, entry->dn);
		array_insert(&replica->sorted, idx, &entry, 1);
	}
	return TRUE;
}

bool replica_set(struct replica *replica, struct event *event,
		 const struct directory_raw_entry *raw)
{
	struct replica_check check;
	bool served;

	replica_remove(replica, raw->key);
	T_BEGIN {
		i_zero(&check);
		check.event = event;
		check.dn = raw->dn;
		/* not the data stack: problems are added in inner frames */
		check.problems = str_new(default_pool, 128);
		served = replica_set_entry(replica, &check, raw);
		if (str_len(check.problems) > 0) {
			size_t key_size = strlen(raw->key) + 1;
			char *block = i_malloc(key_size +
					       str_len(check.problems) + 1);

			memcpy(block, raw->key, key_size);
			memcpy(block + key_size, str_data(check.problems),
			       str_len(check.problems));
			hash_table_insert(replica->problems, (const char *)block, block);
			if (!served)
				replica->unserved_count++;
		}
		str_free(&check.problems);
	} T_END;
	return served;
}

void replica_load_finished(struct replica *replica)
{
	if (!replica->loading)
		return;
	array_sort(&replica->sorted, entry_ptr_cmp);
	replica->loading = FALSE;
}

void replica_lookup(struct replica *replica, const char *name,
		    const char *const *ancestors,
		    replica_entry_callback_t *callback, void *context)
{
	const struct directory_entry *entry;

	if (*name != '\0') {
		entry = hash_table_lookup(replica->by_name, name);
		for (; entry != NULL; entry = entry->next_same_name)
			callback(entry, context);
	}
	for (; *ancestors != NULL; ancestors++) {
		entry = hash_table_lookup(replica->by_name, *ancestors);
		for (; entry != NULL; entry = entry->next_same_name) {
			if (strcasecmp(entry->scope, "subtree") == 0)
				callback(entry, context);
		}
	}
}

unsigned int replica_seek(struct replica *replica, const char *prefix,
			  const char *after_mailbox, const char *after_dn)
{
	const struct directory_entry *entry;
	unsigned int idx;

	i_assert(!replica->loading);
	if (after_mailbox == NULL)
		return replica_lower_bound(replica, prefix, NULL);
	idx = replica_lower_bound(replica, after_mailbox, after_dn);
	entry = replica_entry_at(replica, idx);
	if (entry != NULL && strcmp(entry->mailbox, after_mailbox) == 0 &&
	    strcmp(entry->dn, after_dn) == 0)
		idx++;
	return idx;
}

const struct directory_entry *
replica_entry_at(struct replica *replica, unsigned int idx)
{
	if (idx >= array_count(&replica->sorted))
		return NULL;
	return array_idx_elem(&replica->sorted, idx);
}

void replica_problems(struct replica *replica,
		      replica_problem_callback_t *callback, void *context)
{
	struct hash_iterate_context *iter;
	const char *key, *const *lines;
	char *block;

	iter = hash_table_iterate_init(replica->problems);
	while (hash_table_iterate(iter, replica->problems, &key, &block)) T_BEGIN {
		lines = t_strsplit(block + strlen(block) + 1, "\n");
		for (; *lines != NULL; lines++)
			callback(*lines, context);
	} T_END;
	hash_table_iterate_deinit(&iter);
}

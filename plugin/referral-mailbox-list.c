/* Copyright (c) 2026 dovecot-mailbox-referrals authors, see the included COPYING file */

/* Mailbox list iteration in the namespaces where referrals apply.

   RFC 2193 section 3: remote mailboxes stay out of LIST and LSUB, so plain
   listings hide every name the directory places on another server (a local
   mailbox too: SELECT would refer it). Listings started in "remote" mode
   (RLIST, RLSUB, LIST (REMOTE): MAILBOX_LIST_ITER_REFERRAL_REMOTE)
   keep those names, flagged MAILBOX_REFERRAL_REMOTE, and then add the
   directory's remote mailboxes and their parents that match the patterns.

   The namespace's directory entries come from one (paged) directory search
   per namespace, cached like single lookups. */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "str-sanitize.h"
#include "imap-match.h"
#include "mail-namespace.h"
#include "mailbox-tree.h"
#include "referral-directory.h"
#include "referral-cache.h"
#include "referral-lookup.h"
#include "referral-mailbox-list.h"
#include "referral-plugin.h"

#define REFERRAL_LIST_ITERATE_CONTEXT(obj) \
	MODULE_CONTEXT_REQUIRE(obj, referral_mailbox_list_module)

/* A name the remote pass may list: a directory entry's mailbox, or a
   parent of one. */
struct referral_list_name {
	const char *vname;
	/* The entry for the name itself; NULL for a parent that has no
	   entry of its own. */
	const struct referral_entry *entry;
	/* The subtree entry of this name, for the names below it. */
	const struct referral_entry *subtree_entry;
	/* this server is among the entry's servers */
	bool local;
	/* another listed name is below this one */
	bool children;
	/* already returned (by the local pass) */
	bool listed;
};

struct referral_mailbox_list_iterate_context {
	union mailbox_list_iterate_module_context module_ctx;

	struct referral_user *ruser;
	char sep;
	bool remote_mode;
	/* the directory could not be listed */
	bool failed;
	const char *error;

	/* the cache record whose entries names point to (referenced) */
	pool_t record_pool;
	HASH_TABLE(const char *, struct referral_list_name *) names;
	ARRAY(struct referral_list_name *) sorted_names;
	unsigned int next_idx;
	bool local_done;

	struct mailbox_info info;
};

const char *mailbox_referrals_list_take_error(struct mail_user *user)
{
	struct referral_user *ruser = REFERRAL_USER_CONTEXT(user);
	const char *error;

	if (ruser == NULL)
		return NULL;
	error = ruser->list_error;
	ruser->list_error = NULL;
	return error;
}

/* Get the namespace's directory entries, from the cache or the directory.
   Returns the record, or NULL with error_r. */
static const struct referral_cache_record *
referral_list_get_entries(struct referral_user *ruser,
			  struct mail_namespace *ns, bool remote_mode,
			  const char **error_r)
{
	ARRAY_TYPE(referral_directory_entry) raw_entries;
	ARRAY_TYPE(const_string) warnings;
	const struct referral_directory_entry *raw;
	struct referral_cache_record *record;
	const char *const *warning;
	pool_t pool;

	record = (struct referral_cache_record *)
		referral_cache_lookup(ruser->list_cache, ns->prefix);
	if (record != NULL)
		return record;
	if (!remote_mode && ruser->dir->failing) {
		/* A plain listing needs the directory only to hide names:
		   while it is known to be failing, don't wait for it again
		   (the next lookup finds out when it is back). */
		*error_r = "directory is failing";
		return NULL;
	}

	pool = pool_alloconly_create("referral list", 16384);
	p_array_init(&raw_entries, pool, 64);
	if (referral_directory_list(ruser->dir, ns->prefix, pool,
				    &raw_entries, error_r) < 0) {
		pool_unref(&pool);
		return NULL;
	}
	record = referral_cache_add(ruser->list_cache, ns->prefix);
	t_array_init(&warnings, 4);
	array_foreach(&raw_entries, raw) {
		struct referral_entry *entry;

		/* the name reaches the IMAP protocol: only valid names of
		   this namespace */
		if (!referral_mailbox_name_is_safe(raw->mailbox) ||
		    mail_namespace_find(ns->user->namespaces,
					raw->mailbox) != ns) {
			const char *msg = t_strdup_printf(
				"Directory entry \"%s\": imapReferralMailbox "
				"is not a valid name in namespace '%s' - "
				"not listed", str_sanitize(raw->dn, 256),
				ns->prefix);
			array_push_back(&warnings, &msg);
			continue;
		}
		entry = array_append_space(&record->entries);
		referral_entry_parse(record->pool, raw, entry, &warnings);
	}
	array_foreach(&warnings, warning)
		e_warning(ruser->event, "%s", *warning);
	pool_unref(&pool);
	return record;
}

static bool
referral_entry_is_local(struct referral_user *ruser,
			const struct referral_entry *entry)
{
	const struct referral_server *server;

	array_foreach(&entry->servers, server) {
		if (referral_server_is_self(ruser, server))
			return TRUE;
	}
	return FALSE;
}

static struct referral_list_name *
referral_list_name_add(struct mailbox_list_iterate_context *_ctx,
		       const char *vname)
{
	struct referral_mailbox_list_iterate_context *ctx =
		REFERRAL_LIST_ITERATE_CONTEXT(_ctx);
	struct referral_list_name *name;

	name = hash_table_lookup(ctx->names, vname);
	if (name == NULL) {
		name = p_new(_ctx->pool, struct referral_list_name, 1);
		name->vname = p_strdup(_ctx->pool, vname);
		hash_table_insert(ctx->names, name->vname, name);
		array_push_back(&ctx->sorted_names, &name);
	}
	return name;
}

static int
referral_list_name_cmp(struct referral_list_name *const *n1,
		       struct referral_list_name *const *n2)
{
	return strcmp((*n1)->vname, (*n2)->vname);
}

static void
referral_list_build_names(struct mailbox_list_iterate_context *_ctx,
			  const struct referral_cache_record *record)
{
	struct referral_mailbox_list_iterate_context *ctx =
		REFERRAL_LIST_ITERATE_CONTEXT(_ctx);
	struct mail_namespace *ns = _ctx->list->ns;
	const struct referral_entry *entry;
	struct referral_list_name *name, *parent;
	const char *const *ancestors;
	unsigned int i, count;

	/* the same precedence as single lookups (referral-lookup.c) */
	array_foreach(&record->entries, entry) {
		name = referral_list_name_add(_ctx, entry->mailbox);
		if (name->entry == NULL ||
		    referral_entry_precedes(entry, name->entry))
			name->entry = entry;
		if (entry->subtree &&
		    (name->subtree_entry == NULL ||
		     referral_entry_precedes(entry, name->subtree_entry)))
			name->subtree_entry = entry;
	}

	count = array_count(&ctx->sorted_names);
	for (i = 0; i < count; i++) {
		name = array_idx_elem(&ctx->sorted_names, i);
		name->local = referral_entry_is_local(ctx->ruser, name->entry);
		if (name->local)
			continue;
		/* parents below the namespace root, so that clients can
		   walk down to the remote mailbox */
		ancestors = referral_name_ancestors(name->vname, ctx->sep);
		for (; *ancestors != NULL; ancestors++) {
			if (strlen(*ancestors) <= ns->prefix_len)
				continue;
			parent = referral_list_name_add(_ctx, *ancestors);
			parent->children = TRUE;
		}
	}
	array_sort(&ctx->sorted_names, referral_list_name_cmp);
}

/* Returns the entry covering vname (its own, or the deepest subtree entry
   above it) and whether this server is among its servers, or NULL. */
static const struct referral_entry *
referral_list_find_covering(struct referral_mailbox_list_iterate_context *ctx,
			    const char *vname, bool *local_r)
{
	const struct referral_list_name *name;
	char *parent, *p;

	if (hash_table_count(ctx->names) == 0)
		return NULL;
	name = hash_table_lookup(ctx->names, vname);
	if (name != NULL && name->entry != NULL) {
		*local_r = name->local;
		return name->entry;
	}
	/* this runs for every listed mailbox: walk up the hierarchy by
	   cutting one copy of the name, deepest parent first */
	parent = t_strdup_noconst(vname);
	while ((p = strrchr(parent, ctx->sep)) != NULL) {
		*p = '\0';
		name = hash_table_lookup(ctx->names, (const char *)parent);
		if (name != NULL && name->subtree_entry != NULL) {
			*local_r = referral_entry_is_local(ctx->ruser,
							   name->subtree_entry);
			return name->subtree_entry;
		}
	}
	return NULL;
}

static struct mailbox_list_iterate_context *
referral_mailbox_list_iter_init(struct mailbox_list *list,
				const char *const *patterns,
				enum mailbox_list_iter_flags flags)
{
	struct referral_mailbox_list *rlist = REFERRAL_LIST_CONTEXT(list);
	struct referral_user *ruser =
		REFERRAL_USER_CONTEXT_REQUIRE(list->ns->user);
	struct mailbox_list_iterate_context *_ctx;
	struct referral_mailbox_list_iterate_context *ctx;
	const struct referral_cache_record *record;
	const char *error;

	_ctx = rlist->module_ctx.super.iter_init(list, patterns, flags);
	ctx = p_new(_ctx->pool, struct referral_mailbox_list_iterate_context, 1);
	ctx->ruser = ruser;
	ctx->sep = mail_namespace_get_sep(list->ns);
	ctx->remote_mode = (flags & MAILBOX_LIST_ITER_REFERRAL_REMOTE) != 0;
	hash_table_create(&ctx->names, _ctx->pool, 0, str_hash, strcmp);
	p_array_init(&ctx->sorted_names, _ctx->pool, 16);
	MODULE_CONTEXT_SET(_ctx, referral_mailbox_list_module, ctx);

	T_BEGIN {
		record = referral_list_get_entries(ruser, list->ns,
						   ctx->remote_mode, &error);
		if (record == NULL) {
			/* plain listings go on without hiding anything;
			   remote ones end with the error */
			ctx->failed = TRUE;
			ctx->error = p_strdup(_ctx->pool, error);
		} else {
			/* the names point into the record: keep it alive
			   even if the cache replaces it meanwhile */
			ctx->record_pool = record->pool;
			pool_ref(ctx->record_pool);
			referral_list_build_names(_ctx, record);
		}
	} T_END;
	return _ctx;
}

/* Adjust a locally listed mailbox: returns NULL to hide it, or the info to
   return. */
static const struct mailbox_info *
referral_list_local_info(struct mailbox_list_iterate_context *_ctx,
			 const struct mailbox_info *info)
{
	struct referral_mailbox_list_iterate_context *ctx =
		REFERRAL_LIST_ITERATE_CONTEXT(_ctx);
	struct referral_list_name *name;
	bool local, remote;

	remote = referral_list_find_covering(ctx, info->vname, &local) != NULL &&
		!local;
	if (!ctx->remote_mode)
		return remote ? NULL : info;

	name = hash_table_lookup(ctx->names, info->vname);
	if (name != NULL)
		name->listed = TRUE;
	if (!remote && (name == NULL || !name->children))
		return info;

	/* listed once, with what both sides know */
	ctx->info = *info;
	if (remote) {
		/* e.g. a subscription: it exists, on its servers */
		ctx->info.flags &= ENUM_NEGATE(MAILBOX_NONEXISTENT |
					       MAILBOX_NOSELECT);
		ctx->info.flags |= MAILBOX_REFERRAL_REMOTE;
	}
	if (name != NULL && name->children) {
		ctx->info.flags &= ENUM_NEGATE(MAILBOX_NOCHILDREN);
		ctx->info.flags |= MAILBOX_CHILDREN;
	}
	return &ctx->info;
}

static bool
referral_list_is_subscribed(struct mailbox_list *list, const char *vname)
{
	struct mailbox_node *node;

	if (list->subscriptions == NULL &&
	    mailbox_list_iter_subscriptions_refresh(list) < 0)
		return FALSE;
	node = mailbox_tree_lookup(list->subscriptions, vname);
	return node != NULL && (node->flags & MAILBOX_SUBSCRIBED) != 0;
}

/* The remote pass: names from the directory not listed locally. */
static const struct mailbox_info *
referral_list_next_remote(struct mailbox_list_iterate_context *_ctx)
{
	struct referral_mailbox_list_iterate_context *ctx =
		REFERRAL_LIST_ITERATE_CONTEXT(_ctx);
	struct referral_list_name *const *names, *name;
	unsigned int count;

	names = array_get(&ctx->sorted_names, &count);
	while (ctx->next_idx < count) {
		name = names[ctx->next_idx++];
		if (name->listed || name->local ||
		    imap_match(_ctx->glob, name->vname) != IMAP_MATCH_YES)
			continue;

		i_zero(&ctx->info);
		ctx->info.ns = _ctx->list->ns;
		ctx->info.vname = name->vname;
		if (name->entry == NULL) {
			/* a parent that exists nowhere by itself (\Noselect
			   in plain listings) */
			ctx->info.flags = MAILBOX_NONEXISTENT | MAILBOX_CHILDREN;
			return &ctx->info;
		}
		ctx->info.flags = MAILBOX_REFERRAL_REMOTE;
		if (name->children)
			ctx->info.flags |= MAILBOX_CHILDREN;
		else if (!name->entry->subtree) {
			/* what is below a subtree entry only its servers
			   know */
			ctx->info.flags |= MAILBOX_NOCHILDREN;
		}
		if ((_ctx->flags & MAILBOX_LIST_ITER_RETURN_SUBSCRIBED) != 0 &&
		    referral_list_is_subscribed(_ctx->list, name->vname))
			ctx->info.flags |= MAILBOX_SUBSCRIBED;
		return &ctx->info;
	}
	return NULL;
}

static const struct mailbox_info *
referral_mailbox_list_iter_next(struct mailbox_list_iterate_context *_ctx)
{
	struct referral_mailbox_list_iterate_context *ctx =
		REFERRAL_LIST_ITERATE_CONTEXT(_ctx);
	struct referral_mailbox_list *rlist = REFERRAL_LIST_CONTEXT(_ctx->list);
	const struct mailbox_info *info;

	while (!ctx->local_done) {
		/* Normally the data stack frame is in mailbox_list_iter_next(),
		   but we're bypassing it here by calling super.iter_next()
		   directly. */
		T_BEGIN {
			info = rlist->module_ctx.super.iter_next(_ctx);
		} T_END;
		if (info == NULL) {
			ctx->local_done = TRUE;
			break;
		}
		if (ctx->failed)
			return info;
		info = referral_list_local_info(_ctx, info);
		if (info != NULL)
			return info;
	}

	/* with SUBSCRIBED selection the subscriptions already named every
	   subscribed remote mailbox */
	if (!ctx->remote_mode || ctx->failed ||
	    (_ctx->flags & MAILBOX_LIST_ITER_SELECT_SUBSCRIBED) != 0 ||
	    _ctx->glob == NULL)
		return NULL;
	return referral_list_next_remote(_ctx);
}

static int
referral_mailbox_list_iter_deinit(struct mailbox_list_iterate_context *_ctx)
{
	struct referral_mailbox_list_iterate_context *ctx =
		REFERRAL_LIST_ITERATE_CONTEXT(_ctx);
	struct referral_mailbox_list *rlist = REFERRAL_LIST_CONTEXT(_ctx->list);
	struct referral_user *ruser = ctx->ruser;
	bool remote_failed = ctx->remote_mode && ctx->failed;
	const char *error = NULL;
	int ret;

	/* everything of ctx is in _ctx->pool, gone after super.deinit */
	if (remote_failed)
		error = p_strdup(ruser->user->pool, ctx->error);
	hash_table_destroy(&ctx->names);
	if (ctx->record_pool != NULL)
		pool_unref(&ctx->record_pool);

	ret = rlist->module_ctx.super.iter_deinit(_ctx);
	if (remote_failed) {
		/* RFC 2193 listings never end with OK when incomplete; the
		   command asks for this error. Failing the iteration instead
		   would also cut other namespaces' mailboxes (lib-storage
		   drops the delayed INBOX of a failed listing). */
		ruser->list_error = error;
	}
	return ret;
}

void referral_mailbox_list_init_iter(struct mailbox_list_vfuncs *v)
{
	v->iter_init = referral_mailbox_list_iter_init;
	v->iter_next = referral_mailbox_list_iter_next;
	v->iter_deinit = referral_mailbox_list_iter_deinit;
}

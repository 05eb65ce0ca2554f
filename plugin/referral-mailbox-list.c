/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* Mailbox list iteration in the namespaces where referrals apply.

   RFC 2193 section 3: remote mailboxes stay out of LIST and LSUB, so plain
   listings hide every name the directory places on another server (a local
   mailbox too: SELECT would refer it). Listings started in "remote" mode
   (RLIST, RLSUB, LIST (REMOTE): MAILBOX_LIST_ITER_REFERRAL_REMOTE)
   keep those names, flagged MAILBOX_REFERRAL_REMOTE, and then add the
   directory's remote mailboxes and their parents that match the patterns.

   The namespace's directory entries come from referral-listing.c. With a
   backend of fresh answers (the service), plain listings ask about each
   local name instead: their cost follows what this server holds, not the
   size of the directory. */

#include "lib.h"
#include "array.h"
#include "str-sanitize.h"
#include "imap-match.h"
#include "mail-namespace.h"
#include "mailbox-tree.h"
#include "referral-directory.h"
#include "referral-cache.h"
#include "referral-index.h"
#include "referral-listing.h"
#include "referral-lookup.h"
#include "referral-mailbox-list.h"
#include "referral-plugin.h"
#include "referral-proxy.h"

#define REFERRAL_LIST_ITERATE_CONTEXT(obj) \
	MODULE_CONTEXT_REQUIRE(obj, referral_mailbox_list_module)

struct referral_mailbox_list_iterate_context {
	union mailbox_list_iterate_module_context module_ctx;

	struct referral_user *ruser;
	bool remote_mode;
	/* plain listing with a backend of fresh answers: ask about each
	   local name instead of listing the namespace */
	bool by_name;
	/* the directory could not be listed */
	bool failed;
	const char *error;

	/* The cached listing (referenced: the cache may replace it while
	   this iteration runs) and its index. */
	pool_t record_pool;
	struct referral_index *index;
	/* per index name: already returned by the local pass */
	bool *listed;
	/* a proxied session's plain listing: what is below a subtree
	   entry is listed from its server */
	bool proxy_subtrees;
	struct mailbox_list_iterate_context *sub_iter;
	/* the subtree being listed: its name here, and the prefix of the
	   names in the proxy list that stand for it (namespace prefix and
	   remote name) */
	const char *sub_vname, *sub_prefix;
	unsigned int next_idx;
	bool local_done;

	struct mailbox_info info;
};

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

	unsigned int count;

	_ctx = rlist->module_ctx.super.iter_init(list, patterns, flags);
	ctx = p_new(_ctx->pool, struct referral_mailbox_list_iterate_context, 1);
	ctx->ruser = ruser;
	/* A proxied session uses remote mailboxes as if they were here:
	   its plain listings show them too. Not lib-storage's own raw
	   listings (e.g. the acl plugin's list of mailboxes, which asks
	   each name's storage and expects this namespace's). */
	ctx->remote_mode = (flags & MAILBOX_LIST_ITER_REFERRAL_REMOTE) != 0 ||
		((flags & MAILBOX_LIST_ITER_RAW_LIST) == 0 &&
		 referral_proxy_active(ruser));
	ctx->proxy_subtrees = ctx->remote_mode &&
		(flags & (MAILBOX_LIST_ITER_REFERRAL_REMOTE |
			  MAILBOX_LIST_ITER_SELECT_SUBSCRIBED)) == 0;
	MODULE_CONTEXT_SET(_ctx, referral_mailbox_list_module, ctx);

	if (!ctx->remote_mode && referral_directory_answers_fresh(ruser->dir)) {
		/* The service answers from memory: hiding the remote names
		   among the local ones costs one lookup per local name,
		   whatever the size of the directory, where a listing would
		   cost the whole namespace in every session. */
		ctx->by_name = TRUE;
		return _ctx;
	}
	T_BEGIN {
		record = referral_list_get_entries(ruser, list->ns,
						   ctx->remote_mode, &error);
		if (record == NULL) {
			/* plain listings go on without hiding anything;
			   remote ones end with the error */
			ctx->failed = TRUE;
			ctx->error = p_strdup(_ctx->pool, error);
		} else {
			ctx->record_pool = record->pool;
			pool_ref(ctx->record_pool);
			ctx->index = record->index;
			(void)referral_index_get_names(ctx->index, &count);
			ctx->listed = p_new(_ctx->pool, bool, count + 1);
		}
	} T_END;
	return _ctx;
}

/* Returns TRUE if the directory places the local mailbox vname elsewhere,
   asking it about this name only; on failure the listing goes on without
   hiding anything, as when the namespace cannot be listed. */
static bool
referral_list_name_is_remote(struct mailbox_list_iterate_context *_ctx,
			     const char *vname)
{
	struct referral_mailbox_list_iterate_context *ctx =
		REFERRAL_LIST_ITERATE_CONTEXT(_ctx);
	struct mail_namespace *ns = _ctx->list->ns;
	const struct referral_entry *entry;
	const char *source, *error;
	bool remote = FALSE;

	T_BEGIN {
		if (referral_lookup_entry(ctx->ruser, ns->prefix, vname,
					  mail_namespace_get_sep(ns), &entry,
					  &source, &error) < 0)
			ctx->failed = TRUE;
		else {
			remote = entry != NULL &&
				!referral_entry_is_local(ctx->ruser, entry);
		}
	} T_END;
	return remote;
}

/* Adjust a locally listed mailbox: returns NULL to hide it, or the info to
   return. */
static const struct mailbox_info *
referral_list_local_info(struct mailbox_list_iterate_context *_ctx,
			 const struct mailbox_info *info)
{
	struct referral_mailbox_list_iterate_context *ctx =
		REFERRAL_LIST_ITERATE_CONTEXT(_ctx);
	const struct referral_index_name *name = NULL;
	unsigned int count;
	bool local, remote;
	int idx;

	if (ctx->by_name)
		return referral_list_name_is_remote(_ctx, info->vname) ?
			NULL : info;
	remote = referral_index_find_covering(ctx->index, info->vname,
					      &local) != NULL && !local;
	if (!ctx->remote_mode)
		return remote ? NULL : info;

	idx = referral_index_lookup(ctx->index, info->vname);
	if (idx >= 0) {
		ctx->listed[idx] = TRUE;
		name = &referral_index_get_names(ctx->index, &count)[idx];
	}
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

/* Start listing the subtree whose root is vname from its server. Returns
   FALSE if it cannot be (the root is then listed as without the proxy). */
static bool
referral_list_subtree_start(struct mailbox_list_iterate_context *_ctx,
			    const char *vname)
{
	struct referral_mailbox_list_iterate_context *ctx =
		REFERRAL_LIST_ITERATE_CONTEXT(_ctx);
	struct mail_namespace *ns = _ctx->list->ns;
	struct mailbox_list *sub_list;
	const char *remote_name, *prefix;
	char sep = mail_namespace_get_sep(ns);

	sub_list = referral_proxy_subtree_list(ctx->ruser, ns, vname,
					       &remote_name);
	if (sub_list == NULL)
		return FALSE;
	prefix = p_strconcat(_ctx->pool, sub_list->ns->prefix, remote_name,
			     NULL);
	ctx->sub_vname = p_strdup(_ctx->pool, vname);
	ctx->sub_prefix = prefix;
	ctx->sub_iter = mailbox_list_iter_init_multiple(sub_list,
		(const char *const []){ prefix,
			t_strdup_printf("%s%c*", prefix, sep), NULL },
		MAILBOX_LIST_ITER_RETURN_CHILDREN);
	return TRUE;
}

/* The next mailbox of the subtree being listed from its server, under
   its name here, with the flags its server gives it. */
static const struct mailbox_info *
referral_list_next_subtree(struct mailbox_list_iterate_context *_ctx)
{
	struct referral_mailbox_list_iterate_context *ctx =
		REFERRAL_LIST_ITERATE_CONTEXT(_ctx);
	const struct mailbox_info *info;
	size_t prefix_len = strlen(ctx->sub_prefix);
	const char *vname;

	while ((info = mailbox_list_iter_next(ctx->sub_iter)) != NULL) {
		if (strncmp(info->vname, ctx->sub_prefix, prefix_len) != 0 ||
		    (info->vname[prefix_len] != '\0' &&
		     info->vname[prefix_len] !=
		     mail_namespace_get_sep(_ctx->list->ns)))
			continue;
		vname = p_strconcat(_ctx->pool, ctx->sub_vname,
				    info->vname + prefix_len, NULL);
		if (imap_match(_ctx->glob, vname) != IMAP_MATCH_YES)
			continue;
		i_zero(&ctx->info);
		ctx->info.ns = _ctx->list->ns;
		ctx->info.vname = vname;
		ctx->info.flags = (info->flags & (MAILBOX_CHILDREN |
			MAILBOX_NOCHILDREN | MAILBOX_NOSELECT |
			MAILBOX_NONEXISTENT | MAILBOX_NOINFERIORS)) |
			MAILBOX_REFERRAL_REMOTE;
		return &ctx->info;
	}
	/* the remote server's listing failed: the session goes on with
	   what it has, as a plain listing whose directory failed does */
	(void)mailbox_list_iter_deinit(&ctx->sub_iter);
	return NULL;
}

/* The remote pass: names from the directory not listed locally. */
static const struct mailbox_info *
referral_list_next_remote(struct mailbox_list_iterate_context *_ctx)
{
	struct referral_mailbox_list_iterate_context *ctx =
		REFERRAL_LIST_ITERATE_CONTEXT(_ctx);
	const struct referral_index_name *names, *name;
	size_t root_len = _ctx->list->ns->prefix_len;
	unsigned int count;

	const struct mailbox_info *info;
	enum imap_match_result match;

	names = referral_index_get_names(ctx->index, &count);
	while (ctx->next_idx < count) {
		name = &names[ctx->next_idx];
		if (ctx->listed[ctx->next_idx++] || name->local)
			continue;
		match = imap_match(_ctx->glob, name->vname);
		if (ctx->proxy_subtrees && name->entry != NULL &&
		    name->entry->subtree &&
		    (match & (IMAP_MATCH_YES | IMAP_MATCH_CHILDREN)) != 0 &&
		    strlen(name->vname) >= root_len &&
		    referral_list_subtree_start(_ctx, name->vname)) {
			/* the subtree's root and what is below it, as its
			   server lists them */
			info = referral_list_next_subtree(_ctx);
			if (info != NULL)
				return info;
			continue;
		}
		if (match != IMAP_MATCH_YES)
			continue;
		if (strlen(name->vname) < root_len) {
			/* an entry for the namespace root itself ("Public"):
			   lib-storage lists the root */
			continue;
		}

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
		/* this loop may skip thousands of hidden names within one
		   call of ours, and the frame mailbox_list_iter_next() gives
		   us covers the whole call: bound each step's temporaries */
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
	if (ctx->sub_iter != NULL) {
		info = referral_list_next_subtree(_ctx);
		if (info != NULL)
			return info;
	}
	return referral_list_next_remote(_ctx);
}

static int
referral_mailbox_list_iter_deinit(struct mailbox_list_iterate_context *_ctx)
{
	struct referral_mailbox_list_iterate_context *ctx =
		REFERRAL_LIST_ITERATE_CONTEXT(_ctx);
	struct referral_mailbox_list *rlist = REFERRAL_LIST_CONTEXT(_ctx->list);
	struct referral_user *ruser = ctx->ruser;

	if (ctx->remote_mode && ctx->failed) {
		/* RFC 2193 listings never end with OK when incomplete; the
		   command asks for this error. Failing the iteration instead
		   would also cut other namespaces' mailboxes (lib-storage
		   drops the delayed INBOX of a failed listing). */
		i_free(ruser->list_error);
		ruser->list_error = i_strdup(ctx->error);
		ruser->list_failures++;
	}
	if (ctx->sub_iter != NULL)
		(void)mailbox_list_iter_deinit(&ctx->sub_iter);
	if (ctx->record_pool != NULL)
		pool_unref(&ctx->record_pool);
	/* ctx is in _ctx->pool: gone after this */
	return rlist->module_ctx.super.iter_deinit(_ctx);
}

void referral_mailbox_list_init_iter(struct mailbox_list_vfuncs *v)
{
	v->iter_init = referral_mailbox_list_iter_init;
	v->iter_next = referral_mailbox_list_iter_next;
	v->iter_deinit = referral_mailbox_list_iter_deinit;
}

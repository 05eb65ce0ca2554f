/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* Mailbox vfunc overrides: where a command that names a remote mailbox
   fails with the referral. imap turns a storage error whose text starts
   with '[' into "NO <text>" verbatim, so setting the error to
   "[REFERRAL url ...] text" is all it takes for SELECT, EXAMINE, STATUS,
   APPEND, DELETE (which opens the mailbox first), CREATE and the
   destination of COPY and MOVE. */

#include "lib.h"
#include "array.h"
#include "str-sanitize.h"
#include "mail-namespace.h"
#include "referral-settings.h"
#include "referral-directory.h"
#include "referral-cache.h"
#include "referral-listing.h"
#include "referral-lookup.h"
#include "referral-url.h"
#include "referral-proxy.h"
#include "referral-plugin.h"

struct referral_storage_module referral_storage_module =
	MODULE_CONTEXT_INIT(&mail_storage_module_register);

#define REFERRAL_RENAME_PUBLISHED_ERROR \
	"Mailbox is published in the referral directory; " \
	"an administrator must move its directory entry"
#define REFERRAL_RENAME_CHILDREN_ERROR \
	"Mailboxes below it are published in the referral " \
	"directory; an administrator must move their entries"

static const char *referral_url_user(struct mail_user *user)
{
	return user->anonymous ? NULL : user->username;
}

/* Where does box live? Returns as referral_lookup(), with target_r in the
   data stack; on -1 the storage error is set (UNAVAILABLE). */
static int
referral_mailbox_lookup(struct mailbox *box, struct referral_target *target_r)
{
	struct referral_user *ruser =
		REFERRAL_USER_CONTEXT_REQUIRE(box->storage->user);
	const char *error;
	int ret;

	ret = referral_lookup(ruser, box->list->ns->prefix, box->vname,
			      mail_namespace_get_sep(box->list->ns),
			      target_r, &error);
	if (ret < 0)
		mail_storage_set_error(box->storage, MAIL_ERROR_UNAVAILABLE,
				       error);
	return ret;
}

/* A proxy's session asked for a mailbox that this server's directory
   places elsewhere: the two servers' directories disagree. */
static void
referral_mailbox_disagree(struct mailbox *box,
			  const struct referral_target *target)
{
	struct referral_user *ruser =
		REFERRAL_USER_CONTEXT_REQUIRE(box->storage->user);
	const struct referral_server *server = array_front(&target->servers);

	e_error(ruser->event, "Mailbox %s: a proxy asked for it, but this "
		"server's directory places it on %s: the directories "
		"disagree (not referring or proxying further, to avoid a loop)",
		str_sanitize(box->vname, 128),
		referral_host_to_string(&server->addr));
	mail_storage_set_error(box->storage, MAIL_ERROR_UNAVAILABLE,
		"The referral directories of the servers disagree "
		"about where this mailbox is");
}

/* Returns 0 if this server serves the mailbox, -1 with the storage error
   set to the referral (or to UNAVAILABLE) if not. */
static int referral_mailbox_check(struct mailbox *box)
{
	struct referral_mailbox *rbox = REFERRAL_CONTEXT_REQUIRE(box);
	struct referral_target target;
	int ret;

	if (rbox->local)
		return 0;
	if (rbox->proxy_error != NULL) {
		/* the proxy could not reach the mailbox's servers */
		mail_storage_set_error(box->storage, MAIL_ERROR_UNAVAILABLE,
				       rbox->proxy_error);
		return -1;
	}
	T_BEGIN {
		ret = referral_mailbox_lookup(box, &target);
		if (ret > 0 && referral_proxy_session_is_proxied(
				REFERRAL_USER_CONTEXT_REQUIRE(box->storage->user))) {
			/* A proxy sent us here: referring (or proxying) on
			   would send the client round in a loop. */
			referral_mailbox_disagree(box, &target);
		} else if (ret > 0) {
			/* not NOTFOUND: imap would add [TRYCREATE] */
			mail_storage_set_error(box->storage,
				MAIL_ERROR_NOTPOSSIBLE,
				referral_target_reply(
					referral_url_user(box->storage->user),
					&target));
		}
	} T_END;
	if (ret == 0)
		rbox->local = TRUE;
	return ret == 0 ? 0 : -1;
}

static int referral_mailbox_open(struct mailbox *box)
{
	struct referral_mailbox *rbox = REFERRAL_CONTEXT_REQUIRE(box);

	if (referral_mailbox_check(box) < 0)
		return -1;
	return rbox->module_ctx.super.open(box);
}

static int
referral_mailbox_get_status(struct mailbox *box,
			    enum mailbox_status_items items,
			    struct mailbox_status *status_r)
{
	struct referral_mailbox *rbox = REFERRAL_CONTEXT_REQUIRE(box);

	/* an opened mailbox was checked when it was opened; STATUS on a
	   closed one may be answered from the list index without opening */
	if (!box->opened && referral_mailbox_check(box) < 0)
		return -1;
	return rbox->module_ctx.super.get_status(box, items, status_r);
}

static int
referral_mailbox_exists(struct mailbox *box, bool auto_boxes,
			enum mailbox_existence *existence_r)
{
	struct referral_mailbox *rbox = REFERRAL_CONTEXT_REQUIRE(box);
	struct referral_target target;
	int ret;

	if (rbox->module_ctx.super.exists(box, auto_boxes, existence_r) < 0)
		return -1;
	if (*existence_r != MAILBOX_EXISTENCE_NONE)
		return 0;
	/* A remote mailbox exists, elsewhere: this is what lets SUBSCRIBE
	   record it on the home server (for RLSUB). */
	T_BEGIN {
		ret = referral_mailbox_lookup(box, &target);
	} T_END;
	if (ret < 0)
		return -1;
	if (ret > 0)
		*existence_r = MAILBOX_EXISTENCE_SELECT;
	return 0;
}

static int referral_mailbox_set_subscribed(struct mailbox *box, bool set)
{
	struct referral_mailbox *rbox = REFERRAL_CONTEXT_REQUIRE(box);
	struct referral_user *ruser =
		REFERRAL_USER_CONTEXT_REQUIRE(box->storage->user);

	/* RFC 2193 section 4.1 allows either; by default the home server
	   keeps the subscriptions so that RLSUB can list them */
	if (ruser->set->subscriptions_refer &&
	    referral_mailbox_check(box) < 0)
		return -1;
	return rbox->module_ctx.super.set_subscribed(box, set);
}

/* lib-storage 2.3 calls create_box and rename_box holding the mailbox
   list's lock (mailbox_create() and mailbox_rename() take it first, with
   no vfunc of ours in between). The directory must never be waited for
   under it: with a slow or frozen directory every other session's CREATE
   and RENAME in the namespace would queue behind ours, one timeout each.
   So the decision runs with the lock released, and the lock is taken
   again before lib-storage goes on; the backend then re-checks what the
   lock protects (e.g. that the name does not exist yet) under it. A lock
   held by someone else as well (a nested holder) cannot be released: then
   we wait under it, as before. Returns TRUE if the lock was released. */
static bool referral_list_unlock_for_directory(struct mailbox_list *list)
{
	if (list->lock_refcount != 1)
		return FALSE;
	mailbox_list_unlock(list);
	return TRUE;
}

/* Take the lock released by referral_list_unlock_for_directory() again.
   Returns 0, or -1 with the storage's error set. */
static int
referral_list_relock(struct mailbox_list *list, struct mail_storage *storage)
{
	if (mailbox_list_lock(list) < 0) {
		mail_storage_copy_list_error(storage, list);
		/* lib-storage unlocks after create_box/rename_box whatever
		   they return */
		list->lock_refcount = 1;
		return -1;
	}
	return 0;
}

static int
referral_mailbox_create(struct mailbox *box,
			const struct mailbox_update *update, bool directory)
{
	struct referral_mailbox *rbox = REFERRAL_CONTEXT_REQUIRE(box);
	bool unlocked;
	int ret;

	/* RFC 2193 section 4.2: a name the directory places elsewhere
	   (itself or below a remote subtree) is created there */
	unlocked = referral_list_unlock_for_directory(box->list);
	ret = referral_mailbox_check(box);
	if (unlocked && referral_list_relock(box->list, box->storage) < 0)
		return -1;
	if (ret < 0)
		return -1;
	return rbox->module_ctx.super.create_box(box, update, directory);
}

static void
referral_rename_side_init(struct referral_rename_side *side, int lookup_ret,
			  const struct referral_target *target,
			  const char *vname, const struct referral_host *self)
{
	struct referral_server *server;

	if (lookup_ret > 0) {
		side->name = target->remote_name;
		side->servers = target->servers;
		return;
	}
	/* a local side is named by this server's own URL: the pair says
	   where each name lives, it does not refer the client back here */
	side->name = vname;
	t_array_init(&side->servers, 1);
	server = array_append_space(&side->servers);
	server->addr = *self;
}

/* Returns TRUE (with the storage error set) if renaming src here would
   leave directory entries naming mailboxes that no longer exist: an entry
   for src itself, or entries below it. */
static bool
referral_rename_orphans_entries(struct referral_user *ruser,
				struct mailbox *src,
				const struct referral_target *old_target)
{
	ARRAY_TYPE(referral_directory_entry) entries;
	const char *prefix, *error;
	pool_t pool;
	bool orphans;
	int ret;

	if (old_target->own_entry) {
		mail_storage_set_error(src->storage, MAIL_ERROR_NOTPOSSIBLE,
				       REFERRAL_RENAME_PUBLISHED_ERROR);
		return TRUE;
	}
	/* a cached listing of the namespace knows; else ask for the
	   entries below the name only */
	ret = referral_listing_has_entries_below(ruser, src->list->ns->prefix,
						 src->vname);
	if (ret == 0)
		return FALSE;
	if (ret > 0) {
		mail_storage_set_error(src->storage, MAIL_ERROR_NOTPOSSIBLE,
				       REFERRAL_RENAME_CHILDREN_ERROR);
		return TRUE;
	}
	prefix = t_strdup_printf("%s%c", src->vname,
				 mail_namespace_get_sep(src->list->ns));
	pool = pool_alloconly_create("referral rename", 1024);
	p_array_init(&entries, pool, 4);
	if (referral_directory_list(ruser->dir, prefix, pool, &entries,
				    &error) < 0) {
		mail_storage_set_error(src->storage, MAIL_ERROR_UNAVAILABLE,
				       error);
		orphans = TRUE;
	} else if (array_count(&entries) > 0) {
		mail_storage_set_error(src->storage, MAIL_ERROR_NOTPOSSIBLE,
				       REFERRAL_RENAME_CHILDREN_ERROR);
		orphans = TRUE;
	} else {
		orphans = FALSE;
	}
	pool_unref(&pool);
	return orphans;
}

/* RFC 2193 section 4.3. Returns 0 if both names are local and the rename
   may go ahead here, -1 with the storage error set otherwise. */
static int
referral_mailbox_rename_check(struct mailbox *src, struct mailbox *dest)
{
	struct mail_user *user = src->storage->user;
	struct referral_user *ruser = REFERRAL_USER_CONTEXT_REQUIRE(user);
	struct referral_target old_target, new_target;
	struct referral_rename_side old_side, new_side;
	struct referral_host self;
	int old_ret, new_ret = 0;

	i_zero(&new_target);
	old_ret = referral_mailbox_lookup(src, &old_target);
	if (old_ret < 0)
		return -1;
	if (REFERRAL_LIST_CONTEXT(dest->list) != NULL &&
	    (new_ret = referral_mailbox_lookup(dest, &new_target)) < 0) {
		mail_storage_copy_error(src->storage, dest->storage);
		return -1;
	}
	if (old_ret == 0 && new_ret == 0) {
		return referral_rename_orphans_entries(ruser, src,
						       &old_target) ? -1 : 0;
	}
	if (!referral_self_host(ruser, &self)) {
		mail_storage_set_error(src->storage, MAIL_ERROR_NOTPOSSIBLE,
				       "Cannot rename across servers");
		return -1;
	}
	referral_rename_side_init(&old_side, old_ret, &old_target,
				  src->vname, &self);
	referral_rename_side_init(&new_side, new_ret, &new_target,
				  dest->vname, &self);
	mail_storage_set_error(src->storage, MAIL_ERROR_NOTPOSSIBLE,
		referral_rename_reply(referral_url_user(user),
				      &old_side, &new_side));
	return -1;
}

static int referral_mailbox_rename(struct mailbox *src, struct mailbox *dest)
{
	struct referral_mailbox *rbox = REFERRAL_CONTEXT_REQUIRE(src);
	int ret;
	bool unlocked;

	/* lib-storage locked dest's list: see
	   referral_list_unlock_for_directory() */
	unlocked = referral_list_unlock_for_directory(dest->list);
	T_BEGIN {
		ret = referral_mailbox_rename_check(src, dest);
	} T_END;
	if (unlocked && referral_list_relock(dest->list, src->storage) < 0)
		return -1;
	if (ret < 0)
		return -1;
	return rbox->module_ctx.super.rename_box(src, dest);
}

void referral_mailbox_allocated(struct mailbox *box)
{
	struct mailbox_vfuncs *v = box->vlast;
	struct referral_mailbox *rbox;

	referral_proxy_mailbox_allocated(box);
	/* only namespaces where referrals apply have the list context: other
	   mailboxes never cause a directory query */
	if (REFERRAL_LIST_CONTEXT(box->list) == NULL)
		return;

	rbox = p_new(box->pool, struct referral_mailbox, 1);
	rbox->proxy_error = referral_proxy_take_failure(box);
	rbox->module_ctx.super = *v;
	box->vlast = &rbox->module_ctx.super;
	v->open = referral_mailbox_open;
	v->get_status = referral_mailbox_get_status;
	v->create_box = referral_mailbox_create;
	v->rename_box = referral_mailbox_rename;
	v->exists = referral_mailbox_exists;
	v->set_subscribed = referral_mailbox_set_subscribed;
	MODULE_CONTEXT_SET(box, referral_storage_module, rbox);
}

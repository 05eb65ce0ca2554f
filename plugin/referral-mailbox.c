/* Copyright (c) 2026 dovecot-mailbox-referrals authors, see the included COPYING file */

/* Mailbox vfunc overrides: where a command that names a remote mailbox
   fails with the referral. imap turns a storage error whose text starts
   with '[' into "NO <text>" verbatim, so setting the error to
   "[REFERRAL url ...] text" is all it takes for SELECT, EXAMINE, STATUS,
   APPEND, DELETE, CREATE and the destination of COPY and MOVE. */

#include "lib.h"
#include "mail-namespace.h"
#include "referral-lookup.h"
#include "referral-url.h"
#include "referral-plugin.h"

struct referral_storage_module referral_storage_module =
	MODULE_CONTEXT_INIT(&mail_storage_module_register);

/* Returns 0 if this server serves the mailbox, -1 with the storage error
   set to the referral (or to UNAVAILABLE) if not. */
static int referral_mailbox_check(struct mailbox *box)
{
	struct mail_user *user = box->storage->user;
	struct referral_user *ruser = REFERRAL_USER_CONTEXT_REQUIRE(user);
	struct referral_target target;
	const char *error;
	int ret;

	T_BEGIN {
		ret = referral_lookup(ruser, box->vname,
				      mail_namespace_get_sep(box->list->ns),
				      &target, &error);
		if (ret < 0) {
			mail_storage_set_error(box->storage,
					       MAIL_ERROR_UNAVAILABLE, error);
		} else if (ret > 0) {
			/* not NOTFOUND: imap would add [TRYCREATE] */
			mail_storage_set_error(box->storage,
				MAIL_ERROR_NOTPOSSIBLE,
				referral_target_reply(user->anonymous ? NULL :
						      user->username, &target));
		}
	} T_END;
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
referral_mailbox_create(struct mailbox *box,
			const struct mailbox_update *update, bool directory)
{
	struct referral_mailbox *rbox = REFERRAL_CONTEXT_REQUIRE(box);

	/* RFC 2193 section 4.2: a name the directory places elsewhere
	   (itself or below a remote subtree) is created there */
	if (referral_mailbox_check(box) < 0)
		return -1;
	return rbox->module_ctx.super.create_box(box, update, directory);
}

static int referral_mailbox_delete(struct mailbox *box)
{
	struct referral_mailbox *rbox = REFERRAL_CONTEXT_REQUIRE(box);

	if (referral_mailbox_check(box) < 0)
		return -1;
	return rbox->module_ctx.super.delete_box(box);
}

void referral_mailbox_allocated(struct mailbox *box)
{
	struct mailbox_vfuncs *v = box->vlast;
	struct referral_mailbox *rbox;

	/* only namespaces where referrals apply have the list context: other
	   mailboxes never cause a directory query */
	if (REFERRAL_LIST_CONTEXT(box->list) == NULL)
		return;

	rbox = p_new(box->pool, struct referral_mailbox, 1);
	rbox->module_ctx.super = *v;
	box->vlast = &rbox->module_ctx.super;
	v->open = referral_mailbox_open;
	v->get_status = referral_mailbox_get_status;
	v->create_box = referral_mailbox_create;
	v->delete_box = referral_mailbox_delete;
	MODULE_CONTEXT_SET(box, referral_storage_module, rbox);
}

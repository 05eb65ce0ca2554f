/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_PLUGIN_H
#define REFERRAL_PLUGIN_H

#include "module-context.h"
#include "mail-user.h"
#include "mail-storage-private.h"
#include "mailbox-list-private.h"

#define REFERRAL_USER_CONTEXT(obj) \
	MODULE_CONTEXT(obj, referral_user_module)
#define REFERRAL_USER_CONTEXT_REQUIRE(obj) \
	MODULE_CONTEXT_REQUIRE(obj, referral_user_module)
#define REFERRAL_LIST_CONTEXT(obj) \
	MODULE_CONTEXT(obj, referral_mailbox_list_module)
#define REFERRAL_CONTEXT(obj) \
	MODULE_CONTEXT(obj, referral_storage_module)
#define REFERRAL_CONTEXT_REQUIRE(obj) \
	MODULE_CONTEXT_REQUIRE(obj, referral_storage_module)

/* Exists only for users with referrals enabled. */
struct referral_user {
	union mail_user_module_context module_ctx;
	struct mail_user *user;

	const struct referral_settings *set;
	struct event *event;
	struct referral_directory *dir;
	struct referral_cache *cache;
	/* namespace prefix -> the namespace's entries, for listings */
	struct referral_cache *list_cache;
	/* how many remote listings were incomplete, and the last's error */
	unsigned int list_failures;
	char *list_error;
	/* per-session order of servers with equal preference; 0 = none */
	unsigned int shuffle_seed;
	/* the session sent RLIST, RLSUB or LIST (REMOTE): it follows
	   referrals */
	bool aware;
	/* serving remote mailboxes through this server (referral-proxy.c) */
	struct referral_proxy_state *proxy;
};

/* Exists only for the mailbox lists of namespaces where referrals apply. */
struct referral_mailbox_list {
	union mailbox_list_module_context module_ctx;
};

struct referral_mailbox {
	union mailbox_module_context module_ctx;
	/* this server serves the mailbox: decided once per struct mailbox
	   (e.g. STATUS checks, then opens) */
	bool local;
	/* the proxy could not reach the mailbox's servers (see
	   referral-proxy.c): the error every use of it gets */
	const char *proxy_error;
};

extern MODULE_CONTEXT_DEFINE(referral_user_module,
			     &mail_user_module_register);
extern MODULE_CONTEXT_DEFINE(referral_mailbox_list_module,
			     &mailbox_list_module_register);
extern MODULE_CONTEXT_DEFINE(referral_storage_module,
			     &mail_storage_module_register);

extern const char *mailbox_referrals_plugin_version;

void referral_mail_user_created(struct mail_user *user);
void referral_mailbox_list_created(struct mailbox_list *list);
void referral_mailbox_allocated(struct mailbox *box);

/* Returns TRUE if referrals are enabled for the user (for the imap plugin:
   advertise MAILBOX-REFERRALS only then). */
bool mailbox_referrals_user_enabled(struct mail_user *user);
/* The session has shown that it follows referrals (it sent RLIST, RLSUB
   or LIST (REMOTE)): from now on remote mailboxes are referred, unless
   mailbox_referrals_proxy = all. */
void mailbox_referrals_user_set_aware(struct mail_user *user);

void mailbox_referrals_plugin_init(struct module *module);
void mailbox_referrals_plugin_deinit(void);

#endif

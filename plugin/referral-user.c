/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "mail-namespace.h"
#include "referral-settings.h"
#include "referral-directory.h"
#include "referral-cache.h"
#include "referral-mailbox-list.h"
#include "referral-proxy.h"
#include "referral-plugin.h"

struct referral_user_module referral_user_module =
	MODULE_CONTEXT_INIT(&mail_user_module_register);
struct referral_mailbox_list_module referral_mailbox_list_module =
	MODULE_CONTEXT_INIT(&mailbox_list_module_register);

#define REFERRAL_LIST_CACHE_SIZE 16

static struct event_category event_category_referrals = {
	.name = "mailbox-referrals",
};

static const char *referral_user_setting(const char *name, void *context)
{
	struct mail_user *user = context;

	return mail_user_plugin_getenv(user,
		t_strconcat(REFERRAL_SETTING_PREFIX, name, NULL));
}

static void referral_user_deinit(struct mail_user *user)
{
	struct referral_user *ruser = REFERRAL_USER_CONTEXT_REQUIRE(user);

	referral_proxy_user_deinit(ruser);
	referral_cache_deinit(&ruser->cache);
	referral_cache_deinit(&ruser->list_cache);
	i_free(ruser->list_error);
	referral_directory_deinit(&ruser->dir);
	event_unref(&ruser->event);
	ruser->module_ctx.super.deinit(user);
}

void referral_mail_user_created(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	const struct referral_settings *set;
	struct referral_directory_params params;
	struct referral_user *ruser;
	unsigned int cache_ttl_secs;
	const char *error;
	int ret;

	ret = referral_settings_parse(user->pool, referral_user_setting, user,
				      &set, &error);
	if (ret < 0) {
		/* fail the login rather than serve remote mailboxes wrongly */
		user->error = p_strdup_printf(user->pool,
			"mailbox-referrals: Invalid settings: %s", error);
		return;
	}
	if (ret == 0) {
		e_debug(user->event, "mailbox-referrals: "
			REFERRAL_SETTING_PREFIX"namespaces not set - "
			"referrals disabled");
		return;
	}

	ruser = p_new(user->pool, struct referral_user, 1);
	ruser->user = user;
	ruser->set = set;
	ruser->event = event_create(user->event);
	event_add_category(ruser->event, &event_category_referrals);
	event_set_append_log_prefix(ruser->event, "mailbox-referrals: ");
	i_zero(&params);
	params.set = set;
	params.lookup = referral_user_setting;
	params.lookup_context = user;
	params.base_dir = user->set->base_dir;
	params.module_dir = user->set->mail_plugin_dir;
	params.event_parent = ruser->event;
	if (referral_proxy_user_init(ruser, referral_user_setting, user,
				     &error) < 0 ||
	    referral_directory_init(&params, &ruser->dir, &error) < 0) {
		user->error = p_strdup_printf(user->pool,
			"mailbox-referrals: Invalid settings: %s", error);
		event_unref(&ruser->event);
		return;
	}
	/* A backend that answers from a replica kept current within a
	   second is asked every time: a cache would only serve older
	   answers, for no saving worth having. */
	cache_ttl_secs = referral_directory_answers_fresh(ruser->dir) ? 0 :
		set->cache_ttl_secs;
	ruser->cache = referral_cache_init(cache_ttl_secs, set->cache_size);
	/* one record per namespace */
	ruser->list_cache = referral_cache_init(cache_ttl_secs,
						REFERRAL_LIST_CACHE_SIZE);
	if (set->shuffle)
		ruser->shuffle_seed = i_rand() | 1;
	ruser->module_ctx.super = *v;
	user->vlast = &ruser->module_ctx.super;
	v->deinit = referral_user_deinit;
	MODULE_CONTEXT_SET(user, referral_user_module, ruser);
}

bool mailbox_referrals_user_enabled(struct mail_user *user)
{
	return REFERRAL_USER_CONTEXT(user) != NULL;
}

void mailbox_referrals_user_set_aware(struct mail_user *user)
{
	struct referral_user *ruser = REFERRAL_USER_CONTEXT(user);

	if (ruser == NULL || ruser->aware)
		return;
	ruser->aware = TRUE;
	e_debug(ruser->event, "Session follows referrals (sent RLIST, "
		"RLSUB or LIST (REMOTE))");
}

/* Returns TRUE if the namespace is named in mailbox_referrals_namespaces,
   by its name or its prefix (with or without the trailing separator). */
static bool
referral_namespace_is_enabled(const struct referral_settings *set,
			      struct mail_namespace *ns)
{
	const char *const *item;
	char sep = mail_namespace_get_sep(ns);

	for (item = set->namespaces; *item != NULL; item++) {
		size_t len = strlen(*item);

		if (ns->set != NULL && ns->set->name != NULL &&
		    strcmp(ns->set->name, *item) == 0)
			return TRUE;
		if (ns->prefix_len == 0 || strncmp(ns->prefix, *item, len) != 0)
			continue;
		if (ns->prefix_len == len ||
		    (ns->prefix_len == len + 1 && ns->prefix[len] == sep))
			return TRUE;
	}
	return FALSE;
}

void referral_mailbox_list_created(struct mailbox_list *list)
{
	struct referral_user *ruser = REFERRAL_USER_CONTEXT(list->ns->user);
	struct mailbox_list_vfuncs *v = list->vlast;
	struct referral_mailbox_list *rlist;

	if (ruser == NULL || referral_proxy_list_is_ours(list) ||
	    !referral_namespace_is_enabled(ruser->set, list->ns))
		return;

	e_debug(ruser->event, "Referrals enabled for namespace '%s'",
		list->ns->prefix);
	rlist = p_new(list->pool, struct referral_mailbox_list, 1);
	rlist->module_ctx.super = *v;
	list->vlast = &rlist->module_ctx.super;
	referral_mailbox_list_init_iter(v);
	MODULE_CONTEXT_SET(list, referral_mailbox_list_module, rlist);
}

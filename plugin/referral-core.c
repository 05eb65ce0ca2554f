/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The entry point of the plugin's core module,
   lib20_mailbox_referrals_core_plugin.so: the referral logic, the
   directory backends, listings and the proxy. The mail plugin's module
   loads it (referral_core_require()) from its own directory when a
   session first uses a namespace where referrals apply, and unloads it
   at its deinit; it need not be listed in mail_plugins. It uses the mail
   plugin's symbols (module contexts, settings), so it must load after it.
   The LDAP backend's module uses this one's. */

#include "lib.h"
#include "module-dir.h"
#include "referral-directory.h"
#include "referral-cache.h"
#include "referral-mailbox-list.h"
#include "referral-proxy.h"
#include "referral-plugin.h"

#define REFERRAL_LIST_CACHE_SIZE 16

static struct event_category event_category_referrals = {
	.name = "mailbox-referrals",
};

const char *mailbox_referrals_core_plugin_version = DOVECOT_ABI_VERSION;

void mailbox_referrals_core_plugin_init(struct module *module);
void mailbox_referrals_core_plugin_deinit(void);

static int referral_core_user_init(struct referral_user *ruser,
				   const char **error_r)
{
	struct mail_user *user = ruser->user;
	const struct referral_settings *set = ruser->set;
	struct referral_directory_params params;
	unsigned int cache_ttl_secs;

	/* the session's events: the directory's and the proxy's are its
	   children */
	ruser->event = event_create(user->event);
	event_add_category(ruser->event, &event_category_referrals);
	event_set_append_log_prefix(ruser->event, "mailbox-referrals: ");
	referral_user_directory_params(ruser, &params);
	if (referral_proxy_user_init(ruser, referral_user_setting, user,
				     error_r) < 0 ||
	    referral_directory_init(&params, &ruser->dir, error_r) < 0) {
		event_unref(&ruser->event);
		return -1;
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
	/* the user's storages were created at login, before this module
	   was loaded: the proxy's mailbox_alloc() goes on them now, and on
	   those created later through referral_plugin_storage_created() */
	referral_proxy_user_storages_init(user);
	return 0;
}

static void referral_core_user_deinit(struct referral_user *ruser)
{
	referral_proxy_user_deinit(ruser);
	referral_cache_deinit(&ruser->cache);
	referral_cache_deinit(&ruser->list_cache);
	i_free(ruser->list_error);
	referral_directory_deinit(&ruser->dir);
	event_unref(&ruser->event);
}

static void referral_core_list_init(struct mailbox_list_vfuncs *v)
{
	referral_mailbox_list_init_iter(v);
}

static const struct referral_core_vfuncs referral_core_vfuncs = {
	.user_init = referral_core_user_init,
	.user_deinit = referral_core_user_deinit,
	.list_init = referral_core_list_init,
	.list_is_ours = referral_proxy_list_is_ours,
	.mailbox_allocated = referral_mailbox_allocated,
	.mailbox_lost = referral_proxy_mailbox_lost,
	.mailbox_is_remote = referral_proxy_mailbox_is_remote,
	.mailbox_thread = referral_proxy_mailbox_thread,
	.route = referral_proxy_route,
	.storage_created = referral_proxy_storage_created,
	.mail_allocated = referral_proxy_mail_allocated,
};

void mailbox_referrals_core_plugin_init(struct module *module ATTR_UNUSED)
{
	referral_core_register(&referral_core_vfuncs);
}

void mailbox_referrals_core_plugin_deinit(void)
{
	referral_core_unregister();
	referral_directory_backends_deinit();
}

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* Per-user setup in the mail plugin's module (see referral-plugin.c): at
   login the settings are checked, so that an invalid value fails the
   login, and the lists of the namespaces where referrals apply get the
   two vfuncs through which every use of them begins: iter_init (every
   listing) and get_storage (mailbox_alloc(), for every mailbox of the
   namespace). With a deployment where mailbox_referrals_namespaces
   applies to every user, these run at every login, for a namespace the
   session may never use. The first call of either loads the core module,
   sets up the user's directory backend, caches and proxy state, and
   installs the core's vfuncs of the list in place of these two (so any
   vfunc the core installs takes effect at the namespace's first listing
   or mailbox, not before). */

#include "lib.h"
#include "array.h"
#include "mail-namespace.h"
#include "referral-settings.h"
#include "referral-directory.h"
#include "referral-directory-service.h"
#include "referral-mailbox-list.h"
#include "referral-proxy.h"
#include "referral-plugin.h"

struct referral_user_module referral_user_module =
	MODULE_CONTEXT_INIT(&mail_user_module_register);
struct referral_mailbox_list_module referral_mailbox_list_module =
	MODULE_CONTEXT_INIT(&mailbox_list_module_register);

const char *referral_user_setting(const char *name, void *context)
{
	struct mail_user *user = context;

	return mail_user_plugin_getenv(user,
		t_strconcat(REFERRAL_SETTING_PREFIX, name, NULL));
}

void referral_user_directory_params(struct referral_user *ruser,
				    struct referral_directory_params *params_r)
{
	struct mail_user *user = ruser->user;

	i_zero(params_r);
	params_r->set = ruser->set;
	params_r->lookup = referral_user_setting;
	params_r->lookup_context = user;
	params_r->base_dir = user->set->base_dir;
	params_r->module_dir = user->set->mail_plugin_dir;
	params_r->event_parent = ruser->event;
}

int referral_user_require_core(struct referral_user *ruser,
			       const char **error_r)
{
	if (ruser->core_initialized)
		return 0;
	if (referral_core_require()->user_init(ruser, error_r) < 0)
		return -1;
	ruser->core_initialized = TRUE;
	return 0;
}

static void referral_user_deinit(struct mail_user *user)
{
	struct referral_user *ruser = REFERRAL_USER_CONTEXT_REQUIRE(user);

	if (ruser->core_initialized)
		referral_core_get()->user_deinit(ruser);
	ruser->module_ctx.super.deinit(user);
}

/* The user's mailbox_referrals_* plugin settings, found in one pass
   over the plugin settings (mail_user_plugin_getenv() makes a pass for
   every setting): pairs of name without the prefix and value, then NULL.
   Login uses them; the core asks referral_user_setting(). */
static const char *const *referral_login_settings(struct mail_user *user)
{
	const char *const *envs = NULL, **found;
	unsigned int i, count = 0, n = 0;
	size_t len = strlen(REFERRAL_SETTING_PREFIX);

	if (array_is_created(&user->set->plugin_envs))
		envs = array_get(&user->set->plugin_envs, &count);
	for (i = 0; i + 1 < count; i += 2) {
		if (strncmp(envs[i], REFERRAL_SETTING_PREFIX, len) == 0)
			n++;
	}
	found = p_new(user->pool, const char *, n * 2 + 1);
	for (i = 0, n = 0; i + 1 < count; i += 2) {
		if (strncmp(envs[i], REFERRAL_SETTING_PREFIX, len) == 0) {
			found[n++] = envs[i] + len;
			found[n++] = envs[i + 1];
		}
	}
	return found;
}

/* referral_setting_lookup_t over referral_login_settings() */
static const char *referral_login_setting(const char *name, void *context)
{
	const char *const *settings = context;

	for (; *settings != NULL; settings += 2) {
		if (strcmp(settings[0], name) == 0)
			return settings[1];
	}
	return NULL;
}

/* Returns TRUE if one of the settings' names begins with prefix. */
static bool
referral_login_sets_any(const char *const *settings, const char *prefix)
{
	size_t len = strlen(prefix);

	for (; *settings != NULL; settings += 2) {
		if (strncmp(settings[0], prefix, len) == 0)
			return TRUE;
	}
	return FALSE;
}

/* Check the settings that the core's parts parse when they are set up:
   the proxy's, and the service backend's. Settings left unset get their
   defaults, which are valid: only those set are parsed. Returns 0, or -1
   with error_r. */
static int
referral_user_check_settings(struct referral_user *ruser,
			     const char *const *settings, const char **error_r)
{
	struct mail_user *user = ruser->user;
	struct referral_directory_params params;
	const struct referral_proxy_settings *proxy_set;
	const char *socket_path;
	unsigned int timeout_msecs;

	if (referral_login_sets_any(settings, "proxy")) {
		if (referral_proxy_settings_parse(user->pool,
						  referral_login_setting,
						  (void *)settings, &proxy_set,
						  error_r) < 0)
			return -1;
		ruser->may_pass_through = proxy_set->passthrough &&
			proxy_set->policy != REFERRAL_PROXY_NO;
	}
	if (strcmp(ruser->set->directory, "service") != 0)
		return 0;
	/* (the default socket is relative to base_dir) */
	if (!referral_login_sets_any(settings, "directory_") &&
	    user->set->base_dir != NULL && user->set->base_dir[0] != '\0')
		return 0;
	referral_user_directory_params(ruser, &params);
	params.lookup = referral_login_setting;
	params.lookup_context = (void *)settings;
	return referral_directory_service_settings(&params, &socket_path,
						   &timeout_msecs, error_r);
}

void referral_mail_user_created(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	const struct referral_settings *set;
	struct referral_user *ruser;
	const char *const *settings, *error;
	int ret;

	settings = referral_login_settings(user);
	ret = referral_settings_parse(user->pool, referral_login_setting,
				      (void *)settings, &set, &error);
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
	ruser->module_ctx.super = *v;
	user->vlast = &ruser->module_ctx.super;
	v->deinit = referral_user_deinit;
	MODULE_CONTEXT_SET(user, referral_user_module, ruser);

	T_BEGIN {
		ret = referral_user_check_settings(ruser, settings, &error);
		/* Other backends than the built-in service (ldap: its module
		   and its settings) are set up now, as is everything once
		   the core is in the process anyway (doveadm, or a process
		   serving several sessions), so that their errors fail the
		   login. */
		if (ret == 0 &&
		    (strcmp(set->directory, "service") != 0 ||
		     referral_core_get() != NULL))
			ret = referral_user_require_core(ruser, &error);
		if (ret < 0) {
			user->error = p_strdup_printf(user->pool,
				"mailbox-referrals: Invalid settings: %s",
				error);
		}
	} T_END;
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
	e_debug(user->event, "mailbox-referrals: Session follows referrals "
		"(sent RLIST, RLSUB or LIST (REMOTE))");
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

unsigned int mailbox_referrals_list_failures(struct mail_user *user,
					     const char **error_r)
{
	struct referral_user *ruser = REFERRAL_USER_CONTEXT(user);

	if (ruser == NULL) {
		*error_r = NULL;
		return 0;
	}
	*error_r = ruser->list_error;
	return ruser->list_failures;
}

bool mailbox_referrals_list_enabled(struct mailbox_list *list)
{
	return REFERRAL_LIST_CONTEXT(list) != NULL;
}

/* Set up the core's part of the user and of the list, once: the core's
   vfuncs replace ours in the table lib-storage calls us through. A user
   whose settings were checked at login has nothing left to fail here but
   a broken installation. */
static void referral_list_require_core(struct mailbox_list *list)
{
	struct referral_mailbox_list *rlist = REFERRAL_LIST_CONTEXT(list);
	struct referral_user *ruser =
		REFERRAL_USER_CONTEXT_REQUIRE(list->ns->user);
	const char *error;

	if (rlist->core_initialized)
		return;
	if (referral_user_require_core(ruser, &error) < 0) {
		i_fatal("mailbox-referrals: Can't set up user %s: %s",
			list->ns->user->username, error);
	}
	referral_core_get()->list_init(rlist->v);
	rlist->core_initialized = TRUE;
}

bool mailbox_referrals_user_may_pass_through(struct mail_user *user)
{
	struct referral_user *ruser = REFERRAL_USER_CONTEXT(user);

	return ruser != NULL && ruser->may_pass_through;
}

int mailbox_referrals_proxy_route(struct mail_namespace *ns,
				  const char *vname,
				  struct referral_proxy_route *route_r)
{
	if (REFERRAL_LIST_CONTEXT(ns->list) == NULL ||
	    !mailbox_referrals_user_may_pass_through(ns->user))
		return 0;
	referral_list_require_core(ns->list);
	return referral_core_get()->route(ns, vname, route_r);
}

/* The entry points stay installed when the core leaves a vfunc alone:
   then they hand over to what lib-storage would do without us. */
static struct mailbox_list_iterate_context *
referral_list_first_iter_init(struct mailbox_list *list,
			      const char *const *patterns,
			      enum mailbox_list_iter_flags flags)
{
	struct referral_mailbox_list *rlist = REFERRAL_LIST_CONTEXT(list);

	referral_list_require_core(list);
	if (rlist->v->iter_init != referral_list_first_iter_init)
		return rlist->v->iter_init(list, patterns, flags);
	return rlist->module_ctx.super.iter_init(list, patterns, flags);
}

static int
referral_list_first_get_storage(struct mailbox_list **list, const char *vname,
				struct mail_storage **storage_r)
{
	struct referral_mailbox_list *rlist = REFERRAL_LIST_CONTEXT(*list);

	referral_list_require_core(*list);
	if (rlist->v->get_storage != referral_list_first_get_storage)
		return rlist->v->get_storage(list, vname, storage_r);
	if (rlist->module_ctx.super.get_storage != NULL) {
		return rlist->module_ctx.super.get_storage(list, vname,
							   storage_r);
	}
	/* the namespace's storage; per-mailbox storage drivers (mailbox
	   { driver = ... }) do not apply in namespaces where referrals do,
	   as before the proxy (which now switches storages in
	   mailbox_alloc(), referral-proxy.c) */
	*storage_r = mail_namespace_get_default_storage((*list)->ns);
	return 0;
}

void referral_mailbox_list_created(struct mailbox_list *list)
{
	struct referral_user *ruser = REFERRAL_USER_CONTEXT(list->ns->user);
	const struct referral_core_vfuncs *core = referral_core_get();
	struct mailbox_list_vfuncs *v = list->vlast;
	struct referral_mailbox_list *rlist;

	/* the core creates the proxy's lists: none exist before it is
	   loaded */
	if (ruser == NULL || (core != NULL && core->list_is_ours(list)) ||
	    !referral_namespace_is_enabled(ruser->set, list->ns))
		return;

	e_debug(list->ns->user->event, "mailbox-referrals: "
		"Referrals enabled for namespace '%s'", list->ns->prefix);
	rlist = p_new(list->pool, struct referral_mailbox_list, 1);
	rlist->module_ctx.super = *v;
	rlist->v = v;
	list->vlast = &rlist->module_ctx.super;
	v->iter_init = referral_list_first_iter_init;
	v->get_storage = referral_list_first_get_storage;
	MODULE_CONTEXT_SET(list, referral_mailbox_list_module, rlist);
}

void referral_plugin_mailbox_allocated(struct mailbox *box)
{
	/* mailbox_alloc() asked the list's get_storage first, so a list
	   where referrals apply has the core already; this is for other
	   callers */
	if (REFERRAL_LIST_CONTEXT(box->list) != NULL)
		referral_list_require_core(box->list);
	/* without the core there are no proxy mailboxes either */
	if (referral_core_get() != NULL)
		referral_core_get()->mailbox_allocated(box);
}

const struct mailbox_referrals_imap_entry_points
mailbox_referrals_imap_entry_points = {
	.user_enabled = mailbox_referrals_user_enabled,
	.proxy_is_remote = mailbox_referrals_proxy_is_remote,
	.user_may_pass_through = mailbox_referrals_user_may_pass_through,
	.list_enabled = mailbox_referrals_list_enabled,
};

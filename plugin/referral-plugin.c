/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The mail plugin's module, lib20_mailbox_referrals_plugin.so: the hooks,
   the settings checked at login, and loading the plugin's core module
   (lib20_mailbox_referrals_core_plugin.so, everything else) when a session
   first needs it.

   Why two modules: Dovecot loads mail plugins with RTLD_NOW in every
   session, so the dynamic linker resolves every symbol a module names,
   whether the session uses it or not, and that was most of what the
   plugin cost a session that never enters a referral namespace (README,
   "Design decisions"). This module names only what login needs; the core
   is loaded from the same directory at a session's first listing of a
   namespace where referrals apply or first mailbox in one. */

/* dladdr() */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif

#include "lib.h"
#include "module-dir.h"
#include "master-service.h"
#include "referral-plugin.h"

#include <dlfcn.h>

#define REFERRAL_CORE_MODULE_NAME "mailbox_referrals_core"

const char *mailbox_referrals_plugin_version = DOVECOT_ABI_VERSION;
/* None. Dovecot looks this symbol up in every session, and a failed
   lookup costs more (an error message is formatted) than a found one. */
const char *mailbox_referrals_plugin_dependencies[] = { NULL };

static struct mail_storage_hooks referral_mail_storage_hooks = {
	.mail_user_created = referral_mail_user_created,
	.mail_storage_created = referral_plugin_storage_created,
	.mailbox_list_created = referral_mailbox_list_created,
	.mailbox_allocated = referral_plugin_mailbox_allocated,
	.mail_allocated = referral_plugin_mail_allocated,
};

/* the directory this module was loaded from: the core is next to it */
static char *referral_module_dir;
static struct module *referral_core_modules;
static const struct referral_core_vfuncs *referral_core;

void referral_core_register(const struct referral_core_vfuncs *vfuncs)
{
	referral_core = vfuncs;
}

void referral_core_unregister(void)
{
	referral_core = NULL;
}

const struct referral_core_vfuncs *referral_core_get(void)
{
	return referral_core;
}

void referral_plugin_load_module(struct module **modules, const char *name)
{
	struct module_dir_load_settings mod_set;
	const char *error;

	i_zero(&mod_set);
	mod_set.abi_version = DOVECOT_ABI_VERSION;
	mod_set.require_init_funcs = TRUE;
	/* Installed with this module: without it the plugin cannot work,
	   and going on would serve remote mailboxes as local ones. Dovecot
	   ends a process whose mail plugin is missing the same way. */
	if (module_dir_try_load_missing(modules, referral_module_dir, name,
					&mod_set, &error) < 0)
		i_fatal("mailbox-referrals: Can't load a module of the "
			"plugin: %s", error);
	module_dir_init(*modules);
}

const struct referral_core_vfuncs *referral_core_require(void)
{
	if (referral_core != NULL)
		return referral_core;
	referral_plugin_load_module(&referral_core_modules,
				    REFERRAL_CORE_MODULE_NAME);
	if (referral_core == NULL) {
		i_fatal("mailbox-referrals: The core module in %s did not "
			"register itself", referral_module_dir);
	}
	return referral_core;
}

bool mailbox_referrals_proxy_lost(struct mailbox *box, const char **error_r)
{
	return referral_core != NULL &&
		referral_core->mailbox_lost(box, error_r);
}

bool mailbox_referrals_proxy_is_remote(struct mailbox *box)
{
	return referral_core != NULL &&
		referral_core->mailbox_is_remote(box);
}

int mailbox_referrals_proxy_thread(struct mailbox *box,
				   const struct imap_arg *args, bool uid,
				   string_t *threads)
{
	if (referral_core == NULL)
		return 0;
	return referral_core->mailbox_thread(box, args, uid, threads);
}

void referral_plugin_storage_created(struct mail_storage *storage)
{
	if (referral_core != NULL)
		referral_core->storage_created(storage);
}

/* This runs for every message of every session: without the core there
   is no proxied mailbox, and nothing to do. */
void referral_plugin_mail_allocated(struct mail *mail)
{
	if (referral_core != NULL)
		referral_core->mail_allocated(mail);
}

/* The core module is in the directory of this module's file, path. */
static void referral_module_dir_set(const char *path)
{
	const char *slash = strrchr(path, '/');

	i_free(referral_module_dir);
	/* (p_strdup_printf() rather than i_strdup_until(): one symbol less
	   to resolve in every session) */
	referral_module_dir = slash == NULL ? p_strdup(default_pool, ".") :
		p_strdup_printf(default_pool, "%.*s",
				(int)(slash - path), path);
}

/* Dovecot calls this as soon as it has loaded the module, before its
   init. doveadm loads its own plugins in between, and the plugin's
   doveadm module calls the core's functions: in doveadm the core is
   loaded now, so that the doveadm module loads. */
void mailbox_referrals_plugin_preinit(void)
{
	Dl_info info;

	if (strcmp(master_service_get_name(master_service), "doveadm") != 0)
		return;
	if (dladdr((void *)mailbox_referrals_plugin_preinit, &info) == 0 ||
	    info.dli_fname == NULL)
		i_fatal("mailbox-referrals: Can't find the mail plugin's file");
	referral_module_dir_set(info.dli_fname);
	(void)referral_core_require();
}

void mailbox_referrals_plugin_init(struct module *module)
{
	referral_module_dir_set(module->path);
	mail_storage_hooks_add(module, &referral_mail_storage_hooks);
}

void mailbox_referrals_plugin_deinit(void)
{
	mail_storage_hooks_remove(&referral_mail_storage_hooks);
	/* the core unloads the backend modules it loaded */
	if (referral_core_modules != NULL)
		module_dir_unload(&referral_core_modules);
	i_free(referral_module_dir);
}

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* RLIST, RLSUB and LIST as the IMAP plugin's module registers them: the
   commands themselves are in the IMAP core module
   (lib21_imap_mailbox_referrals_core_plugin.so, imap-referral-list.c),
   loaded from the plugin's directory at the first of them in a session.
   Dovecot loads this module with RTLD_NOW in every imap session, which
   resolves every symbol it names whether the session lists or not: the
   listing code's symbols are resolved only by the sessions that list. */

#include "imap-common.h"
#include "module-dir.h"
#include "imap-commands.h"
#include "imap-referral-plugin.h"
#include "referral-plugin.h"

#define IMAP_REFERRAL_CORE_MODULE_NAME "imap_mailbox_referrals_core"

void imap_mailbox_referrals_plugin_preinit(void);

static struct module *imap_referral_core_modules;
static const struct imap_referral_core_vfuncs *imap_referral_core;
static command_func_t *dovecot_cmd_list;

imap_referral_cmd_func_t *
imap_referral_core_register(const struct imap_referral_core_vfuncs *vfuncs)
{
	imap_referral_core = vfuncs;
	return dovecot_cmd_list;
}

void imap_referral_core_unregister(void)
{
	imap_referral_core = NULL;
}

const struct imap_referral_core_vfuncs *imap_referral_core_get(void)
{
	return imap_referral_core;
}

const struct imap_referral_core_vfuncs *imap_referral_core_require(void)
{
	if (imap_referral_core == NULL) {
		referral_plugin_load_module(&imap_referral_core_modules,
					    IMAP_REFERRAL_CORE_MODULE_NAME);
		if (imap_referral_core == NULL) {
			i_fatal("mailbox-referrals: The IMAP core module did "
				"not register itself");
		}
	}
	return imap_referral_core;
}

static bool cmd_rlist_first(struct client_command_context *cmd)
{
	return imap_referral_core_require()->cmd_rlist(cmd);
}

static bool cmd_rlsub_first(struct client_command_context *cmd)
{
	return imap_referral_core_require()->cmd_rlsub(cmd);
}

static bool cmd_list_first(struct client_command_context *cmd)
{
	return imap_referral_core_require()->cmd_list(cmd);
}

/* Nothing to do before the module's init. Dovecot looks this symbol up in
   every session, and a failed lookup costs more (an error message is
   formatted) than calling an empty function. */
void imap_mailbox_referrals_plugin_preinit(void)
{
}

/* imap sorts its command table at the first command_find() after a
   command_register() (with the session's first command at the latest).
   Registering RLIST and RLSUB first and then changing the entries in
   place keeps that to one sort per process, as without the plugin; the
   usual unregister-and-register of LIST would sort the table once more,
   20,000 instructions in every session (bench/README.md). */
void imap_referral_list_commands_init(void)
{
	struct command *list;

	command_register("RLIST", cmd_rlist_first, 0);
	command_register("RLSUB", cmd_rlsub_first, 0);
	list = command_find("LIST");
	i_assert(list != NULL);
	dovecot_cmd_list = list->func;
	/* the same flags as LIST: they say how the command may run in
	   parallel with others, which is the same for all three */
	command_find("RLIST")->flags = list->flags;
	command_find("RLSUB")->flags = list->flags;
	list->func = cmd_list_first;
}

void imap_referral_list_commands_deinit(void)
{
	struct command *list;

	command_unregister("RLSUB");
	command_unregister("RLIST");
	list = command_find("LIST");
	if (list != NULL)
		list->func = dovecot_cmd_list;
	if (imap_referral_core_modules != NULL)
		module_dir_unload(&imap_referral_core_modules);
}

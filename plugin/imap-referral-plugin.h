/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef IMAP_REFERRAL_PLUGIN_H
#define IMAP_REFERRAL_PLUGIN_H

struct module;

extern const char *imap_mailbox_referrals_plugin_dependencies[];
extern const char *imap_mailbox_referrals_plugin_version;
extern const char imap_mailbox_referrals_plugin_binary_dependency[];

void imap_mailbox_referrals_plugin_init(struct module *module);
void imap_mailbox_referrals_plugin_deinit(void);

/* RLIST, RLSUB and LIST (REMOTE): registered by imap-referral-commands.c,
   run by the IMAP core module (imap-referral-list.c), loaded at the first
   of them in a session. */
void imap_referral_list_commands_init(void);
void imap_referral_list_commands_deinit(void);

struct client_command_context;
/* as imap's command_func_t */
typedef bool imap_referral_cmd_func_t(struct client_command_context *cmd);
struct imap_referral_core_vfuncs {
	imap_referral_cmd_func_t *cmd_rlist;
	imap_referral_cmd_func_t *cmd_rlsub;
	/* LIST, with or without REMOTE */
	imap_referral_cmd_func_t *cmd_list;
	/* the command hook's work before a command in a proxied mailbox */
	void (*command_pre)(struct client_command_context *cmd);
};
/* Returns the IMAP core module's entry points, loading it first if needed
   (a failure to load it ends the process). */
const struct imap_referral_core_vfuncs *imap_referral_core_require(void);
/* Before a command in a proxied mailbox: NO [UNAVAILABLE] instead of the
   command if its server is gone, THREAD run by the server
   (imap-referral-proxy.c, in the IMAP core module). */
void imap_referral_proxy_command_pre(struct client_command_context *cmd);
/* Before a command: TRUE if it is passed through to a remote mailbox's
   server, its function replaced (imap-referral-relay.c). */
bool imap_referral_relay_command_pre(struct client_command_context *cmd);
/* Returns the IMAP core module's entry points if it is loaded, else
   NULL. */
const struct imap_referral_core_vfuncs *imap_referral_core_get(void);
/* Called by the IMAP core module's init: returns Dovecot's own LIST. */
imap_referral_cmd_func_t *
imap_referral_core_register(const struct imap_referral_core_vfuncs *vfuncs);
void imap_referral_core_unregister(void);

#endif

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The IMAP side of mailbox referrals: what only makes sense in IMAP (the
   capability here, RLIST/RLSUB/LIST (REMOTE) in imap-referral-list.c).
   The referral logic itself is in the mailbox_referrals mail plugin, which
   this one depends on. */

#include "imap-common.h"
#include "str.h"
#include "imap-commands.h"
#include "imap-commands-util.h"
#include "imap-parser.h"
#include "mail-namespace.h"
#include "referral-mailbox-list.h"
#include "imap-resp-code.h"
#include "imap-referral-plugin.h"
#include "referral-plugin.h"
#include "referral-proxy.h"

#define REFERRAL_CAPABILITY "MAILBOX-REFERRALS"

const char *imap_mailbox_referrals_plugin_version = DOVECOT_ABI_VERSION;
const char *imap_mailbox_referrals_plugin_dependencies[] = {
	"mailbox_referrals", NULL
};
/* The module calls into the imap binary (commands, client capability):
   Dovecot's module loader refuses it, with a clear error, in any other
   process that lists it in mail_plugins (lmtp, doveadm, ...). */
const char imap_mailbox_referrals_plugin_binary_dependency[] = "imap";

static imap_client_created_func_t *referral_next_client_created;

/* Returns TRUE if the space-separated capability list has cap as one of
   its words, compared without case as IMAP atoms are. This runs in every
   session: the words are compared in place, as splitting the list into an
   array cost 13,000 instructions, 0.3% of a LOGIN + LOGOUT session. */
static bool referral_capability_listed(const char *caps, const char *cap)
{
	size_t cap_len = strlen(cap);
	const char *word = caps, *end;

	for (;;) {
		end = strchr(word, ' ');
		if (end == NULL)
			end = word + strlen(word);
		if ((size_t)(end - word) == cap_len &&
		    strncasecmp(word, cap, cap_len) == 0)
			return TRUE;
		if (*end == '\0')
			return FALSE;
		word = end + 1;
	}
}

static void referral_client_created(struct client **clientp)
{
	struct client *client = *clientp;

	/* This runs before imap sends the LOGIN/AUTHENTICATE reply, so the
	   capability is in its [CAPABILITY ...] code too. The administrator
	   may have listed it already in imap_capability (to advertise it
	   before login, see the README): name it once. */
	if (mailbox_referrals_imap_entry_points.user_enabled(client->user) &&
	    !referral_capability_listed(str_c(client->capability_string),
					REFERRAL_CAPABILITY))
		client_add_capability(client, REFERRAL_CAPABILITY);

	if (referral_next_client_created != NULL)
		referral_next_client_created(clientp);
}

/* SELECT, EXAMINE or STATUS (cmd_name) that names a mailbox in a
   namespace where referrals apply, in a session that may pass commands
   through: only then is the core loaded to decide (a SELECT INBOX is
   not). The first argument is read here; imap's command reads it again. */
static bool referral_command_may_pass_through(struct client_command_context *cmd)
{
	const struct mailbox_referrals_imap_entry_points *mail =
		&mailbox_referrals_imap_entry_points;
	const struct imap_arg *args;
	const char *name, *error;
	struct mail_namespace *ns;

	if (cmd->name == NULL ||
	    (strcasecmp(cmd->name, "SELECT") != 0 &&
	     strcasecmp(cmd->name, "EXAMINE") != 0 &&
	     strcasecmp(cmd->name, "STATUS") != 0) ||
	    !mail->user_may_pass_through(cmd->client->user))
		return FALSE;
	if (imap_parser_read_args(cmd->parser, 1, 0, &args) < 1) {
		/* more input is needed (a literal): the core decides */
		return TRUE;
	}
	/* (the string itself, as imap_arg_get_astring() would return it,
	   without importing that function: see above) */
	if (!IMAP_ARG_IS_ASTRING(&args[0]))
		return FALSE;
	name = args[0]._data.str;
	ns = client_find_namespace_full(cmd->client, &name, &error);
	return ns != NULL && mail->list_enabled(ns->list);
}

/* A command in a proxied remote mailbox, or one that may select one:
   the IMAP core module decides whether it runs as imap's own
   (imap-referral-proxy.c, imap-referral-relay.c). This runs before every
   command of every session: one that cannot be proxied does not get
   further than the first tests. */
static void referral_command_pre(struct client_command_context *cmd)
{
	const struct imap_referral_core_vfuncs *core = imap_referral_core_get();

	if (core != NULL) {
		core->command_pre(cmd);
		return;
	}
	if ((cmd->client->mailbox != NULL &&
	     mailbox_referrals_imap_entry_points.proxy_is_remote(
			cmd->client->mailbox)) ||
	    referral_command_may_pass_through(cmd))
		imap_referral_core_require()->command_pre(cmd);
}

static void referral_command_post(struct client_command_context *cmd ATTR_UNUSED)
{
}

void imap_mailbox_referrals_plugin_init(struct module *module ATTR_UNUSED)
{
	command_hook_register(referral_command_pre, referral_command_post);
	referral_next_client_created =
		imap_client_created_hook_set(referral_client_created);
	imap_referral_list_commands_init();
}

void imap_mailbox_referrals_plugin_deinit(void)
{
	imap_referral_list_commands_deinit();
	command_hook_unregister(referral_command_pre, referral_command_post);
	imap_client_created_hook_set(referral_next_client_created);
}

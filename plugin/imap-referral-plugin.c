/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The IMAP side of mailbox referrals: what only makes sense in IMAP (the
   capability here, RLIST/RLSUB/LIST (REMOTE) in imap-referral-list.c).
   The referral logic itself is in the mailbox_referrals mail plugin, which
   this one depends on. */

#include "imap-common.h"
#include "str.h"
#include "imap-commands.h"
#include "imap-resp-code.h"
#include "imap-commands-util.h"
#include "imap-sync.h"
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
	if (mailbox_referrals_user_enabled(client->user) &&
	    !referral_capability_listed(str_c(client->capability_string),
					REFERRAL_CAPABILITY))
		client_add_capability(client, REFERRAL_CAPABILITY);

	if (referral_next_client_created != NULL)
		referral_next_client_created(clientp);
}

/* The commands that work on the selected mailbox. */
static const char *const referral_selected_commands[] = {
	"CHECK", "CLOSE", "COPY", "EXPUNGE", "FETCH", "IDLE", "MOVE", "NOOP",
	"SEARCH", "SORT", "STORE", "THREAD", "UID", NULL
};

static bool cmd_referral_proxy_lost(struct client_command_context *cmd)
{
	const struct imap_arg *args;
	const char *error;

	/* the arguments (literals too) are read, so the next command
	   starts where it should */
	if (!client_read_args(cmd, 0, 0, &args))
		return FALSE;
	if (!mailbox_referrals_proxy_lost(cmd->client->mailbox, &error))
		error = "Lost the connection to the server of this mailbox";
	client_send_tagline(cmd, t_strdup_printf(
		"NO ["IMAP_RESP_CODE_UNAVAILABLE"] %s", error));
	return TRUE;
}

/* THREAD (and UID THREAD) in a remote mailbox: run by its server (see
   mailbox_referrals_proxy_thread()). */
static bool cmd_referral_proxy_thread(struct client_command_context *cmd)
{
	struct mailbox *box = cmd->client->mailbox;
	const struct imap_arg *args;
	string_t *threads;
	int ret;

	if (!client_read_args(cmd, 0, 0, &args))
		return FALSE;
	threads = t_str_new(256);
	ret = mailbox_referrals_proxy_thread(box, args, cmd->uid, threads);
	if (ret < 0) {
		client_send_box_error(cmd, box);
		return TRUE;
	}
	i_assert(ret > 0);
	client_send_line(cmd->client, str_len(threads) == 0 ? "* THREAD" :
			 t_strconcat("* THREAD ", str_c(threads), NULL));
	return cmd_sync(cmd, MAILBOX_SYNC_FLAG_FAST |
			(cmd->uid ? 0 : MAILBOX_SYNC_FLAG_NO_EXPUNGES), 0,
			"OK Thread completed.");
}

/* A proxied mailbox whose server went away: its commands get NO
   [UNAVAILABLE] instead of running. Run, FETCH would end the session
   (imap answers a failed FETCH with BYE) and the others would report
   failures as SERVERBUG. The session and its other mailboxes go on. */
static void referral_command_pre(struct client_command_context *cmd)
{
	const struct command *command;
	const char *error, *name;

	if (cmd->client->mailbox == NULL || cmd->name == NULL ||
	    !mailbox_referrals_proxy_is_remote(cmd->client->mailbox))
		return;
	/* "UID FETCH" is FETCH's */
	name = cmd->uid && strncasecmp(cmd->name, "UID ", 4) == 0 ?
		cmd->name + 4 : cmd->name;
	if (!str_array_icase_find(referral_selected_commands, name))
		return;
	/* only before the command starts: later runs are its own */
	command = command_find(cmd->name);
	if (command == NULL || cmd->func != command->func)
		return;
	if (mailbox_referrals_proxy_lost(cmd->client->mailbox, &error))
		cmd->func = cmd_referral_proxy_lost;
	else if (strcasecmp(name, "THREAD") == 0)
		cmd->func = cmd_referral_proxy_thread;
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

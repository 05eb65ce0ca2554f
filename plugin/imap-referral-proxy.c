/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* Commands on a proxied remote mailbox, run in place of imap's own when
   the IMAP plugin's command hook (imap-referral-plugin.c) sees one. They
   are in the IMAP core module, loaded when the hook first sees a command
   in such a mailbox: a session that never has a proxied mailbox selected
   never resolves their symbols. */

#include "imap-common.h"
#include "str.h"
#include "imap-commands.h"
#include "imap-commands-util.h"
#include "imap-resp-code.h"
#include "imap-sync.h"
#include "imap-referral-plugin.h"
#include "referral-plugin.h"

/* The commands that work on the selected mailbox (their UID forms are
   matched by the name after "UID "). */
static const char *const referral_selected_commands[] = {
	"CHECK", "CLOSE", "COPY", "EXPUNGE", "FETCH", "IDLE", "MOVE", "NOOP",
	"SEARCH", "SORT", "STORE", "THREAD", NULL
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
   failures as SERVERBUG. The session and its other mailboxes go on.
   THREAD runs on the remote server. */
void imap_referral_proxy_command_pre(struct client_command_context *cmd)
{
	const struct command *command;
	const char *error, *name;

	if (cmd->name == NULL)
		return;
	/* only before the command starts (imap's function, no arguments
	   read): later runs are its own */
	command = command_find(cmd->name);
	if (command == NULL || cmd->func != command->func || cmd->args != NULL)
		return;
	/* passed through to the server (imap-referral-relay.c) */
	if (imap_referral_relay_command_pre(cmd))
		return;
	if (cmd->client->mailbox == NULL ||
	    !mailbox_referrals_proxy_is_remote(cmd->client->mailbox))
		return;
	/* "UID FETCH" is FETCH's */
	name = cmd->uid && strncasecmp(cmd->name, "UID ", 4) == 0 ?
		cmd->name + 4 : cmd->name;
	if (!str_array_icase_find(referral_selected_commands, name))
		return;
	if (mailbox_referrals_proxy_lost(cmd->client->mailbox, &error))
		cmd->func = cmd_referral_proxy_lost;
	else if (strcasecmp(name, "THREAD") == 0)
		cmd->func = cmd_referral_proxy_thread;
}

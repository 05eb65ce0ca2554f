/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* Commands on a proxied remote mailbox, run in place of imap's own by the
   IMAP plugin's command hook (imap-referral-plugin.c). They are in the
   IMAP core module, loaded when the hook first needs one: a session that
   never has a proxied mailbox selected never resolves their symbols. */

#include "imap-common.h"
#include "imap-commands.h"
#include "imap-resp-code.h"
#include "imap-referral-plugin.h"
#include "referral-plugin.h"

bool imap_referral_cmd_proxy_lost(struct client_command_context *cmd)
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

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

/* A command in a proxied remote mailbox: the IMAP core module decides
   whether it runs as imap's own (imap-referral-proxy.c). This runs before
   every command of every session: a session without a proxied mailbox
   selected does not get further than the first test. */
static void referral_command_pre(struct client_command_context *cmd)
{
	if (cmd->client->mailbox == NULL ||
	    !mailbox_referrals_proxy_is_remote(cmd->client->mailbox))
		return;
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

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The IMAP side of mailbox referrals: what only makes sense in IMAP (the
   capability here, RLIST/RLSUB/LIST (REMOTE) in imap-referral-list.c).
   The referral logic itself is in the mailbox_referrals mail plugin, which
   this one depends on. */

#include "imap-common.h"
#include "referral-plugin.h"
#include "imap-referral-plugin.h"

#define REFERRAL_CAPABILITY "MAILBOX-REFERRALS"

const char *imap_mailbox_referrals_plugin_version = DOVECOT_ABI_VERSION;
const char *imap_mailbox_referrals_plugin_dependencies[] = {
	"mailbox_referrals", NULL
};

static imap_client_created_func_t *next_hook_client_created;

static void imap_referral_client_created(struct client **clientp)
{
	struct client *client = *clientp;

	/* Runs before imap sends the LOGIN/AUTHENTICATE reply, so the
	   capability is in its [CAPABILITY ...] code too. */
	if (mailbox_referrals_user_enabled(client->user))
		client_add_capability(client, REFERRAL_CAPABILITY);

	if (next_hook_client_created != NULL)
		next_hook_client_created(clientp);
}

void imap_mailbox_referrals_plugin_init(struct module *module ATTR_UNUSED)
{
	next_hook_client_created =
		imap_client_created_hook_set(imap_referral_client_created);
	imap_referral_list_commands_init();
}

void imap_mailbox_referrals_plugin_deinit(void)
{
	imap_referral_list_commands_deinit();
	imap_client_created_hook_set(next_hook_client_created);
}

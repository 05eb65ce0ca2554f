/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The IMAP side of mailbox referrals: what only makes sense in IMAP (the
   capability here, RLIST/RLSUB/LIST (REMOTE) in imap-referral-list.c).
   The referral logic itself is in the mailbox_referrals mail plugin, which
   this one depends on. */

#include "imap-common.h"
#include "str.h"
#include "imap-referral-plugin.h"
#include "referral-plugin.h"

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
   its words, compared without case as IMAP atoms are. */
static bool referral_capability_listed(const char *caps, const char *cap)
{
	const char *const *words = t_strsplit_spaces(caps, " ");

	return str_array_icase_find(words, cap);
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

void imap_mailbox_referrals_plugin_init(struct module *module ATTR_UNUSED)
{
	referral_next_client_created =
		imap_client_created_hook_set(referral_client_created);
	imap_referral_list_commands_init();
}

void imap_mailbox_referrals_plugin_deinit(void)
{
	imap_referral_list_commands_deinit();
	imap_client_created_hook_set(referral_next_client_created);
}

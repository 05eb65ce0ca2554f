/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "referral-directory.h"
#include "referral-plugin.h"
#include "referral-proxy.h"

const char *mailbox_referrals_plugin_version = DOVECOT_ABI_VERSION;

static struct mail_storage_hooks referral_mail_storage_hooks = {
	.mail_user_created = referral_mail_user_created,
	.mail_storage_created = referral_proxy_storage_created,
	.mailbox_list_created = referral_mailbox_list_created,
	.mailbox_allocated = referral_mailbox_allocated,
	.mail_allocated = referral_proxy_mail_allocated,
};

void mailbox_referrals_plugin_init(struct module *module)
{
	mail_storage_hooks_add(module, &referral_mail_storage_hooks);
}

void mailbox_referrals_plugin_deinit(void)
{
	mail_storage_hooks_remove(&referral_mail_storage_hooks);
	referral_directory_backends_deinit();
}

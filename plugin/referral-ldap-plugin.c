/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The entry point of the LDAP backend's module: the mail plugin loads it
   (referral_directory_init()) when mailbox_referrals_directory = ldap, and
   it adds the backend to the plugin's registry; it need not be listed in
   mail_plugins. It uses the mail plugin's symbols, so it must load after
   it: hence its number, 22. */

#include "lib.h"
#include "module-dir.h"
#include "referral-directory-private.h"

const char *mailbox_referrals_ldap_plugin_version = DOVECOT_ABI_VERSION;

void mailbox_referrals_ldap_plugin_init(struct module *module);
void mailbox_referrals_ldap_plugin_deinit(void);

void mailbox_referrals_ldap_plugin_init(struct module *module ATTR_UNUSED)
{
	referral_directory_backend_register(&referral_directory_backend_ldap);
}

void mailbox_referrals_ldap_plugin_deinit(void)
{
	referral_directory_backend_unregister(&referral_directory_backend_ldap);
}

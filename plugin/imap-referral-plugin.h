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

/* RLIST, RLSUB and LIST (REMOTE): imap-referral-list.c */
void imap_referral_list_commands_init(void);
void imap_referral_list_commands_deinit(void);

#endif

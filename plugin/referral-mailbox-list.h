/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_MAILBOX_LIST_H
#define REFERRAL_MAILBOX_LIST_H

#include "referral-listing.h"

struct mail_user;
struct mailbox_list;
struct mailbox_list_vfuncs;

/* Flag of a listed mailbox that lives on another server (only listings in
   remote mode return such mailboxes). A bit lib-storage leaves unused. */
#define MAILBOX_REFERRAL_REMOTE 0x01000000

/* Iteration flag: the listing includes remote mailboxes (RLIST, RLSUB,
   LIST (REMOTE)). A bit lib-storage leaves unused; every namespace's
   iterator gets it from mailbox_list_iter_init_namespaces(). */
#define MAILBOX_LIST_ITER_REFERRAL_REMOTE 0x01000000

/* Returns how many listings with MAILBOX_LIST_ITER_REFERRAL_REMOTE were
   incomplete in this session, and the last one's error (text for the
   client; NULL if none failed). A command compares the count before and
   after its own listing: several may run at once. */
unsigned int mailbox_referrals_list_failures(struct mail_user *user,
					     const char **error_r);

/* Returns TRUE if referrals apply to the list: its iterations with
   MAILBOX_LIST_ITER_REFERRAL_REMOTE add the directory's mailboxes. */
bool mailbox_referrals_list_enabled(struct mailbox_list *list);

/* Install the list iteration overrides on a list where referrals apply. */
void referral_mailbox_list_init_iter(struct mailbox_list_vfuncs *v);

#endif

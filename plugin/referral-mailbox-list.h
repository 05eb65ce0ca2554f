/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_MAILBOX_LIST_H
#define REFERRAL_MAILBOX_LIST_H

struct mail_user;
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

struct mail_namespace;
struct referral_user;

/* Returns TRUE if name belongs to namespace ns: ns has the longest prefix
   of it among the user's namespaces (the namespace root, "Public" for
   "Public/", counts). Unlike mail_namespace_find() this never creates
   namespaces (shared ones would be, for names from the directory). */
bool referral_name_in_namespace(struct mail_namespace *ns, const char *name);

/* Get the namespace's directory entries (validated, indexed), from the
   cache or the directory. remote_mode: ask the directory even while it is
   known to be failing. Returns the record, or NULL with error_r. */
const struct referral_cache_record *
referral_list_get_entries(struct referral_user *ruser,
			  struct mail_namespace *ns, bool remote_mode,
			  const char **error_r);

/* Returns TRUE if referrals apply to the list: its iterations with
   MAILBOX_LIST_ITER_REFERRAL_REMOTE add the directory's mailboxes. */
bool mailbox_referrals_list_enabled(struct mailbox_list *list);

/* Install the list iteration overrides on a list where referrals apply. */
void referral_mailbox_list_init_iter(struct mailbox_list_vfuncs *v);

#endif

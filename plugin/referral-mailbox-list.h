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

/* Returns why the last listing with MAILBOX_LIST_ITER_REFERRAL_REMOTE was
   incomplete (text for the client, in the data stack), or NULL if it was
   complete, and forgets it. */
const char *mailbox_referrals_list_take_error(struct mail_user *user);

/* Install the list iteration overrides on a list where referrals apply. */
void referral_mailbox_list_init_iter(struct mailbox_list_vfuncs *v);

#endif

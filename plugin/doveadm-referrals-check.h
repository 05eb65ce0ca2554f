/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef DOVEADM_REFERRALS_CHECK_H
#define DOVEADM_REFERRALS_CHECK_H

#include "referral-index.h"

struct referral_directory_entry;

/* What `doveadm mailbox-referrals check` finds wrong with the directory
   entries of one namespace, seen from one server. Pure logic: the command
   feeds it the namespace's raw entries and the mailboxes that exist here,
   the unit tests feed it whatever they like. */

enum referral_check_kind {
	/* a value that sessions skip with a warning (server, remote name,
	   scope), or an imapReferralMailbox that is not usable as a name */
	REFERRAL_CHECK_INVALID_VALUE,
	/* more imapReferralServer values than sessions use */
	REFERRAL_CHECK_TOO_MANY_SERVERS,
	/* another entry has the same name and scope; sessions use the one
	   with the smaller DN */
	REFERRAL_CHECK_DUPLICATE,
	/* no valid imapReferralServer: clients get UNAVAILABLE */
	REFERRAL_CHECK_NO_SERVER,
	/* a mailbox that exists here, but an entry places it elsewhere:
	   clients are referred away from it and LIST hides it */
	REFERRAL_CHECK_LOCAL_ELSEWHERE,
	/* an entry names this server, but its mailbox doesn't exist here
	   under its name on its servers (imapReferralRemoteName, if set) */
	REFERRAL_CHECK_MISSING_HERE,
};

struct referral_check_problem {
	enum referral_check_kind kind;
	/* The mailbox concerned, and the DN of the entry concerned, as the
	   directory (or the local listing) has them: the caller must escape
	   them for output. */
	const char *mailbox;
	const char *dn;
	/* What is wrong, with directory data quoted and escaped. */
	const char *detail;
};

/* Start a check of the entries of the namespace with prefix ns_prefix and
   hierarchy separator sep. is_local tells whether an entry names this
   server. Everything is allocated from pool. */
struct referral_check *
referral_check_init(pool_t pool, char sep, const char *ns_prefix,
		    referral_index_is_local_t *is_local, void *context);

/* Validate a raw directory entry of the namespace. */
void referral_check_add_entry(struct referral_check *check,
			      const struct referral_directory_entry *raw);
/* Note a mailbox that exists on this server. in_namespace: it belongs to
   the namespace checked (an entry's remote name may be in another one).
   selectable is FALSE for one that exists only as a hierarchy parent
   (\Noselect). */
void referral_check_add_local(struct referral_check *check,
			      const char *vname, bool in_namespace,
			      bool selectable);

/* Returns the problems found, sorted by mailbox, kind and DN. */
const struct referral_check_problem *
referral_check_finish(struct referral_check *check, unsigned int *count_r);

/* Returns the kind's name as printed by doveadm ("invalid-value", ...). */
const char *referral_check_kind_name(enum referral_check_kind kind);

#endif

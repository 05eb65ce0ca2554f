/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_ENTRY_H
#define REFERRAL_ENTRY_H

#include "referral-server.h"

/* One directory entry as the directory backend returns it: raw values,
   not yet validated. */
struct referral_directory_entry {
	const char *dn;
	const char *mailbox;		/* imapReferralMailbox */
	const char *const *servers;	/* imapReferralServer values */
	const char *remote_name;	/* imapReferralRemoteName or NULL */
	const char *scope;		/* imapReferralScope or NULL */
};
ARRAY_DEFINE_TYPE(referral_directory_entry, struct referral_directory_entry);

/* Most servers one entry may list: replies and RENAME's pairs (old
   servers x new servers) stay bounded whatever the directory holds. */
#define REFERRAL_MAX_SERVERS 16

/* A validated entry. */
struct referral_entry {
	const char *dn;
	const char *mailbox;
	/* Name on the remote servers, or NULL when it is the same. */
	const char *remote_name;
	bool subtree;
	/* The valid imapReferralServer values, in the directory's order.
	   Empty when the entry is unusable (see error). */
	ARRAY_TYPE(referral_server) servers;
	/* Why the entry cannot be used for a referral, or NULL. An unusable
	   entry still hides what it covers: the client gets UNAVAILABLE,
	   never a broken referral and never the local mailbox. */
	const char *error;
};
ARRAY_DEFINE_TYPE(referral_entry, struct referral_entry);

/* Returns TRUE if name is safe to put into a URL and a reply: non-empty,
   valid UTF-8 and free of control characters (CR, LF, NUL, ...). */
bool referral_mailbox_name_is_safe(const char *name);

/* Validate a directory entry into entry_r, allocated from pool. Values that
   cannot be used are skipped; a line describing each one (mentioning the
   attribute and the entry's DN, with directory data escaped) is added to
   warnings, for the caller to log. */
void referral_entry_parse(pool_t pool,
			  const struct referral_directory_entry *input,
			  struct referral_entry *entry_r,
			  ARRAY_TYPE(const_string) *warnings);

/* What referral_entry_parse() warns about, for callers that report
   problems one by one (doveadm mailbox-referrals check). */
enum referral_entry_warning_kind {
	/* a value that was skipped, or that makes the entry unusable */
	REFERRAL_ENTRY_WARNING_INVALID_VALUE,
	/* more than REFERRAL_MAX_SERVERS imapReferralServer values */
	REFERRAL_ENTRY_WARNING_TOO_MANY_SERVERS,
	/* no valid imapReferralServer value is left */
	REFERRAL_ENTRY_WARNING_NO_SERVER,
};

struct referral_entry_warning {
	enum referral_entry_warning_kind kind;
	/* What is wrong, naming the attribute, with directory data quoted
	   and escaped; it doesn't name the entry. Data stack. */
	const char *text;
};
ARRAY_DEFINE_TYPE(referral_entry_warning, struct referral_entry_warning);

/* As referral_entry_parse(), with each warning as a value. */
void referral_entry_validate(pool_t pool,
			     const struct referral_directory_entry *input,
			     struct referral_entry *entry_r,
			     ARRAY_TYPE(referral_entry_warning) *warnings);

#endif

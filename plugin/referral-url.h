/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_URL_H
#define REFERRAL_URL_H

#include "referral-server.h"

struct referral_target;

/* Returns the IMAP URL (RFC 5092) of mailbox (UTF-8) on server:
   imap://USER;AUTH=*@HOST[:PORT]/MAILBOX, built with Dovecot's lib-imap so
   that the user name and mailbox are percent-encoded. With username NULL
   (an anonymous session) the URL names no user. Port 143 is left out.
   Allocated from the data stack. */
const char *referral_url_create(const char *username,
				const struct referral_host *server,
				const char *mailbox);

/* Returns the reply for a remote mailbox, "[REFERRAL url ...] text", with
   one URL per server in order and the servers named in text. Data stack. */
const char *referral_target_reply(const char *username,
				  const struct referral_target *target);

/* One side of a RENAME: a mailbox name as its servers know it, and the
   servers holding it, in order (this server alone when it is local). */
struct referral_rename_side {
	const char *name;
	ARRAY_TYPE(referral_server) servers;
};

/* Returns the reply for a RENAME whose old or new name is remote (RFC 2193
   section 4.3): "[REFERRAL old-url new-url ...] text", a pair of URLs for
   each combination of servers. Pairs on a single server, where the client
   can re-issue the RENAME, come first; then by preference of the old
   name's server and of the new name's. Data stack. */
const char *
referral_rename_reply(const char *username,
		      const struct referral_rename_side *old_side,
		      const struct referral_rename_side *new_side);

#endif

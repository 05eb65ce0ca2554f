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

#endif

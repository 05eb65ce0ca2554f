/* Copyright (c) 2026 dovecot-mailbox-referrals authors, see the included COPYING file */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "imap-url.h"
#include "referral-lookup.h"
#include "referral-url.h"

const char *referral_url_create(const char *username,
				const struct referral_host *server,
				const char *mailbox)
{
	struct imap_url url;

	i_zero(&url);
	url.host = server->host;
	/* imap_url_create() prefers host.name; keep it that way so IPv6
	   literals stay in their bracketed form */
	url.port = server->port == REFERRAL_IMAP_DEFAULT_PORT ? 0 :
		server->port;
	if (username != NULL) {
		url.userid = username;
		/* RFC 2193 section 3: ";AUTH=*" keeps clients from falling
		   back to anonymous access */
		url.auth_type = "*";
	}
	url.mailbox = mailbox;
	return imap_url_create(&url);
}

const char *referral_target_reply(const char *username,
				  const struct referral_target *target)
{
	const struct referral_server *server;
	string_t *reply = t_str_new(256), *text = t_str_new(128);

	str_append(reply, "[REFERRAL");
	str_append(text, "Remote mailbox on ");
	array_foreach(&target->servers, server) {
		str_append_c(reply, ' ');
		str_append(reply, referral_url_create(username, &server->addr,
						      target->remote_name));
		if (server != array_front(&target->servers))
			str_append(text, ", ");
		str_append(text, referral_host_to_string(&server->addr));
	}
	str_append(reply, "] ");
	str_append_str(reply, text);
	return str_c(reply);
}

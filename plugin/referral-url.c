/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include <ctype.h>
#include "array.h"
#include "str.h"
#include "imap-url.h"
#include "referral-lookup.h"
#include "referral-url.h"

/* lib-imap writes percent-encodings in lower case; RFC 3986 section 2.1
   asks URI producers to use upper case. Every '%' in a URL that lib-imap
   built starts an escape, so normalizing is a matter of two characters. */
static const char *referral_url_uppercase_escapes(const char *url)
{
	char *p, *str = t_strdup_noconst(url);

	for (p = strchr(str, '%'); p != NULL; p = strchr(p + 1, '%')) {
		if (p[1] != '\0' && p[2] != '\0') {
			p[1] = i_toupper(p[1]);
			p[2] = i_toupper(p[2]);
		}
	}
	return str;
}

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
	return referral_url_uppercase_escapes(imap_url_create(&url));
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

struct referral_rename_pair {
	const struct referral_server *old_server, *new_server;
	/* creation order: keeps the sides' own order among equal pairs */
	unsigned int idx;
	bool same_server;
};

static int
referral_rename_pair_cmp(const struct referral_rename_pair *p1,
			 const struct referral_rename_pair *p2)
{
	if (p1->same_server != p2->same_server)
		return p1->same_server ? -1 : 1;
	if (p1->old_server->preference != p2->old_server->preference)
		return p1->old_server->preference <
			p2->old_server->preference ? -1 : 1;
	if (p1->new_server->preference != p2->new_server->preference)
		return p1->new_server->preference <
			p2->new_server->preference ? -1 : 1;
	return p1->idx < p2->idx ? -1 : (p1->idx > p2->idx ? 1 : 0);
}

const char *
referral_rename_reply(const char *username,
		      const struct referral_rename_side *old_side,
		      const struct referral_rename_side *new_side)
{
	ARRAY(struct referral_rename_pair) pairs;
	struct referral_rename_pair *new_pair;
	const struct referral_rename_pair *pair;
	const struct referral_server *old_server, *new_server;
	string_t *reply = t_str_new(256);

	t_array_init(&pairs, array_count(&old_side->servers) *
		     array_count(&new_side->servers));
	array_foreach(&old_side->servers, old_server) {
		array_foreach(&new_side->servers, new_server) {
			new_pair = array_append_space(&pairs);
			new_pair->idx = array_count(&pairs) - 1;
			new_pair->old_server = old_server;
			new_pair->new_server = new_server;
			new_pair->same_server = referral_host_equals(
				&old_server->addr, &new_server->addr);
		}
	}
	array_sort(&pairs, referral_rename_pair_cmp);

	str_append(reply, "[REFERRAL");
	array_foreach(&pairs, pair) {
		str_printfa(reply, " %s %s",
			referral_url_create(username, &pair->old_server->addr,
					    old_side->name),
			referral_url_create(username, &pair->new_server->addr,
					    new_side->name));
	}
	str_append(reply, "] ");
	pair = array_front(&pairs);
	if (pair->same_server) {
		str_printfa(reply, "Rename on remote server %s",
			    referral_host_to_string(&pair->old_server->addr));
	} else {
		str_printfa(reply, "Cannot rename across servers (%s to %s)",
			    referral_host_to_string(&pair->old_server->addr),
			    referral_host_to_string(&pair->new_server->addr));
	}
	return str_c(reply);
}

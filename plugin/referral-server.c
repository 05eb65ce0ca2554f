/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strnum.h"
#include "hash.h"
#include "referral-server.h"

int referral_host_parse(pool_t pool, const char *str,
			struct referral_host *host_r, const char **error_r)
{
	struct uri_parser parser;
	struct uri_authority auth;

	i_zero(host_r);
	if (*str == '\0') {
		*error_r = "empty host";
		return -1;
	}
	/* Dovecot's URI parser checks the host as an Internet host name or
	   IP literal; anything else (spaces, brackets, CR/LF, "user@")
	   fails here or in the checks below. */
	uri_parser_init(&parser, pool, str);
	if (uri_parse_host_authority(&parser, &auth) <= 0) {
		*error_r = parser.error != NULL ? parser.error :
			"invalid host";
		return -1;
	}
	if (parser.cur != parser.end) {
		*error_r = "trailing characters after host[:port]";
		return -1;
	}
	if (auth.enc_userinfo != NULL) {
		*error_r = "user information is not allowed";
		return -1;
	}
	if (auth.host.name == NULL || auth.host.name[0] == '\0') {
		*error_r = "empty host";
		return -1;
	}
	if (auth.port == 0 && strchr(str, ':') != NULL &&
	    str[strlen(str)-1] != ']') {
		/* "host:" or "host:0" */
		*error_r = "invalid port";
		return -1;
	}
	host_r->host.name = p_strdup(pool, auth.host.name);
	host_r->host.ip = auth.host.ip;
	host_r->port = auth.port != 0 ? auth.port :
		REFERRAL_IMAP_DEFAULT_PORT;
	return 0;
}

int referral_server_parse(pool_t pool, const char *value,
			  struct referral_server *server_r,
			  const char **error_r)
{
	const char *p, *pref_str;
	uintmax_t pref;

	i_zero(server_r);
	p = strchr(value, ' ');
	if (p == NULL) {
		*error_r = "expected \"PREFERENCE HOST[:PORT]\"";
		return -1;
	}
	pref_str = t_strdup_until(value, p);
	if (str_to_uintmax(pref_str, &pref) < 0 || pref > 65535) {
		*error_r = "preference is not a number from 0 to 65535";
		return -1;
	}
	if (referral_host_parse(pool, p + 1, &server_r->addr, error_r) < 0)
		return -1;
	server_r->preference = pref;
	return 0;
}

bool referral_host_equals(const struct referral_host *a,
			  const struct referral_host *b)
{
	if (a->port != b->port)
		return FALSE;
	if (a->host.ip.family != 0 || b->host.ip.family != 0)
		return net_ip_compare(&a->host.ip, &b->host.ip);
	return strcasecmp(a->host.name, b->host.name) == 0;
}

bool referral_host_is_ip_port(const struct referral_host *host,
			      const struct ip_addr *ip, in_port_t port)
{
	return host->host.ip.family != 0 && host->port == port &&
		net_ip_compare(&host->host.ip, ip);
}

const char *referral_host_to_string(const struct referral_host *host)
{
	string_t *str = t_str_new(64);

	uri_append_host(str, &host->host);
	if (host->port != REFERRAL_IMAP_DEFAULT_PORT)
		uri_append_port(str, host->port);
	return str_c(str);
}

static unsigned int
referral_server_shuffle_key(const struct referral_server *server,
			    unsigned int seed)
{
	unsigned int key;

	T_BEGIN {
		key = str_hash(t_strdup_printf("%u/%s",
			seed, referral_host_to_string(&server->addr)));
	} T_END;
	return key;
}

static int referral_server_cmp(const struct referral_server *s1,
			       const struct referral_server *s2)
{
	if (s1->preference != s2->preference)
		return s1->preference < s2->preference ? -1 : 1;
	if (s1->tie_order != s2->tie_order)
		return s1->tie_order < s2->tie_order ? -1 : 1;
	return 0;
}

void referral_servers_sort(ARRAY_TYPE(referral_server) *servers,
			   unsigned int shuffle_seed)
{
	struct referral_server *server;
	unsigned int idx;

	array_foreach_modifiable(servers, server) {
		idx = array_foreach_idx(servers, server);
		server->tie_order = shuffle_seed == 0 ? idx :
			referral_server_shuffle_key(server, shuffle_seed);
	}
	array_sort(servers, referral_server_cmp);
}

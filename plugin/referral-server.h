/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_SERVER_H
#define REFERRAL_SERVER_H

#include "net.h"
#include "uri-util.h"

/* IMAP's well-known port: left out of URLs and of human text. */
#define REFERRAL_IMAP_DEFAULT_PORT 143

/* A server address, "HOST[:PORT]", as written in imapReferralServer values
   and in the mailbox_referrals_self setting. */
struct referral_host {
	/* host.name is always set: a DNS name, an IPv4 literal or an IPv6
	   literal in brackets. host.ip is set too for IP literals. */
	struct uri_host host;
	in_port_t port;
};

/* One imapReferralServer value: "PREFERENCE HOST[:PORT]". */
struct referral_server {
	unsigned int preference;
	struct referral_host addr;
	/* order among servers of equal preference, set by
	   referral_servers_sort() */
	unsigned int tie_order;
};
ARRAY_DEFINE_TYPE(referral_server, struct referral_server);

/* Parse "HOST[:PORT]"; PORT defaults to 143. HOST must be a DNS host name
   (RFC 1034/1123) or an IP literal, so the result is safe to put into a URL
   and into human text. Returns 0, or -1 with error_r set. Strings are
   allocated from pool. */
int referral_host_parse(pool_t pool, const char *str,
			struct referral_host *host_r, const char **error_r);
/* Parse "PREFERENCE HOST[:PORT]" (PREFERENCE 0..65535, one space).
   Returns 0, or -1 with error_r set. */
int referral_server_parse(pool_t pool, const char *value,
			  struct referral_server *server_r,
			  const char **error_r);

/* Returns TRUE if both name the same server: host names compared without
   case, IP literals by address, and equal ports. */
bool referral_host_equals(const struct referral_host *a,
			  const struct referral_host *b);
/* Returns TRUE if host is the IP address ip with port port. */
bool referral_host_is_ip_port(const struct referral_host *host,
			      const struct ip_addr *ip, in_port_t port);

/* Returns "HOST" or "HOST:PORT" (port shown only when it is not 143), as in
   a URL authority. Allocated from the data stack. */
const char *referral_host_to_string(const struct referral_host *host);

/* Sort servers by preference, lowest first. Servers of equal preference
   are ordered by a hash of shuffle_seed and their address, so that each
   session (each seed) gets its own stable order and load spreads as with MX
   records; with shuffle_seed 0 they keep the directory's order. */
void referral_servers_sort(ARRAY_TYPE(referral_server) *servers,
			   unsigned int shuffle_seed);

#endif

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_DIRECTORY_SERVICE_H
#define REFERRAL_DIRECTORY_SERVICE_H

/* Internals of the service backend, shared with its unit tests. */

struct referral_directory;
struct referral_directory_params;

#define REFERRAL_SERVICE_NAME "mailbox-referrals-directory"
#define REFERRAL_SERVICE_VERSION_MAJOR 1
#define REFERRAL_SERVICE_VERSION_MINOR 0
/* Longest line either side sends, LF included. */
#define REFERRAL_SERVICE_MAX_LINE_LENGTH 65536
/* Most entries one reply may bring into the process: the replica may hold
   far more (mailbox_referrals_directory_max_entries), but an imap process
   keeps a listing in memory and has Dovecot's 256 MB default vsz_limit;
   the same cap as the ldap backend's listings. */
#define REFERRAL_SERVICE_MAX_REPLY_ENTRIES 50000

/* Parse the service backend's settings: the socket's path (absolute) and
   the timeout of a request. Returns 0, or -1 with error_r. */
int referral_directory_service_settings(
	const struct referral_directory_params *params,
	const char **socket_path_r, unsigned int *timeout_msecs_r,
	const char **error_r);

/* Use fd (connected, e.g. one end of a socketpair) as the connection to
   the service instead of connecting to the socket: the handshake is sent
   and expected on it as on a new connection. The directory owns fd. */
void referral_directory_service_attach_fd(struct referral_directory *dir,
					  int fd);
/* Lower REFERRAL_SERVICE_MAX_REPLY_ENTRIES for this directory (tests). */
void referral_directory_service_set_max_entries(struct referral_directory *dir,
						unsigned int max_entries);

#endif

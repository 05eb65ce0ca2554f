/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef DIRECTORY_SERVICE_H
#define DIRECTORY_SERVICE_H

#include "referral-settings.h"
#include "referral-directory-ldap-settings.h"

#define DIRECTORY_SERVICE_NAME "mailbox-referrals-directory"

#define DIRECTORY_DEFAULT_POLL_INTERVAL_SECS 60
#define DIRECTORY_DEFAULT_MAX_ENTRIES 200000

/* Sent at the end of each load (a full read, or the refresh phase of RFC
   4533) with the fields mode, entries and error (on failure). */
#define DIRECTORY_EVENT_SYNC_FINISHED "mailbox_referrals_service_sync_finished"
/* Sent for each client request, with the fields command and entries. */
#define DIRECTORY_EVENT_REQUEST_FINISHED \
	"mailbox_referrals_service_request_finished"

struct replica;

struct directory_service_settings {
	/* NULL when the plugin settings are missing or invalid (error) */
	const struct referral_settings *referral;
	/* the mailbox_referrals_ldap_* settings, parsed by the LDAP
	   backend's parser so that both read them alike; NULL with
	   referral */
	const struct referral_ldap_settings *ldap;
	char *error;
	unsigned int poll_interval_secs;
	unsigned int max_entries;
};

struct directory_service {
	struct directory_service_settings set;
	struct event *event;

	/* The last complete copy, or NULL (requests FAIL). Replaced as a
	   whole by a new complete copy; RFC 4533 changes edit it in place. */
	struct replica *replica;
	/* following with RFC 4533 refreshAndPersist (else polling) */
	bool persist;
	/* connected and the replica is current */
	bool synced;
	uint64_t generation;
	/* UNIX time in milliseconds of the last change */
	uint64_t changed_msecs;
	/* why the last load was cut short at max_entries, or NULL */
	char *over_limit_problem;
};

extern struct directory_service *directory_service;

/* The replica changed (or was replaced): new generation. */
void directory_service_changed(void);
/* Install a complete copy, dropping the previous one. */
void directory_service_replace(struct replica **replica);

void directory_loader_init(void);
void directory_loader_deinit(void);

void directory_clients_init(void);
void directory_clients_deinit(void);
void directory_client_create(int fd);

#endif

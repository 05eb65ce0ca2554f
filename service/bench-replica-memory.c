/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* Memory per entry of the service's replica (bench/replica-memory):
   fills the replica with synthetic entries of realistic size through the
   same code the service uses, and reports the heap growth (malloc's own
   accounting) and the resident size growth per entry. */

#include "lib.h"
#include "str.h"
#include "directory-replica.h"

#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

static size_t rss_bytes(void)
{
	unsigned long size, resident;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL || fscanf(f, "%lu %lu", &size, &resident) != 2)
		i_fatal("reading /proc/self/statm failed");
	fclose(f);
	return resident * (size_t)sysconf(_SC_PAGESIZE);
}

int main(int argc, char *argv[])
{
	unsigned int i, count = argc > 1 ? (unsigned int)atoi(argv[1]) : 1000000;
	struct directory_value mailbox, servers[2];
	struct directory_raw_entry raw;
	struct replica *replica;
	struct event *event;
	size_t rss_before, heap_before, rss_after, heap_after;

	lib_init();
	event = event_create(NULL);
	rss_before = rss_bytes();
	heap_before = mallinfo2().uordblks;
	replica = replica_init();
	for (i = 0; i < count; i++) T_BEGIN {
		const char *name = t_strdup_printf("Public/Dept-%06u/Team-%u",
						   i / 10, i % 100);
		/* RFC 4533 keys: entryUUID as 32 hex digits */
		const char *key = t_strdup_printf(
			"%08x5c3e11ef8f2a%016x", i, i * 2654435761U);

		mailbox.data = name;
		mailbox.size = strlen(name);
		servers[0].data = "10 imap1.example.com";
		servers[0].size = strlen(servers[0].data);
		servers[1].data = "20 imap2.example.com:1143";
		servers[1].size = strlen(servers[1].data);
		i_zero(&raw);
		raw.key = key;
		raw.dn = t_strdup_printf("imapReferralMailbox=%s,ou=referrals,"
					 "dc=example,dc=com", name);
		raw.mailbox = &mailbox;
		raw.servers = servers;
		raw.server_count = 1 + i % 2;
		if (!replica_set(replica, event, &raw))
			i_fatal("entry %u not served", i);
	} T_END;
	replica_load_finished(replica);
	heap_after = mallinfo2().uordblks;
	rss_after = rss_bytes();
	printf("entries: %u\n", replica_count(replica));
	printf("heap bytes per entry: %.0f\n",
	       (double)(heap_after - heap_before) / count);
	printf("RSS bytes per entry: %.0f\n",
	       (double)(rss_after - rss_before) / count);
	replica_unref(&replica);
	event_unref(&event);
	lib_deinit();
	return 0;
}

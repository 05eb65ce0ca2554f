/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* mailbox-referrals-directory: one process per server (process_limit = 1)
   holding a replica of the referral entries, which imap, lmtp and doveadm
   processes ask over a UNIX socket (doc/directory-service-protocol.md). */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "str.h"
#include "settings-parser.h"
#include "restrict-access.h"
#include "master-service.h"
#include "master-service-settings.h"
#include "directory-replica.h"
#include "directory-service.h"

/* The service reads the global plugin { } block, where the mail plugin's
   mailbox_referrals_* settings live. The key is the same as the mail user
   settings' strlist, so Dovecot's config process sends it to us as it
   sends it to mail processes; the rest of the configuration is ignored. */
struct directory_plugin_settings {
	ARRAY_TYPE(const_string) plugin;
};

static const struct setting_define directory_plugin_setting_defines[] = {
	{ .type = SET_STRLIST, .key = "plugin",
	  .offset = offsetof(struct directory_plugin_settings, plugin) },
	SETTING_DEFINE_LIST_END
};

static const struct directory_plugin_settings directory_plugin_default_settings = {
	.plugin = ARRAY_INIT,
};

static const struct setting_parser_info directory_plugin_setting_parser_info = {
	.module_name = DIRECTORY_SERVICE_NAME,
	.defines = directory_plugin_setting_defines,
	.defaults = &directory_plugin_default_settings,
	.type_offset = SIZE_MAX,
	.struct_size = sizeof(struct directory_plugin_settings),
	.parent_offset = SIZE_MAX,
};

static const struct setting_parser_info *directory_set_roots[] = {
	&directory_plugin_setting_parser_info,
	NULL
};

static struct event_category directory_event_category = {
	.name = "mailbox-referrals",
};

struct directory_service *directory_service;

void directory_service_changed(void)
{
	directory_service->generation++;
	directory_service->changed_msecs =
		(uint64_t)ioloop_timeval.tv_sec * 1000 +
		ioloop_timeval.tv_usec / 1000;
}

void directory_service_replace(struct replica **replica)
{
	if (directory_service->replica != NULL)
		replica_unref(&directory_service->replica);
	directory_service->replica = *replica;
	*replica = NULL;
	directory_service_changed();
}

static const char *
directory_plugin_setting(const char *name, void *context)
{
	const struct directory_plugin_settings *set = context;
	const char *const *values;
	unsigned int i, count;
	const char *key = t_strconcat(REFERRAL_SETTING_PREFIX, name, NULL);

	if (!array_is_created(&set->plugin))
		return NULL;
	values = array_get(&set->plugin, &count);
	for (i = 0; i + 1 < count; i += 2) {
		if (strcmp(values[i], key) == 0)
			return values[i + 1];
	}
	return NULL;
}

static int
directory_settings_parse(const struct directory_plugin_settings *pset,
			 struct directory_service_settings *set_r,
			 const char **error_r)
{
	const char *value;
	int ret;

	set_r->poll_interval_secs = DIRECTORY_DEFAULT_POLL_INTERVAL_SECS;
	set_r->max_entries = DIRECTORY_DEFAULT_MAX_ENTRIES;
	value = directory_plugin_setting("directory_poll_interval",
					 (void *)pset);
	if (value != NULL && *value != '\0' &&
	    (settings_get_time(value, &set_r->poll_interval_secs,
			       error_r) < 0 || set_r->poll_interval_secs == 0)) {
		*error_r = t_strdup_printf(REFERRAL_SETTING_PREFIX
			"directory_poll_interval: Invalid time '%s'", value);
		return -1;
	}
	value = directory_plugin_setting("directory_max_entries",
					 (void *)pset);
	if (value != NULL && *value != '\0' &&
	    (str_to_uint(value, &set_r->max_entries) < 0 ||
	     set_r->max_entries == 0)) {
		*error_r = t_strdup_printf(REFERRAL_SETTING_PREFIX
			"directory_max_entries: Invalid number '%s'", value);
		return -1;
	}
	ret = referral_settings_parse(system_pool, directory_plugin_setting,
				      (void *)pset, &set_r->referral, error_r);
	if (ret == 0) {
		*error_r = REFERRAL_SETTING_PREFIX"namespaces is not set "
			"in the global plugin { } block";
		return -1;
	}
	if (ret < 0)
		return -1;
	/* the service is an LDAP client whatever mailbox_referrals_directory
	   says: that setting chooses the imap processes' backend */
	return referral_ldap_settings_parse(system_pool,
					    directory_plugin_setting,
					    (void *)pset, &set_r->ldap,
					    error_r);
}

static void directory_read_settings(void)
{
	struct directory_service_settings *set = &directory_service->set;
	const struct directory_plugin_settings *pset;
	const char *error;

	struct master_service_settings_input input;
	struct master_service_settings_output output;

	/* No module filter: the config process then sends every setting,
	   the plugin { } block included (it sends the plugin strlist only to
	   modules it knows as mail modules); our parser ignores the rest. */
	i_zero(&input);
	input.roots = directory_set_roots;
	input.service = DIRECTORY_SERVICE_NAME;
	if (master_service_settings_read(master_service, &input, &output,
					 &error) < 0)
		i_fatal("Error reading configuration: %s", error);
	pset = master_service_settings_get_others(master_service)[0];
	if (directory_settings_parse(pset, set, &error) < 0) {
		/* keep running and answer FAIL with the reason: exiting would
		   only make the master restart us in a loop */
		set->referral = NULL;
		set->ldap = NULL;
		set->error = i_strdup(error);
	}
}

static void client_connected(struct master_service_connection *conn)
{
	master_service_client_connection_accept(conn);
	directory_client_create(conn->fd);
}

int main(int argc, char *argv[])
{
	/* No MASTER_SERVICE_FLAG_NO_IDLE_DIE: process_min_avail = 1 keeps
	   the process from being idle-killed, and on a reload the master's
	   SIGINT must still retire the old process (it exits once its last
	   client is gone), so that the new configuration takes over. */
	master_service = master_service_init(DIRECTORY_SERVICE_NAME, 0,
					     &argc, &argv, "");
	if (master_getopt(master_service) > 0)
		return FATAL_DEFAULT;

	directory_service = i_new(struct directory_service, 1);
	directory_service->event = event_create(NULL);
	event_add_category(directory_service->event,
			   &directory_event_category);
	/* the config socket is root's: read it before dropping privileges */
	directory_read_settings();
	master_service_init_log(master_service);
	restrict_access_by_env(RESTRICT_ACCESS_FLAG_ALLOW_ROOT, NULL);
	restrict_access_allow_coredumps(TRUE);
	if (directory_service->set.error != NULL) {
		e_error(directory_service->event, "Not loading the directory: "
			"%s", directory_service->set.error);
	}

	master_service_init_finish(master_service);
	directory_clients_init();
	directory_loader_init();

	master_service_run(master_service, client_connected);

	directory_loader_deinit();
	directory_clients_deinit();
	if (directory_service->replica != NULL)
		replica_unref(&directory_service->replica);
	i_free(directory_service->over_limit_problem);
	i_free(directory_service->set.error);
	event_unref(&directory_service->event);
	i_free(directory_service);
	master_service_deinit(&master_service);
	return 0;
}

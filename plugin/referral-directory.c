/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "time-util.h"
#include "module-dir.h"
#include "referral-settings.h"
#include "referral-directory-private.h"

/* Shown to clients; the details go to the log. */
#define REFERRAL_DIRECTORY_ERROR_TEXT \
	"Referral directory is unavailable, try again later"

static ARRAY(const struct referral_directory_backend *) backends;
/* Backend modules loaded on demand (see referral_directory_backend_load) */
static struct module *backend_modules;

void referral_directory_backend_register(
	const struct referral_directory_backend *backend)
{
	if (!array_is_created(&backends))
		i_array_init(&backends, 4);
	array_push_back(&backends, &backend);
}

void referral_directory_backend_unregister(
	const struct referral_directory_backend *backend)
{
	const struct referral_directory_backend *const *b;

	array_foreach(&backends, b) {
		if (*b == backend) {
			array_delete(&backends, array_foreach_idx(&backends, b),
				     1);
			break;
		}
	}
	if (array_count(&backends) == 0)
		array_free(&backends);
}

static const struct referral_directory_backend *
referral_directory_backend_find(const char *name)
{
	const struct referral_directory_backend *const *b;

	if (!array_is_created(&backends)) {
		/* the built-in backend; modules and unit tests add theirs */
		referral_directory_backend_register(
			&referral_directory_backend_service);
	}
	array_foreach(&backends, b) {
		if (strcmp((*b)->name, name) == 0)
			return *b;
	}
	return NULL;
}

/* Load the module of a backend that is not built in: only the LDAP one,
   lib22_mailbox_referrals_ldap_plugin.so next to the mail plugin, so that
   only processes using it load libldap. Its init function registers it.
   Other names never become file names. */
static int
referral_directory_backend_load(const char *name, const char *module_dir,
				const char **error_r)
{
	struct module_dir_load_settings mod_set;

	if (strcmp(name, "ldap") != 0)
		return 0;
	if (module_dir == NULL) {
		*error_r = "no mail_plugin_dir to load the ldap backend from";
		return -1;
	}
	i_zero(&mod_set);
	mod_set.abi_version = DOVECOT_ABI_VERSION;
	mod_set.require_init_funcs = TRUE;
	if (module_dir_try_load_missing(&backend_modules, module_dir,
					"mailbox_referrals_ldap", &mod_set,
					error_r) < 0)
		return -1;
	module_dir_init(backend_modules);
	return 0;
}

void referral_directory_backends_deinit(void)
{
	if (backend_modules != NULL)
		module_dir_unload(&backend_modules);
}

int referral_directory_init(const struct referral_directory_params *params,
			    struct referral_directory **dir_r,
			    const char **error_r)
{
	const struct referral_directory_backend *backend;
	struct referral_directory *dir;

	backend = referral_directory_backend_find(params->set->directory);
	if (backend == NULL) {
		if (referral_directory_backend_load(params->set->directory,
						    params->module_dir,
						    error_r) < 0) {
			*error_r = t_strdup_printf(REFERRAL_SETTING_PREFIX
				"directory: Can't load the %s backend: %s",
				params->set->directory, *error_r);
			return -1;
		}
		backend = referral_directory_backend_find(
			params->set->directory);
	}
	if (backend == NULL) {
		*error_r = t_strdup_printf(REFERRAL_SETTING_PREFIX
			"directory: Unknown directory backend '%s' "
			"(expected ldap or service)", params->set->directory);
		return -1;
	}
	if (backend->init(params, &dir, error_r) < 0)
		return -1;
	dir->event = event_create(params->event_parent);
	event_set_append_log_prefix(dir->event,
		t_strdup_printf("%s: ", dir->name));
	*dir_r = dir;
	return 0;
}

void referral_directory_deinit(struct referral_directory **_dir)
{
	struct referral_directory *dir = *_dir;
	struct event *event = dir->event;

	*_dir = NULL;
	dir->v.deinit(dir);
	event_unref(&event);
}

bool referral_directory_is_failing(const struct referral_directory *dir)
{
	return dir->failing;
}

bool referral_directory_answers_fresh(const struct referral_directory *dir)
{
	return dir->fresh_answers;
}

/* Returns TRUE if a query may be tried now. While the directory fails,
   one command (one run of the ioloop) tries it once: a command that touches
   many mailboxes (LIST-STATUS, a list index refresh) must not wait a whole
   timeout for each of them. */
static bool referral_directory_may_try(struct referral_directory *dir)
{
	if (!dir->failing ||
	    timeval_cmp(&ioloop_timeval, &dir->failed_ioloop_timeval) != 0)
		return TRUE;
	e_debug(dir->event, "Not asking the failing directory again "
		"in this command");
	return FALSE;
}

/* Log a failed (ret < 0) or successful query: one error line per outage,
   not one per command, so that a session that keeps trying does not flood
   the log. */
static int
referral_directory_result(struct referral_directory *dir, int ret,
			  const char *error, const char **error_r)
{
	if (ret < 0) {
		dir->failed_ioloop_timeval = ioloop_timeval;
		if (!dir->failing) {
			e_error(dir->event, "%s - referrals unavailable "
				"until the directory answers again", error);
			dir->failing = TRUE;
		} else {
			e_debug(dir->event, "Still failing: %s", error);
		}
		*error_r = REFERRAL_DIRECTORY_ERROR_TEXT;
		return -1;
	}
	if (dir->failing) {
		e_info(dir->event, "Directory is answering again");
		dir->failing = FALSE;
	}
	return 0;
}

/* Start a request: its event is created now, so that the duration the
   finished event gets covers the whole request. */
static void
referral_directory_request_begin(struct referral_directory *dir,
				 const char *operation)
{
	i_assert(dir->request_event == NULL);

	dir->request_event = event_create(dir->event);
	event_add_str(dir->request_event, "operation", operation);
}

/* Send the request's event; entries is how many entries it returned. */
static void
referral_directory_request_finished(struct referral_directory *dir, int ret,
				    unsigned int entries, const char *error)
{
	struct event *event = dir->request_event;
	struct event_passthrough *e;

	dir->request_event = NULL;
	e = event_create_passthrough(event)->
		set_name(REFERRAL_EVENT_DIRECTORY_REQUEST_FINISHED)->
		add_int("entries", entries);
	if (ret < 0) {
		e->add_str("error", error);
		/* referral_directory_result() logs the error itself, once
		   per outage */
		e_debug(e->event(), "Directory %s failed after %u entries",
			event_find_field_recursive_str(event, "operation"),
			entries);
	} else {
		e_debug(e->event(), "Directory %s finished: %u entries",
			event_find_field_recursive_str(event, "operation"),
			entries);
	}
	event_unref(&event);
}

int referral_directory_lookup(struct referral_directory *dir,
			      const char *name, const char *const *ancestors,
			      pool_t pool,
			      ARRAY_TYPE(referral_directory_entry) *entries,
			      const char **error_r)
{
	const char *error = NULL;
	unsigned int count;
	int ret;

	if (!referral_directory_may_try(dir)) {
		*error_r = REFERRAL_DIRECTORY_ERROR_TEXT;
		return -1;
	}
	count = array_count(entries);
	referral_directory_request_begin(dir, "lookup");
	ret = dir->v.lookup(dir, name, ancestors, pool, entries, &error);
	referral_directory_request_finished(dir, ret,
		array_count(entries) - count, error);
	return referral_directory_result(dir, ret, error, error_r);
}

int referral_directory_list(struct referral_directory *dir,
			    const char *prefix, pool_t pool,
			    ARRAY_TYPE(referral_directory_entry) *entries,
			    const char **error_r)
{
	const char *error = NULL;
	unsigned int count;
	int ret;

	if (!referral_directory_may_try(dir)) {
		*error_r = REFERRAL_DIRECTORY_ERROR_TEXT;
		return -1;
	}
	count = array_count(entries);
	referral_directory_request_begin(dir, "list");
	ret = dir->v.list(dir, prefix, pool, entries, &error);
	referral_directory_request_finished(dir, ret,
		array_count(entries) - count, error);
	return referral_directory_result(dir, ret, error, error_r);
}

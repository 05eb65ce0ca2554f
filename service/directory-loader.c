/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* Follows the directory. First with an RFC 4533 refreshAndPersist search
   (OpenLDAP's syncprov): the refresh phase loads a new copy, which replaces
   the current one when the server says the refresh is done; the persist
   phase then applies each change as it comes. A server that refuses the
   sync control is read in full (paged, RFC 2696) every
   mailbox_referrals_directory_poll_interval instead.

   The search runs asynchronously: libldap's socket is non-blocking and
   watched by an io, and each readable event drains what has arrived, so
   clients are answered between messages. Connecting, STARTTLS and the bind
   use libldap's synchronous calls, each bounded by
   mailbox_referrals_ldap_timeout (per URI for the TCP connect). A lost
   connection is retried with a doubling backoff, and every reconnection
   reloads in full (no cookie is kept: the copy lives in memory only). */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "hex-binary.h"
#include "str-sanitize.h"
#include "ioloop.h"
#include "time-util.h"
#include "directory-replica.h"
#include "directory-service.h"

#define LDAP_DEPRECATED 0
#include <ldap.h>
#include "referral-ldap-options.h"

#define LOADER_OBJECTCLASS_FILTER "(objectClass=imapMailboxReferral)"
#define LOADER_PAGE_SIZE 500
#define LOADER_BACKOFF_MIN_MSECS 500
#define LOADER_BACKOFF_MAX_MSECS (30*1000)

enum loader_phase {
	LOADER_DISCONNECTED,
	/* loading a new copy (refresh phase, or paged read) */
	LOADER_LOADING,
	/* RFC 4533 persist phase: changes apply to the current copy */
	LOADER_PERSIST,
};

struct directory_loader {
	LDAP *ld;
	int msgid;
	struct io *io;
	struct timeout *to;
	/* while loading: the directory has sent nothing for
	   mailbox_referrals_ldap_timeout */
	struct timeout *to_stalled;
	enum loader_phase phase;

	/* try RFC 4533 on the next search */
	bool try_persist;
	/* the copy being loaded */
	struct replica *loading;
	struct berval *page_cookie;
	struct event *load_event;

	unsigned int backoff_msecs;
	/* the outage has been logged */
	bool unreachable;
};

static struct directory_loader loader;

static const char *loader_attrs[] = {
	"imapReferralMailbox",
	"imapReferralServer",
	"imapReferralRemoteName",
	"imapReferralScope",
	NULL
};

static void loader_connect(void *context);
static void loader_start_search(void);

static const char *loader_mode(void)
{
	return loader.try_persist ? "persist" : "poll";
}

static void loader_disconnect(void)
{
	io_remove(&loader.io);
	timeout_remove(&loader.to_stalled);
	if (loader.ld != NULL) {
		(void)ldap_unbind_ext(loader.ld, NULL, NULL);
		loader.ld = NULL;
	}
	if (loader.page_cookie != NULL) {
		ber_bvfree(loader.page_cookie);
		loader.page_cookie = NULL;
	}
	if (loader.loading != NULL)
		replica_unref(&loader.loading);
	loader.phase = LOADER_DISCONNECTED;
}

static void loader_load_finished(const char *error)
{
	struct event_passthrough *e;

	if (loader.load_event == NULL)
		return;
	e = event_create_passthrough(loader.load_event)->
		set_name(DIRECTORY_EVENT_SYNC_FINISHED)->
		add_str("mode", loader_mode())->
		add_int("entries", loader.loading == NULL ? 0 :
			replica_count(loader.loading));
	if (error != NULL) {
		e->add_str("error", error);
		e_debug(e->event(), "Load failed: %s", error);
	} else {
		e_debug(e->event(), "Load finished");
	}
	event_unref(&loader.load_event);
}

static void loader_schedule(unsigned int msecs)
{
	timeout_remove(&loader.to);
	loader.to = timeout_add(msecs, loader_connect, NULL);
}

static void loader_retry_later(void)
{
	loader_schedule(loader.backoff_msecs);
	loader.backoff_msecs = I_MIN(loader.backoff_msecs * 2,
				     LOADER_BACKOFF_MAX_MSECS);
}

/* The directory can't be read: log it once per outage, keep serving the
   last copy, and retry. */
static void loader_failed(const char *error)
{
	loader_load_finished(error);
	loader_disconnect();
	directory_service->synced = FALSE;
	if (!loader.unreachable) {
		loader.unreachable = TRUE;
		e_error(directory_service->event,
			"Directory unreachable, %s: %s",
			directory_service->replica == NULL ?
			"failing requests until it is back" :
			"serving the last complete copy", error);
	}
	loader_retry_later();
}

static void loader_reachable(void)
{
	loader.backoff_msecs = LOADER_BACKOFF_MIN_MSECS;
	if (loader.unreachable) {
		loader.unreachable = FALSE;
		e_info(directory_service->event, "Directory reachable again");
	}
}

static int loader_set_tls(const struct referral_ldap_settings *set,
			  const char **error_r)
{
	int require_cert =
		referral_ldap_require_cert_option(set->tls_require_cert);
	int newctx = 0;

	if ((set->tls_ca_cert_file != NULL &&
	     ldap_set_option(loader.ld, LDAP_OPT_X_TLS_CACERTFILE,
			     set->tls_ca_cert_file) != LDAP_OPT_SUCCESS) ||
	    (set->tls_ca_cert_dir != NULL &&
	     ldap_set_option(loader.ld, LDAP_OPT_X_TLS_CACERTDIR,
			     set->tls_ca_cert_dir) != LDAP_OPT_SUCCESS) ||
	    (set->tls_cert_file != NULL &&
	     ldap_set_option(loader.ld, LDAP_OPT_X_TLS_CERTFILE,
			     set->tls_cert_file) != LDAP_OPT_SUCCESS) ||
	    (set->tls_key_file != NULL &&
	     ldap_set_option(loader.ld, LDAP_OPT_X_TLS_KEYFILE,
			     set->tls_key_file) != LDAP_OPT_SUCCESS) ||
	    ldap_set_option(loader.ld, LDAP_OPT_X_TLS_REQUIRE_CERT,
			    &require_cert) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(loader.ld, LDAP_OPT_X_TLS_NEWCTX,
			    &newctx) != LDAP_OPT_SUCCESS) {
		*error_r = "Setting up TLS failed: check the "
			REFERRAL_SETTING_PREFIX"ldap_tls_* files";
		return -1;
	}
	return 0;
}

static void loader_input(void *context);

static int loader_open(const char **error_r)
{
	const struct referral_ldap_settings *set = directory_service->set.ldap;
	int ret, fd, version = LDAP_VERSION3;
	int keepalive_idle = 60, keepalive_probes = 3, keepalive_interval = 10;
	struct timeval tv;
	struct berval cred;

	ret = ldap_initialize(&loader.ld, set->uris);
	if (ret != LDAP_SUCCESS) {
		loader.ld = NULL;
		*error_r = t_strdup_printf("ldap_initialize(%s) failed: %s",
					   set->uris, ldap_err2string(ret));
		return -1;
	}
	tv.tv_sec = set->timeout_msecs / 1000;
	tv.tv_usec = (set->timeout_msecs % 1000) * 1000;
	if (ldap_set_option(loader.ld, LDAP_OPT_PROTOCOL_VERSION,
			    &version) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(loader.ld, LDAP_OPT_REFERRALS,
			    LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(loader.ld, LDAP_OPT_NETWORK_TIMEOUT,
			    &tv) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(loader.ld, LDAP_OPT_TIMEOUT,
			    &tv) != LDAP_OPT_SUCCESS) {
		*error_r = "Setting LDAP options failed";
		return -1;
	}
	if ((set->tls || strstr(set->uris, "ldaps://") != NULL) &&
	    loader_set_tls(set, error_r) < 0)
		return -1;
	/* The persist phase is silent while nothing changes: TCP keepalive
	   notices a directory host that went away without closing. */
	(void)ldap_set_option(loader.ld, LDAP_OPT_X_KEEPALIVE_IDLE,
			      &keepalive_idle);
	(void)ldap_set_option(loader.ld, LDAP_OPT_X_KEEPALIVE_PROBES,
			      &keepalive_probes);
	(void)ldap_set_option(loader.ld, LDAP_OPT_X_KEEPALIVE_INTERVAL,
			      &keepalive_interval);
	ret = ldap_connect(loader.ld);
	if (ret == LDAP_SUCCESS && set->tls)
		ret = ldap_start_tls_s(loader.ld, NULL, NULL);
	if (ret != LDAP_SUCCESS) {
		*error_r = t_strdup_printf("Connecting to %s failed: %s",
					   set->uris, ldap_err2string(ret));
		return -1;
	}
	cred.bv_val = (char *)(set->dnpass != NULL ? set->dnpass : "");
	cred.bv_len = strlen(cred.bv_val);
	ret = ldap_sasl_bind_s(loader.ld, set->dn != NULL ? set->dn : "",
			       LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	if (ret != LDAP_SUCCESS) {
		/* the DN is configuration; the password is never logged */
		*error_r = t_strdup_printf("Bind to %s as %s failed: %s",
			set->uris, set->dn != NULL ? set->dn : "anonymous",
			ldap_err2string(ret));
		return -1;
	}
	if (ldap_get_option(loader.ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS ||
	    fd < 0) {
		*error_r = "Getting the LDAP socket failed";
		return -1;
	}
	/* from now on nothing waits for the directory: ldap_result() is
	   only called with a zero timeout when the socket is readable */
	fd_set_nonblock(fd, TRUE);
	loader.io = io_add(fd, IO_READ, loader_input, NULL);
	return 0;
}

static void loader_connect(void *context ATTR_UNUSED)
{
	const char *error;

	timeout_remove(&loader.to);
	if (loader.ld == NULL) {
		if (loader_open(&error) < 0) {
			if (loader.ld != NULL) {
				(void)ldap_unbind_ext(loader.ld, NULL, NULL);
				loader.ld = NULL;
			}
			loader_failed(error);
			return;
		}
	}
	loader_start_search();
}

static void loader_stalled(void *context ATTR_UNUSED)
{
	loader_failed(t_strdup_printf(
		"The directory sent nothing for %u ms while loading",
		directory_service->set.ldap->timeout_msecs));
}

static void loader_start_search(void)
{
	const struct referral_ldap_settings *set = directory_service->set.ldap;
	LDAPControl *ctrl = NULL, *ctrls[2] = { NULL, NULL };
	BerElement *ber;
	struct berval value;
	int ret;

	if (loader.try_persist) {
		/* syncRequestValue ::= SEQUENCE { mode ENUMERATED } */
		ber = ber_alloc_t(LBER_USE_DER);
		if (ber == NULL ||
		    ber_printf(ber, "{e}",
			       (ber_int_t)LDAP_SYNC_REFRESH_AND_PERSIST) < 0 ||
		    ber_flatten2(ber, &value, 0) < 0) {
			if (ber != NULL)
				ber_free(ber, 1);
			loader_failed("Encoding the sync control failed");
			return;
		}
		ret = ldap_control_create(LDAP_CONTROL_SYNC, 1, &value, 1,
					  &ctrl);
		ber_free(ber, 1);
	} else {
		ret = ldap_create_page_control(loader.ld, LOADER_PAGE_SIZE,
					       loader.page_cookie, 1, &ctrl);
	}
	if (ret != LDAP_SUCCESS) {
		loader_failed(t_strdup_printf("Creating a control failed: %s",
					      ldap_err2string(ret)));
		return;
	}
	ctrls[0] = ctrl;
	ret = ldap_search_ext(loader.ld, set->base,
			      referral_ldap_scope_option(set->scope),
			      LOADER_OBJECTCLASS_FILTER,
			      (char **)loader_attrs, 0, ctrls, NULL, NULL,
			      LDAP_NO_LIMIT, &loader.msgid);
	ldap_control_free(ctrl);
	if (ret != LDAP_SUCCESS) {
		loader_failed(t_strdup_printf("Search under %s failed: %s",
			set->base, ldap_err2string(ret)));
		return;
	}
	if (loader.loading == NULL) {
		loader.loading = replica_init();
		loader.load_event = event_create(directory_service->event);
	}
	loader.phase = LOADER_LOADING;
	/* a load that stops half-way (a frozen server keeps the connection
	   open) must not leave the service waiting forever */
	timeout_remove(&loader.to_stalled);
	loader.to_stalled = timeout_add(
		directory_service->set.ldap->timeout_msecs,
		loader_stalled, NULL);
}


static const struct directory_value *
loader_values(struct berval **vals, unsigned int *count_r)
{
	struct directory_value *values;
	unsigned int i, count = 0;

	if (vals == NULL) {
		*count_r = 0;
		return NULL;
	}
	while (vals[count] != NULL)
		count++;
	values = t_new(struct directory_value, count + 1);
	for (i = 0; i < count; i++) {
		values[i].data = vals[i]->bv_val;
		values[i].size = vals[i]->bv_len;
	}
	*count_r = count;
	return values;
}

/* Store one entry. Returns FALSE if it would exceed max_entries. */
static bool
loader_store(struct replica *replica, LDAPMessage *msg, const char *key)
{
	struct berval **mailbox, **servers, **remote_name, **scope;
	struct directory_raw_entry raw;
	unsigned int count, max = directory_service->set.max_entries;
	char *dn;

	if (replica_stored_count(replica) >= max) {
		/* replacing an entry doesn't add one */
		if (key == NULL || !replica_has_key(replica, key))
			return FALSE;
	}
	dn = ldap_get_dn(loader.ld, msg);
	mailbox = ldap_get_values_len(loader.ld, msg, "imapReferralMailbox");
	servers = ldap_get_values_len(loader.ld, msg, "imapReferralServer");
	remote_name = ldap_get_values_len(loader.ld, msg, "imapReferralRemoteName");
	scope = ldap_get_values_len(loader.ld, msg, "imapReferralScope");
	T_BEGIN {
		i_zero(&raw);
		raw.dn = dn != NULL ? dn : "";
		raw.key = key != NULL ? key : raw.dn;
		raw.mailbox = loader_values(mailbox, &count);
		raw.remote_name = loader_values(remote_name, &count);
		raw.scope = loader_values(scope, &count);
		raw.servers = loader_values(servers, &raw.server_count);
		(void)replica_set(replica, directory_service->event, &raw);
	} T_END;
	ldap_value_free_len(mailbox);
	ldap_value_free_len(servers);
	ldap_value_free_len(remote_name);
	ldap_value_free_len(scope);
	ldap_memfree(dn);
	return TRUE;
}

static void loader_over_limit(void)
{
	unsigned int max = directory_service->set.max_entries;

	i_free(directory_service->over_limit_problem);
	directory_service->over_limit_problem = i_strdup_printf(
		"the directory holds more than %u entries "
		"(mailbox_referrals_directory_max_entries)", max);
	e_error(directory_service->event,
		"The directory holds more than %u referral entries "
		"(mailbox_referrals_directory_max_entries): stopped reading, "
		"%s", max, directory_service->replica == NULL ?
		"failing requests (no complete copy)" :
		"serving the last complete copy");
	loader_load_finished("too many entries");
	loader_disconnect();
	directory_service->synced = FALSE;
	/* try again later: entries may have been deleted by then */
	loader_schedule(directory_service->set.poll_interval_secs * 1000);
}

/* The load is complete: the new copy replaces the current one. */
static void loader_commit(void)
{
	struct replica *replica = loader.loading;

	replica_load_finished(replica);
	loader_load_finished(NULL);
	/* back only once a load succeeds: a bind that works before a search
	   that fails is not worth two log lines per retry */
	loader_reachable();
	loader.loading = NULL;
	i_free_and_null(directory_service->over_limit_problem);
	directory_service->persist = loader.try_persist;
	directory_service_replace(&replica);
	directory_service->synced = TRUE;
}

/* syncStateValue ::= SEQUENCE { state ENUMERATED, entryUUID OCTET STRING,
   cookie OCTET STRING OPTIONAL }. Returns the key (hex entryUUID). */
static int loader_sync_state(LDAPMessage *msg, ber_int_t *state_r,
			     const char **key_r)
{
	LDAPControl **ctrls = NULL, *ctrl;
	struct berval uuid;
	BerElement *ber;
	int ret = -1;

	if (ldap_get_entry_controls(loader.ld, msg, &ctrls) != LDAP_SUCCESS ||
	    ctrls == NULL)
		return -1;
	ctrl = ldap_control_find(LDAP_CONTROL_SYNC_STATE, ctrls, NULL);
	if (ctrl != NULL) {
		ber = ber_init(&ctrl->ldctl_value);
		if (ber != NULL) {
			if (ber_scanf(ber, "{em", state_r, &uuid) != LBER_ERROR &&
			    uuid.bv_len > 0 && uuid.bv_len <= 64) {
				*key_r = binary_to_hex(
					(const unsigned char *)uuid.bv_val,
					uuid.bv_len);
				ret = 0;
			}
			ber_free(ber, 1);
		}
	}
	ldap_controls_free(ctrls);
	return ret;
}

static void loader_sync_entry(LDAPMessage *msg)
{
	struct replica *replica;
	ber_int_t state;
	const char *key;

	if (loader_sync_state(msg, &state, &key) < 0) {
		e_warning(directory_service->event,
			  "Ignoring an entry without a valid sync state");
		return;
	}
	replica = loader.phase == LOADER_PERSIST ?
		directory_service->replica : loader.loading;
	i_assert(replica != NULL);
	if (state == LDAP_SYNC_DELETE) {
		replica_remove(replica, key);
	} else if (!loader_store(replica, msg, key)) {
		loader_over_limit();
		return;
	}
	if (loader.phase == LOADER_PERSIST)
		directory_service_changed();
}

/* A syncInfoMessage: the refresh phase ends with refreshDelete or
   refreshPresent whose refreshDone is TRUE (its default). */
static bool loader_refresh_done(LDAPMessage *msg)
{
	char *oid = NULL;
	struct berval *data = NULL;
	BerElement *ber;
	ber_tag_t tag;
	ber_len_t len;
	ber_int_t done = 1;
	bool ret = FALSE;

	if (ldap_parse_intermediate(loader.ld, msg, &oid, &data, NULL,
				    0) != LDAP_SUCCESS)
		return FALSE;
	if (oid != NULL && strcmp(oid, LDAP_SYNC_INFO) == 0 && data != NULL &&
	    (ber = ber_init(data)) != NULL) {
		tag = ber_peek_tag(ber, &len);
		if (tag == LDAP_TAG_SYNC_REFRESH_DELETE ||
		    tag == LDAP_TAG_SYNC_REFRESH_PRESENT) {
			if (ber_scanf(ber, "{") != LBER_ERROR) {
				tag = ber_peek_tag(ber, &len);
				if (tag == LDAP_TAG_SYNC_COOKIE) {
					(void)ber_scanf(ber, "x");
					tag = ber_peek_tag(ber, &len);
				}
				if (tag == LDAP_TAG_REFRESHDONE)
					(void)ber_scanf(ber, "b", &done);
			}
			ret = done != 0;
		}
		ber_free(ber, 1);
	}
	ldap_memfree(oid);
	if (data != NULL)
		ber_bvfree(data);
	return ret;
}

/* Between polls the connection is closed: an idle connection would only
   be dropped by the server or a firewall in the meantime. */
static void loader_poll_later(void)
{
	loader_disconnect();
	loader_schedule(directory_service->set.poll_interval_secs * 1000);
}

/* The sync search cannot be used (reason): drop the load it began and
   read the directory with paged searches from now on. */
static void loader_fall_back_to_poll(const char *reason)
{
	loader.try_persist = FALSE;
	directory_service->persist = FALSE;
	loader_load_finished(reason);
	replica_unref(&loader.loading);
	loader_start_search();
}

/* The search ended. */
static void loader_search_result(LDAPMessage *msg)
{
	LDAPControl **ctrls = NULL, *ctrl;
	char *errmsg = NULL;
	int err, ret;
	ber_int_t estimate;
	struct berval cookie;

	ret = ldap_parse_result(loader.ld, msg, &err, NULL, &errmsg, NULL,
				&ctrls, 0);
	if (ret != LDAP_SUCCESS)
		err = ret;
	if (loader.try_persist && loader.phase == LOADER_LOADING &&
	    (err == LDAP_UNAVAILABLE_CRITICAL_EXTENSION ||
	     err == LDAP_UNWILLING_TO_PERFORM || err == LDAP_PROTOCOL_ERROR)) {
		/* no syncprov: read in full every poll_interval */
		e_info(directory_service->event,
		       "The directory doesn't support RFC 4533 sync (%s): "
		       "re-reading it every %u seconds", ldap_err2string(err),
		       directory_service->set.poll_interval_secs);
		ldap_controls_free(ctrls);
		ldap_memfree(errmsg);
		loader_fall_back_to_poll("the sync control was refused");
		return;
	}
	if (loader.try_persist && loader.phase == LOADER_LOADING &&
	    err == LDAP_SIZELIMIT_EXCEEDED) {
		/* the sync search is one search: the server's size limit for
		   our account cuts it. Paged searches get past the limit. */
		e_warning(directory_service->event,
			  "The RFC 4533 sync search exceeds the directory's size "
			  "limit for this account (give it size=unlimited in "
			  "slapd's limits): re-reading it with paged searches "
			  "every %u seconds instead",
			  directory_service->set.poll_interval_secs);
		ldap_controls_free(ctrls);
		ldap_memfree(errmsg);
		loader_fall_back_to_poll("size limit exceeded");
		return;
	}
	if (err != LDAP_SUCCESS) {
		const char *error = t_strdup_printf("Search failed: %s%s%s",
			ldap_err2string(err), errmsg == NULL ? "" : ": ",
			errmsg == NULL ? "" : str_sanitize(errmsg, 256));
		ldap_controls_free(ctrls);
		ldap_memfree(errmsg);
		loader_failed(error);
		return;
	}
	ldap_memfree(errmsg);

	if (loader.try_persist) {
		/* the server ended the persist phase: start over */
		ldap_controls_free(ctrls);
		if (loader.phase == LOADER_LOADING)
			loader_commit();
		loader_start_search();
		return;
	}
	ctrl = ctrls == NULL ? NULL :
		ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, ctrls, NULL);
	i_zero(&cookie);
	if (ctrl != NULL &&
	    ldap_parse_pageresponse_control(loader.ld, ctrl, &estimate,
					    &cookie) != LDAP_SUCCESS)
		i_zero(&cookie);
	ldap_controls_free(ctrls);
	if (loader.page_cookie != NULL) {
		ber_bvfree(loader.page_cookie);
		loader.page_cookie = NULL;
	}
	if (cookie.bv_len > 0) {
		loader.page_cookie = ber_bvdup(&cookie);
		ber_memfree(cookie.bv_val);
		loader_start_search();
		return;
	}
	ber_memfree(cookie.bv_val);
	loader_commit();
	loader_poll_later();
}

static void loader_handle(LDAPMessage *msg)
{
	switch (ldap_msgtype(msg)) {
	case LDAP_RES_SEARCH_ENTRY:
		if (loader.try_persist)
			loader_sync_entry(msg);
		else if (!loader_store(loader.loading, msg, NULL))
			loader_over_limit();
		break;
	case LDAP_RES_INTERMEDIATE:
		if (loader.try_persist && loader.phase == LOADER_LOADING &&
		    loader_refresh_done(msg)) {
			loader_commit();
			loader.phase = LOADER_PERSIST;
			/* quiet is normal from now on */
			timeout_remove(&loader.to_stalled);
		}
		break;
	case LDAP_RES_SEARCH_RESULT:
		loader_search_result(msg);
		break;
	default:
		/* search references: not followed */
		break;
	}
}

static void loader_input(void *context ATTR_UNUSED)
{
	struct timeval zero = { 0, 0 };
	LDAPMessage *msg;
	unsigned int n;
	int ret;

	/* bounded per call, so that a flood of entries still lets clients
	   be answered in between */
	for (n = 0; n < 1000 && loader.ld != NULL; n++) {
		ret = ldap_result(loader.ld, loader.msgid, LDAP_MSG_ONE, &zero,
				  &msg);
		if (ret == 0)
			return;
		if (ret < 0) {
			int err = LDAP_SERVER_DOWN;

			(void)ldap_get_option(loader.ld, LDAP_OPT_RESULT_CODE,
					      &err);
			loader_failed(t_strdup_printf("Connection lost: %s",
						      ldap_err2string(err)));
			return;
		}
		if (loader.to_stalled != NULL)
			timeout_reset(loader.to_stalled);
		T_BEGIN {
			loader_handle(msg);
		} T_END;
		ldap_msgfree(msg);
	}
	if (loader.io != NULL) {
		/* libldap may hold more already read: come back */
		io_set_pending(loader.io);
	}
}

void directory_loader_init(void)
{
	i_zero(&loader);
	loader.try_persist = TRUE;
	directory_service->persist = TRUE;
	loader.backoff_msecs = LOADER_BACKOFF_MIN_MSECS;
	if (directory_service->set.referral == NULL)
		return;
	loader.to = timeout_add_short(0, loader_connect, NULL);
}

void directory_loader_deinit(void)
{
	timeout_remove(&loader.to);
	if (loader.load_event != NULL)
		event_unref(&loader.load_event);
	loader_disconnect();
}

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The LDAP backend, on OpenLDAP's libldap. Mailbox vfuncs are synchronous,
   so queries block the (per-session) imap process, always bounded by
   mailbox_referrals_ldap_timeout as a deadline for the whole lookup:
   connect, STARTTLS, bind and search together. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "str-sanitize.h"
#include "time-util.h"
#include "ioloop.h"
#include "referral-directory-ldap-settings.h"
#include "referral-directory-private.h"
#include "referral-ldap.h"

#define LDAP_DEPRECATED 0
#include <ldap.h>
#include "referral-ldap-options.h"
#include <poll.h>

#define REFERRAL_LDAP_OBJECTCLASS "imapMailboxReferral"
#define REFERRAL_LDAP_ATTR_MAILBOX "imapReferralMailbox"
#define REFERRAL_LDAP_ATTR_SERVER "imapReferralServer"
#define REFERRAL_LDAP_ATTR_REMOTE_NAME "imapReferralRemoteName"
#define REFERRAL_LDAP_ATTR_SCOPE "imapReferralScope"

/* Entries asked for per page of a paged search: within slapd's default
   size limit (500). */
#define REFERRAL_LDAP_PAGE_SIZE 500
/* A listing with more entries than this fails rather than growing the
   imap process without bound. */
#define REFERRAL_LDAP_MAX_ENTRIES 50000
/* A kept connection idle for longer is replaced before use: firewalls and
   NATs drop idle connections silently, which would cost a whole timeout. */
#define REFERRAL_LDAP_MAX_IDLE_SECS 60

struct ldap_referral_directory {
	struct referral_directory dir;
	pool_t set_pool;
	const struct referral_ldap_settings *set;
	/* how many URIs mailbox_referrals_ldap_uris lists */
	unsigned int uri_count;

	/* NULL while not connected */
	LDAP *ld;
	/* when the kept connection was last used */
	time_t last_used;
	/* the end of the current lookup: connecting, STARTTLS, binding and
	   every page of the search all fit before it */
	struct timeval deadline;
	/* called by libldap on each new socket */
	struct ldap_conncb conncb;
	/* the current search stopped at REFERRAL_LDAP_MAX_ENTRIES */
	bool too_many_entries;
};

static const char *referral_ldap_attrs[] = {
	REFERRAL_LDAP_ATTR_MAILBOX,
	REFERRAL_LDAP_ATTR_SERVER,
	REFERRAL_LDAP_ATTR_REMOTE_NAME,
	REFERRAL_LDAP_ATTR_SCOPE,
	NULL
};

void referral_ldap_filter_escape(string_t *dest, const char *value)
{
	struct berval in, out;

	in.bv_val = (char *)value;
	in.bv_len = strlen(value);
	if (ldap_bv2escaped_filter_value(&in, &out) != 0)
		i_fatal_status(FATAL_OUTOFMEM, "ldap_bv2escaped_filter_value() failed");
	str_append_data(dest, out.bv_val, out.bv_len);
	ber_memfree(out.bv_val);
}

static void
referral_ldap_filter_append_eq(string_t *filter, const char *value)
{
	str_append(filter, "("REFERRAL_LDAP_ATTR_MAILBOX"=");
	referral_ldap_filter_escape(filter, value);
	str_append_c(filter, ')');
}

const char *referral_ldap_lookup_filter(const char *name,
					const char *const *ancestors)
{
	string_t *filter = t_str_new(256);
	unsigned int count = ancestors == NULL ? 0 : str_array_length(ancestors);

	i_assert(name != NULL || count > 0);
	str_append(filter, "(&(objectClass="REFERRAL_LDAP_OBJECTCLASS")");
	if (count == 0) {
		referral_ldap_filter_append_eq(filter, name);
	} else {
		/* the exact name, or an ancestor that covers its subtree */
		if (name != NULL) {
			str_append(filter, "(|");
			referral_ldap_filter_append_eq(filter, name);
		}
		str_append(filter, "(&("REFERRAL_LDAP_ATTR_SCOPE"=subtree)");
		if (count > 1)
			str_append(filter, "(|");
		for (; *ancestors != NULL; ancestors++)
			referral_ldap_filter_append_eq(filter, *ancestors);
		if (count > 1)
			str_append_c(filter, ')');
		str_append_c(filter, ')');
		if (name != NULL)
			str_append_c(filter, ')');
	}
	str_append_c(filter, ')');
	return str_c(filter);
}

const char *referral_ldap_list_filter(const char *prefix)
{
	string_t *filter = t_str_new(128);

	str_append(filter, "(&(objectClass="REFERRAL_LDAP_OBJECTCLASS")");
	str_append(filter, "("REFERRAL_LDAP_ATTR_MAILBOX"=");
	referral_ldap_filter_escape(filter, prefix);
	str_append(filter, "*))");
	return str_c(filter);
}

static void referral_ldap_disconnect(struct ldap_referral_directory *ldir)
{
	if (ldir->ld != NULL) {
		(void)ldap_unbind_ext(ldir->ld, NULL, NULL);
		ldir->ld = NULL;
	}
}

/* Milliseconds left until the deadline, at least 1 so that libldap never
   takes 0 as "no timeout". */
static unsigned int
referral_ldap_msecs_left(const struct ldap_referral_directory *ldir)
{
	struct timeval now;
	int left;

	i_gettimeofday(&now);
	left = timeval_diff_msecs(&ldir->deadline, &now);
	return left <= 0 ? 1 : (unsigned int)left;
}

static bool referral_ldap_deadline_passed(struct ldap_referral_directory *ldir)
{
	struct timeval now;

	i_gettimeofday(&now);
	return timeval_cmp(&now, &ldir->deadline) >= 0;
}

static void referral_ldap_msecs_to_timeval(unsigned int msecs,
					   struct timeval *tv_r)
{
	tv_r->tv_sec = msecs / 1000;
	tv_r->tv_usec = (msecs % 1000) * 1000;
}

/* libldap's timeouts cover connecting and waiting for the start of a
   reply, but not a TLS handshake or a reply that stops halfway: on its
   blocking socket those would wait for the peer forever. An I/O layer of
   our own, above the TCP layer and below TLS, waits for every read
   and write only until the deadline and then fails with ETIMEDOUT, which
   TLS and libldap treat as an error. (Socket receive timeouts are not
   enough: libldap's GnuTLS layer retries EAGAIN without end.) */
static int
referral_ldap_sbio_wait(Sockbuf_IO_Desc *sbiod, short events)
{
	struct ldap_referral_directory *ldir = sbiod->sbiod_pvt;
	struct pollfd pfd;
	ber_socket_t fd;
	int ret;

	if (events == POLLIN &&
	    LBER_SBIOD_CTRL_NEXT(sbiod, LBER_SB_OPT_DATA_READY, NULL) > 0) {
		/* a layer below has it buffered already */
		return 0;
	}
	if (ber_sockbuf_ctrl(sbiod->sbiod_sb, LBER_SB_OPT_GET_FD, &fd) != 1)
		return 0;
	i_zero(&pfd);
	pfd.fd = fd;
	pfd.events = events;
	do {
		ret = poll(&pfd, 1, referral_ldap_deadline_passed(ldir) ? 0 :
			   (int)referral_ldap_msecs_left(ldir));
	} while (ret < 0 && errno == EINTR);
	if (ret == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	/* errors and hang-ups are for the layer below to report */
	return 0;
}

static int referral_ldap_sbio_setup(Sockbuf_IO_Desc *sbiod, void *arg)
{
	sbiod->sbiod_pvt = arg;
	return 0;
}

static int referral_ldap_sbio_remove(Sockbuf_IO_Desc *sbiod ATTR_UNUSED)
{
	return 0;
}

static int
referral_ldap_sbio_ctrl(Sockbuf_IO_Desc *sbiod, int opt, void *arg)
{
	return LBER_SBIOD_CTRL_NEXT(sbiod, opt, arg);
}

static ber_slen_t
referral_ldap_sbio_read(Sockbuf_IO_Desc *sbiod, void *buf, ber_len_t len)
{
	if (referral_ldap_sbio_wait(sbiod, POLLIN) < 0)
		return -1;
	return LBER_SBIOD_READ_NEXT(sbiod, buf, len);
}

static ber_slen_t
referral_ldap_sbio_write(Sockbuf_IO_Desc *sbiod, void *buf, ber_len_t len)
{
	if (referral_ldap_sbio_wait(sbiod, POLLOUT) < 0)
		return -1;
	return LBER_SBIOD_WRITE_NEXT(sbiod, buf, len);
}

static Sockbuf_IO referral_ldap_sbio_deadline = {
	referral_ldap_sbio_setup,
	referral_ldap_sbio_remove,
	referral_ldap_sbio_ctrl,
	referral_ldap_sbio_read,
	referral_ldap_sbio_write,
	NULL
};

static int
referral_ldap_conncb_add(LDAP *ld ATTR_UNUSED, Sockbuf *sb,
			 LDAPURLDesc *srv ATTR_UNUSED,
			 struct sockaddr *addr ATTR_UNUSED,
			 struct ldap_conncb *ctx)
{
	/* Right after connect(), before an ldaps:// handshake. libldap adds
	   its TCP layer at the provider level after this callback: one level
	   up puts ours above it and below TLS. */
	return ber_sockbuf_add_io(sb, &referral_ldap_sbio_deadline,
				  LBER_SBIOD_LEVEL_PROVIDER + 1, ctx->lc_arg);
}

/* The layer stays until libldap frees the sockbuf: libldap calls this
   before it sends the unbind and closes TLS, which must stay bounded. */
static void
referral_ldap_conncb_del(LDAP *ld ATTR_UNUSED, Sockbuf *sb ATTR_UNUSED,
			 struct ldap_conncb *ctx ATTR_UNUSED)
{
}

/* Give the next libldap call what is left of the deadline. Each URI of the
   fail-over list gets its share for connecting, so that a list of hung
   servers cannot take longer than the whole. */
static void referral_ldap_set_timeouts(struct ldap_referral_directory *ldir)
{
	unsigned int left = referral_ldap_msecs_left(ldir);
	struct timeval tv, net_tv;

	referral_ldap_msecs_to_timeval(left, &tv);
	referral_ldap_msecs_to_timeval(I_MAX(left / ldir->uri_count, 1),
				       &net_tv);
	(void)ldap_set_option(ldir->ld, LDAP_OPT_NETWORK_TIMEOUT, &net_tv);
	(void)ldap_set_option(ldir->ld, LDAP_OPT_TIMEOUT, &tv);
}

static int
referral_ldap_set_tls_option(LDAP *ld, int option, const char *name,
			     const void *value, const char **error_r)
{
	if (ldap_set_option(ld, option, value) != LDAP_OPT_SUCCESS) {
		*error_r = t_strdup_printf("Setting the TLS option %s failed",
					   name);
		return -1;
	}
	return 0;
}

static int
referral_ldap_set_tls_options(struct ldap_referral_directory *ldir,
			      const char **error_r)
{
	const struct referral_ldap_settings *set = ldir->set;
	int require_cert =
		referral_ldap_require_cert_option(set->tls_require_cert);
	int newctx = 0;

#define TLS_FILE_OPTION(option, field) \
	(set->field == NULL || \
	 referral_ldap_set_tls_option(ldir->ld, option, \
		REFERRAL_SETTING_PREFIX"ldap_"#field, set->field, error_r) == 0)
	if (!TLS_FILE_OPTION(LDAP_OPT_X_TLS_CACERTFILE, tls_ca_cert_file) ||
	    !TLS_FILE_OPTION(LDAP_OPT_X_TLS_CACERTDIR, tls_ca_cert_dir) ||
	    !TLS_FILE_OPTION(LDAP_OPT_X_TLS_CERTFILE, tls_cert_file) ||
	    !TLS_FILE_OPTION(LDAP_OPT_X_TLS_KEYFILE, tls_key_file))
		return -1;
#undef TLS_FILE_OPTION
	if (referral_ldap_set_tls_option(ldir->ld, LDAP_OPT_X_TLS_REQUIRE_CERT,
			REFERRAL_SETTING_PREFIX"ldap_tls_require_cert",
			&require_cert, error_r) < 0)
		return -1;
	/* Apply the options above to this handle's TLS context. This is
	   where libldap reads the files, as the mail user. */
	if (ldap_set_option(ldir->ld, LDAP_OPT_X_TLS_NEWCTX,
			    &newctx) != LDAP_OPT_SUCCESS) {
		*error_r = "Creating the TLS context failed: check that the "
			"CA, certificate and key files exist and that the mail "
			"user can read them";
		return -1;
	}
	return 0;
}

static int
referral_ldap_connect(struct ldap_referral_directory *ldir,
		      const char **error_r)
{
	const struct referral_ldap_settings *set = ldir->set;
	int ret, version = LDAP_VERSION3;
	struct berval cred;

	ret = ldap_initialize(&ldir->ld, set->uris);
	if (ret != LDAP_SUCCESS) {
		ldir->ld = NULL;
		*error_r = t_strdup_printf("ldap_initialize(%s) failed: %s",
					   set->uris, ldap_err2string(ret));
		return -1;
	}
	if (ldap_set_option(ldir->ld, LDAP_OPT_PROTOCOL_VERSION,
			    &version) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ldir->ld, LDAP_OPT_REFERRALS,
			    LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ldir->ld, LDAP_OPT_CONNECT_CB,
			    &ldir->conncb) != LDAP_OPT_SUCCESS) {
		*error_r = "Setting LDAP options failed";
		referral_ldap_disconnect(ldir);
		return -1;
	}
	if ((set->tls || strstr(set->uris, "ldaps://") != NULL) &&
	    referral_ldap_set_tls_options(ldir, error_r) < 0) {
		referral_ldap_disconnect(ldir);
		return -1;
	}
	/* Connect now, each URI with its share of the deadline, so that
	   what STARTTLS and the bind may wait for is computed after the time
	   spent on servers that didn't answer. */
	referral_ldap_set_timeouts(ldir);
	ret = ldap_connect(ldir->ld);
	if (ret != LDAP_SUCCESS) {
		*error_r = t_strdup_printf("Connecting to %s failed: %s",
			set->uris, ldap_err2string(ret));
		referral_ldap_disconnect(ldir);
		return -1;
	}
	if (set->tls) {
		referral_ldap_set_timeouts(ldir);
		ret = ldap_start_tls_s(ldir->ld, NULL, NULL);
		if (ret != LDAP_SUCCESS) {
			*error_r = t_strdup_printf("STARTTLS on %s failed: %s",
				set->uris, ldap_err2string(ret));
			referral_ldap_disconnect(ldir);
			return -1;
		}
	}

	/* Always bind (anonymously when no dn is set): this is what makes
	   libldap connect, within the network timeout. */
	cred.bv_val = (char *)(set->dnpass != NULL ? set->dnpass : "");
	cred.bv_len = strlen(cred.bv_val);
	referral_ldap_set_timeouts(ldir);
	ret = ldap_sasl_bind_s(ldir->ld, set->dn != NULL ? set->dn : "",
			       LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	if (ret != LDAP_SUCCESS) {
		/* the DN is configuration, the password is never logged */
		*error_r = t_strdup_printf("Bind to %s as %s failed: %s",
			set->uris, set->dn != NULL ? set->dn : "anonymous",
			ldap_err2string(ret));
		referral_ldap_disconnect(ldir);
		return -1;
	}
	return 0;
}

/* Returns the first value of attr, or NULL. Values with NUL bytes come out
   with them replaced by 0x01, which every validator rejects, rather than
   truncated into something that might look valid. */
static const char *const *
referral_ldap_get_values(pool_t pool, LDAP *ld, LDAPMessage *msg,
			 const char *attr)
{
	struct berval **vals;
	ARRAY_TYPE(const_string) values;
	unsigned int i;

	vals = ldap_get_values_len(ld, msg, attr);
	if (vals == NULL)
		return NULL;
	p_array_init(&values, pool, 4);
	for (i = 0; vals[i] != NULL; i++) {
		char *value = p_strndup(pool, vals[i]->bv_val, vals[i]->bv_len);
		size_t j;

		for (j = 0; j < vals[i]->bv_len; j++) {
			if (value[j] == '\0')
				value[j] = '\001';
		}
		array_push_back(&values, (const char **)&value);
	}
	ldap_value_free_len(vals);
	array_append_zero(&values);
	return array_front(&values);
}

static const char *
referral_ldap_get_value(pool_t pool, LDAP *ld, LDAPMessage *msg,
			const char *attr)
{
	const char *const *values =
		referral_ldap_get_values(pool, ld, msg, attr);

	return values == NULL ? NULL : values[0];
}

static void
referral_ldap_parse_result(struct ldap_referral_directory *ldir,
			   LDAPMessage *res, pool_t pool,
			   ARRAY_TYPE(referral_directory_entry) *entries)
{
	struct referral_directory_entry *entry;
	LDAPMessage *msg;
	char *dn;

	for (msg = ldap_first_entry(ldir->ld, res); msg != NULL;
	     msg = ldap_next_entry(ldir->ld, msg)) {
		entry = array_append_space(entries);
		dn = ldap_get_dn(ldir->ld, msg);
		entry->dn = p_strdup(pool, dn != NULL ? dn : "");
		ldap_memfree(dn);
		entry->mailbox = referral_ldap_get_value(pool, ldir->ld, msg,
			REFERRAL_LDAP_ATTR_MAILBOX);
		entry->servers = referral_ldap_get_values(pool, ldir->ld, msg,
			REFERRAL_LDAP_ATTR_SERVER);
		entry->remote_name = referral_ldap_get_value(pool, ldir->ld,
			msg, REFERRAL_LDAP_ATTR_REMOTE_NAME);
		entry->scope = referral_ldap_get_value(pool, ldir->ld, msg,
			REFERRAL_LDAP_ATTR_SCOPE);
		if (entry->mailbox == NULL) {
			/* the schema makes it mandatory, but be safe */
			array_pop_back(entries);
		}
	}
}

/* Run one search to the end, page by page (RFC 2696), so that a large
   directory is never cut at the server's size limit. Entries found are
   appended to entries. Returns an LDAP result code. */
static int
referral_ldap_search_all(struct ldap_referral_directory *ldir,
			 const char *filter, pool_t pool,
			 ARRAY_TYPE(referral_directory_entry) *entries)
{
	struct berval *cookie = NULL, new_cookie;
	LDAPControl *page_ctrl, *server_ctrls[2], **resp_ctrls, *resp_ctrl;
	LDAPMessage *res;
	struct timeval tv;
	ber_int_t total;
	int ret, err;

	do {
		if (referral_ldap_deadline_passed(ldir)) {
			ret = LDAP_TIMEOUT;
			break;
		}
		if (array_count(entries) > REFERRAL_LDAP_MAX_ENTRIES) {
			ldir->too_many_entries = TRUE;
			ret = LDAP_ADMINLIMIT_EXCEEDED;
			break;
		}
		ret = ldap_create_page_control(ldir->ld,
			REFERRAL_LDAP_PAGE_SIZE, cookie, 0, &page_ctrl);
		ber_bvfree(cookie);
		cookie = NULL;
		if (ret != LDAP_SUCCESS)
			return ret;
		server_ctrls[0] = page_ctrl;
		server_ctrls[1] = NULL;

		referral_ldap_msecs_to_timeval(referral_ldap_msecs_left(ldir),
					       &tv);
		referral_ldap_set_timeouts(ldir);
		res = NULL;
		/* a listing's cost is its number of pages */
		event_inc_int(ldir->dir.request_event, "searches", 1);
		/* the size limit also stops a server that ignores paging */
		ret = ldap_search_ext_s(ldir->ld, ldir->set->base,
					referral_ldap_scope_option(ldir->set->scope),
					filter, (char **)referral_ldap_attrs,
					0, server_ctrls, NULL, &tv,
					REFERRAL_LDAP_MAX_ENTRIES + 1, &res);
		ldap_control_free(page_ctrl);
		if (ret != LDAP_SUCCESS) {
			if (ret == LDAP_SIZELIMIT_EXCEEDED && res != NULL &&
			    array_count(entries) +
			    ldap_count_entries(ldir->ld, res) >
			    REFERRAL_LDAP_MAX_ENTRIES)
				ldir->too_many_entries = TRUE;
			if (res != NULL)
				ldap_msgfree(res);
			return ret;
		}
		referral_ldap_parse_result(ldir, res, pool, entries);

		resp_ctrls = NULL;
		ret = ldap_parse_result(ldir->ld, res, &err, NULL, NULL, NULL,
					&resp_ctrls, 1);
		if (ret == LDAP_SUCCESS)
			ret = err;
		resp_ctrl = resp_ctrls == NULL ? NULL :
			ldap_control_find(LDAP_CONTROL_PAGEDRESULTS,
					  resp_ctrls, NULL);
		if (ret == LDAP_SUCCESS && resp_ctrl != NULL &&
		    ldap_parse_pageresponse_control(ldir->ld, resp_ctrl,
				&total, &new_cookie) == LDAP_SUCCESS) {
			if (new_cookie.bv_len > 0)
				cookie = ber_bvdup(&new_cookie);
			ber_memfree(new_cookie.bv_val);
		}
		ldap_controls_free(resp_ctrls);
	} while (ret == LDAP_SUCCESS && cookie != NULL);
	ber_bvfree(cookie);
	if (array_count(entries) > REFERRAL_LDAP_MAX_ENTRIES) {
		ldir->too_many_entries = TRUE;
		ret = LDAP_ADMINLIMIT_EXCEEDED;
	}
	return ret;
}

/* Search with filter on the kept connection (connecting first if there is
   none), all within one deadline. */
static int
referral_ldap_query(struct ldap_referral_directory *ldir, const char *filter,
		    pool_t pool, ARRAY_TYPE(referral_directory_entry) *entries,
		    const char **error_r)
{
	bool reused;
	int ret;

	ldir->too_many_entries = FALSE;
	i_gettimeofday(&ldir->deadline);
	timeval_add_msecs(&ldir->deadline, ldir->set->timeout_msecs);
	e_debug(ldir->dir.event, "Searching %s with filter %s",
		ldir->set->base, str_sanitize(filter, 512));

	if (ldir->ld != NULL &&
	    ldir->last_used + REFERRAL_LDAP_MAX_IDLE_SECS < ioloop_time)
		referral_ldap_disconnect(ldir);
	reused = ldir->ld != NULL;
	if (!reused && referral_ldap_connect(ldir, error_r) < 0)
		return -1;
	ret = referral_ldap_search_all(ldir, filter, pool, entries);
	if (ret == LDAP_SERVER_DOWN && reused && array_count(entries) == 0 &&
	    !referral_ldap_deadline_passed(ldir)) {
		/* The kept connection died while idle (e.g. the server was
		   restarted): try once more on a new one. */
		referral_ldap_disconnect(ldir);
		if (referral_ldap_connect(ldir, error_r) < 0)
			return -1;
		ret = referral_ldap_search_all(ldir, filter, pool, entries);
	}
	if (ret == LDAP_SERVER_DOWN && referral_ldap_deadline_passed(ldir)) {
		/* our I/O layer gave up at the deadline */
		ret = LDAP_TIMEOUT;
	}
	if (ret != LDAP_SUCCESS) {
		*error_r = t_strdup_printf("Search in %s on %s failed: %s%s",
			ldir->set->base, ldir->set->uris,
			ldir->too_many_entries ?
			t_strdup_printf("more than %u entries",
					REFERRAL_LDAP_MAX_ENTRIES) :
			ldap_err2string(ret),
			ret != LDAP_SIZELIMIT_EXCEEDED ||
			ldir->too_many_entries ? "" :
			" (paged searches must be allowed past the server's "
			"size limit for the bind DN, e.g. OpenLDAP's "
			"limits ... size.prtotal=unlimited)");
		/* whatever went wrong, start from a fresh connection */
		referral_ldap_disconnect(ldir);
		return -1;
	}
	ldir->last_used = ioloop_time;
	return 0;
}

static int
referral_ldap_lookup(struct referral_directory *dir, const char *name,
		     const char *const *ancestors, pool_t pool,
		     ARRAY_TYPE(referral_directory_entry) *entries,
		     const char **error_r)
{
	struct ldap_referral_directory *ldir =
		container_of(dir, struct ldap_referral_directory, dir);

	return referral_ldap_query(ldir,
		referral_ldap_lookup_filter(name, ancestors),
		pool, entries, error_r);
}

static int
referral_ldap_list(struct referral_directory *dir, const char *prefix,
		   pool_t pool, ARRAY_TYPE(referral_directory_entry) *entries,
		   const char **error_r)
{
	struct ldap_referral_directory *ldir =
		container_of(dir, struct ldap_referral_directory, dir);

	return referral_ldap_query(ldir, referral_ldap_list_filter(prefix),
				   pool, entries, error_r);
}

static void referral_ldap_deinit(struct referral_directory *dir)
{
	struct ldap_referral_directory *ldir =
		container_of(dir, struct ldap_referral_directory, dir);

	referral_ldap_disconnect(ldir);
	pool_unref(&ldir->set_pool);
	i_free(ldir);
}

static int
referral_ldap_init(const struct referral_directory_params *params,
		   struct referral_directory **dir_r, const char **error_r)
{
	const struct referral_ldap_settings *set;
	struct ldap_referral_directory *ldir;
	pool_t pool;

	pool = pool_alloconly_create("referral ldap settings", 1024);
	if (referral_ldap_settings_parse(pool, params->lookup,
					 params->lookup_context,
					 &set, error_r) < 0) {
		/* error_r is in the data stack */
		pool_unref(&pool);
		return -1;
	}
	ldir = i_new(struct ldap_referral_directory, 1);
	ldir->dir.name = "ldap";
	ldir->dir.v.deinit = referral_ldap_deinit;
	ldir->dir.v.lookup = referral_ldap_lookup;
	ldir->dir.v.list = referral_ldap_list;
	ldir->set_pool = pool;
	ldir->set = set;
	ldir->uri_count = I_MAX(str_array_length(
		t_strsplit_spaces(set->uris, " ,")), 1);
	ldir->conncb.lc_add = referral_ldap_conncb_add;
	ldir->conncb.lc_del = referral_ldap_conncb_del;
	ldir->conncb.lc_arg = ldir;
	*dir_r = &ldir->dir;
	return 0;
}

const struct referral_directory_backend referral_directory_backend_ldap = {
	.name = "ldap",
	.init = referral_ldap_init,
};

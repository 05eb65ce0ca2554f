/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* Serving remote mailboxes through this server, for clients that do not
   follow referrals (README, "Proxying for clients that do not follow
   referrals").

   The mechanism is lib-storage's own: a mailbox the directory places on
   another server is allocated in a namespace of Dovecot's imapc storage
   that talks to that server. Such a namespace is created in the session
   when a remote mailbox of the server is first used (so a session that
   never touches one opens no connection), kept for the session (one
   connection per server, reused) and never added to the user's namespace
   list: clients see the name in the namespace they used ("Public/Sales"),
   and every command that works on a mailbox works on the remote one as
   lib-storage does it for any storage: FETCH, STORE, SEARCH, IDLE,
   APPEND, and COPY and MOVE between storages by fetching and saving, with
   the source expunged only after the destination committed.

   The switch happens in mailbox_alloc() of the session's storages (see
   referral_proxy_storage_mailbox_alloc()): a remote name is allocated in
   its server's proxy namespace. The remote name (imapReferralRemoteName,
   subtrees) is what the proxy list's get_storage_name returns, so imapc
   sends the remote server its own name for the mailbox. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "str-sanitize.h"
#include "net.h"
#include "ioloop.h"
#include "settings-parser.h"
#include "imap-utf7.h"
#include "imap-arg.h"
#include "imap-util.h"
#include "strnum.h"
#include "mail-index.h"
#include "mail-namespace.h"
#include "mailbox-tree.h"
#include "mail-storage-settings.h"
#include "imapc-settings.h"
#include "imapc-client-private.h"
#include "imapc-storage.h"
#include "referral-lookup.h"
#include "referral-server.h"
#include "referral-plugin.h"
#include "referral-proxy.h"
#include "referral-imap-arg.h"

/* imap FETCHes this many messages ahead: imapc then pipelines its
   requests instead of waiting for each message in turn. */
#define REFERRAL_PROXY_PREFETCH_COUNT 100

/* A selected remote mailbox unused this long is checked before the next
   command on it (referral_proxy_mailbox_lost()). */
#define REFERRAL_PROXY_CHECK_IDLE_SECS 1

#define REFERRAL_PROXY_LIST_CONTEXT(obj) \
	MODULE_CONTEXT(obj, referral_proxy_list_module)
#define REFERRAL_PROXY_STORAGE_CONTEXT(obj) \
	MODULE_CONTEXT_REQUIRE(obj, referral_proxy_storage_module)
#define REFERRAL_PROXY_CONTEXT(obj) \
	MODULE_CONTEXT(obj, referral_proxy_storage_module)
#define REFERRAL_PROXY_CONTEXT_REQUIRE(obj) \
	MODULE_CONTEXT_REQUIRE(obj, referral_proxy_storage_module)

/* One remote server's namespace in this session. */
struct referral_proxy_conn {
	/* "HOST[:PORT]", for logs and errors */
	const char *server;
	/* the namespace where referrals apply whose names it serves */
	struct mail_namespace *home_ns;
	struct mail_namespace *ns;
};

struct referral_proxy_state {
	const struct referral_proxy_settings *set;
	/* the session was opened by another server's proxy */
	bool proxied_session;
	/* referral_proxy_conn pointers, in creation order */
	ARRAY(struct referral_proxy_conn *) conns;
	/* the settings copied for each server tried, kept for the session
	   (referral_proxy_settings_for()): a server that is down is tried
	   again at every use, and each try must not cost another copy */
	ARRAY(struct referral_proxy_server_set) server_sets;
	/* the namespace being created (its list gets our vfuncs) */
	struct referral_proxy_conn *creating;

	/* What mailbox_alloc() decided for the mailbox it is allocating in
	   a proxy namespace: its storage name there and what the proxy
	   mailbox needs to know. In mailbox_alloc()'s data stack frame. */
	const char *pending_vname;
	const char *pending_storage_name;
	struct mailbox_list *pending_home_list;
	bool pending_own_entry;
	/* referral_proxy_route() just found local_vname of local_list
	   local: imap's SELECT of it, which allocates it next, need not
	   ask again (one decision per command) */
	struct mailbox_list *local_list;
	char *local_vname;
	/* the last mailbox_alloc() could not reach any of the servers of
	   failed_vname: why */
	char *failed_vname;
	char *failed_error;
};

struct referral_proxy_server_set {
	const char *server;
	void *user_set;
};

/* A storage of a proxying session. */
struct referral_proxy_storage {
	union mail_storage_module_context module_ctx;
	struct mailbox *(*next_mailbox_alloc)(struct mail_storage *storage,
					      struct mailbox_list *list,
					      const char *vname,
					      enum mailbox_flags flags);
};

/* A proxy namespace's list. */
struct referral_proxy_list {
	union mailbox_list_module_context module_ctx;
	struct referral_proxy_conn *conn;
	const char *(*next_get_storage_name)(struct mailbox_list *list,
					     const char *vname);
};

struct referral_proxy_mailbox {
	union mailbox_module_context module_ctx;
	struct referral_proxy_conn *conn;
	/* the list of the namespace where the client named the mailbox:
	   subscriptions stay there */
	struct mailbox_list *home_list;
	/* the mailbox has a directory entry of its own */
	bool own_entry;
	/* when its connection was last seen working */
	time_t last_checked;
	/* a THREAD sent to the remote server is waiting for its reply:
	   the thread lists go here (UIDs); NULL otherwise */
	string_t *thread_reply;
	bool thread_registered;
	bool thread_uids_to_seqs;
	/* the remote server sent PERMANENTFLAGS (imapc keeps them) */
	bool permanent_flags_known;
};

static MODULE_CONTEXT_DEFINE_INIT(referral_proxy_list_module,
				  &mailbox_list_module_register);
static MODULE_CONTEXT_DEFINE_INIT(referral_proxy_storage_module,
				  &mail_storage_module_register);
static MODULE_CONTEXT_DEFINE_INIT(referral_proxy_mail_module,
				  &mail_module_register);

static void referral_proxy_clear_local(struct referral_proxy_state *proxy)
{
	proxy->local_list = NULL;
	i_free(proxy->local_vname);
}

static void referral_proxy_clear_failure(struct referral_proxy_state *proxy)
{
	i_free(proxy->failed_vname);
	i_free(proxy->failed_error);
}

int referral_proxy_user_init(struct referral_user *ruser,
			     referral_setting_lookup_t *lookup,
			     void *context, const char **error_r)
{
	struct mail_user *user = ruser->user;
	struct referral_proxy_state *proxy;

	proxy = p_new(user->pool, struct referral_proxy_state, 1);
	if (referral_proxy_settings_parse(user->pool, lookup, context,
					  &proxy->set, error_r) < 0)
		return -1;
	/* A proxy logs in as "user*master" (or with the master name as
	   the authorization identity): Dovecot then has the master's name
	   as the session's auth_user. Such a session only ever serves
	   this server's own mailboxes. */
	proxy->proxied_session = proxy->set->master_user[0] != '\0' &&
		user->auth_user != NULL &&
		strcmp(user->auth_user, proxy->set->master_user) == 0 &&
		strcmp(user->auth_user, user->username) != 0;
	if (proxy->proxied_session)
		e_debug(ruser->event, "Session opened by a proxy (master "
			"user %s): never proxied nor referred further",
			proxy->set->master_user);
	p_array_init(&proxy->conns, user->pool, 4);
	p_array_init(&proxy->server_sets, user->pool, 4);
	ruser->proxy = proxy;
	return 0;
}

void referral_proxy_user_deinit(struct referral_user *ruser)
{
	struct referral_proxy_conn *conn;

	if (ruser->proxy == NULL)
		return;
	/* the imap client closed its mailboxes before the user goes */
	array_foreach_elem(&ruser->proxy->conns, conn)
		mail_namespace_destroy(conn->ns);
	array_clear(&ruser->proxy->conns);
	referral_proxy_clear_failure(ruser->proxy);
	referral_proxy_clear_local(ruser->proxy);
}

bool referral_proxy_session_is_proxied(struct referral_user *ruser)
{
	return ruser->proxy != NULL && ruser->proxy->proxied_session;
}

bool referral_proxy_active(struct referral_user *ruser)
{
	const struct referral_proxy_state *proxy = ruser->proxy;

	if (proxy == NULL || proxy->proxied_session)
		return FALSE;
	switch (proxy->set->policy) {
	case REFERRAL_PROXY_NO:
		return FALSE;
	case REFERRAL_PROXY_UNAWARE:
		return !ruser->aware;
	case REFERRAL_PROXY_ALL:
		return TRUE;
	}
	i_unreached();
}

bool referral_proxy_list_is_ours(struct mailbox_list *list)
{
	struct referral_user *ruser = REFERRAL_USER_CONTEXT(list->ns->user);
	struct referral_proxy_list *plist = REFERRAL_PROXY_LIST_CONTEXT(list);

	return (plist != NULL && plist->conn != NULL) ||
		(ruser != NULL && ruser->proxy != NULL &&
		 ruser->proxy->creating != NULL &&
		 ruser->proxy->creating->ns == list->ns);
}

/* Get the name on the remote server of vname, a mailbox of conn's home
   namespace, in IMAP's modified UTF-7 (imapc's storage names are not
   UTF-8), and whether it has a directory entry of its own. Returns FALSE
   if the directory does not place it on a remote server (now). */
static bool
referral_proxy_remote_name(struct referral_user *ruser,
			   struct referral_proxy_conn *conn,
			   const char *vname, const char **storage_name_r,
			   bool *own_entry_r)
{
	struct referral_target target;
	const char *error;
	string_t *name;

	if (referral_lookup(ruser, conn->home_ns->prefix, vname,
			    mail_namespace_get_sep(conn->home_ns),
			    &target, &error) <= 0)
		return FALSE;
	name = t_str_new(64);
	if (imap_utf8_to_utf7(target.remote_name, name) < 0)
		i_unreached(); /* the directory's names are valid UTF-8 */
	*storage_name_r = str_c(name);
	*own_entry_r = target.own_entry;
	return TRUE;
}

/* The name imapc sends the remote server for vname: the remote name that
   get_storage found. lib-storage also allocates mailboxes in the proxy
   list directly (e.g. the source of a MOVE to another storage, opened
   again): then the directory is asked here. */
static const char *
referral_proxy_list_get_storage_name(struct mailbox_list *list,
				     const char *vname)
{
	struct referral_proxy_list *plist = REFERRAL_PROXY_LIST_CONTEXT(list);
	struct referral_user *ruser =
		REFERRAL_USER_CONTEXT_REQUIRE(list->ns->user);
	struct referral_proxy_state *proxy = ruser->proxy;
	const char *storage_name;
	bool own_entry;

	if (proxy->pending_vname != NULL &&
	    strcmp(proxy->pending_vname, vname) == 0)
		return proxy->pending_storage_name;
	if (referral_proxy_remote_name(ruser, plist->conn, vname,
				       &storage_name, &own_entry)) {
		proxy->pending_vname = t_strdup(vname);
		proxy->pending_storage_name = storage_name;
		proxy->pending_home_list = plist->conn->home_ns->list;
		proxy->pending_own_entry = own_entry;
		return storage_name;
	}
	return plist->next_get_storage_name(list, vname);
}

/* The subscriptions of the proxy list are the home namespace's (which is
   where SUBSCRIBE records them): lib-storage asks the mailbox's own list
   whether it is subscribed before it (un)subscribes, and imapc would ask
   the remote server. */
static int
referral_proxy_list_subscriptions_refresh(struct mailbox_list *src_list,
					  struct mailbox_list *dest_list)
{
	struct referral_proxy_list *plist = REFERRAL_PROXY_LIST_CONTEXT(src_list);
	struct mailbox_list *home = plist->conn->home_ns->list;

	if (mailbox_list_iter_subscriptions_refresh(home) < 0) {
		enum mail_error error;
		const char *text = mailbox_list_get_last_error(home, &error);

		mailbox_list_set_error(dest_list, error, text);
		return -1;
	}
	if (dest_list->subscriptions != NULL)
		mailbox_tree_deinit(&dest_list->subscriptions);
	dest_list->subscriptions = mailbox_tree_dup(home->subscriptions);
	return 0;
}

static void referral_proxy_list_init(struct mailbox_list *list,
				     struct referral_proxy_conn *conn)
{
	struct referral_proxy_list *plist;

	/* Written into the table lib-storage calls, not through vlast:
	   a plugin that hooked this list before us (acl does) and does
	   not override get_storage_name would never call ours. */
	plist = p_new(list->pool, struct referral_proxy_list, 1);
	plist->conn = conn;
	plist->next_get_storage_name = list->v.get_storage_name;
	list->v.get_storage_name = referral_proxy_list_get_storage_name;
	list->v.subscriptions_refresh =
		referral_proxy_list_subscriptions_refresh;
	MODULE_CONTEXT_SET(list, referral_proxy_list_module, plist);
}

/* Copy the user's settings, pointed at server: imapc reads its settings
   from the namespace's user_set, so each remote server gets a copy of its
   own. Returns the copy, or NULL with error_r. */
static void *
referral_proxy_settings_for(struct referral_user *ruser,
			    const struct referral_host *server,
			    const char **error_r)
{
	struct mail_user *user = ruser->user;
	const struct referral_proxy_settings *set = ruser->proxy->set;
	struct imapc_settings *imapc_set;
	struct mail_storage_settings *mail_set;
	struct referral_proxy_server_set *server_set;
	const char *name = referral_host_to_string(server), *error;
	void *user_set;

	array_foreach_modifiable(&ruser->proxy->server_sets, server_set) {
		if (strcmp(server_set->server, name) == 0)
			return server_set->user_set;
	}
	user_set = settings_dup(user->set_info, user->set, user->pool);
	imapc_set = (void *)mail_user_set_get_driver_settings(user->set_info,
						user_set, "imapc");
	mail_set = (void *)mail_user_set_get_driver_settings(user->set_info,
						user_set,
						MAIL_STORAGE_SET_DRIVER_NAME);
	if (imapc_set == NULL || mail_set == NULL) {
		*error_r = "imapc storage settings not available";
		return NULL;
	}
	imapc_set->imapc_host = server->host.ip.family != 0 ?
		p_strdup(user->pool, net_ip2addr(&server->host.ip)) :
		p_strdup(user->pool, server->host.name);
	imapc_set->imapc_port = server->port;
	/* the remote session is the user's: with a master user it logs in
	   as "user*master", else with the user's own password */
	imapc_set->imapc_user = p_strdup(user->pool, user->username);
	imapc_set->imapc_master_user = set->master_user;
	imapc_set->imapc_password = set->password;
	imapc_set->imapc_ssl = set->ssl[0] == '\0' ? "no" : set->ssl;
	imapc_set->imapc_ssl_verify = set->ssl_verify;
	imapc_set->imapc_features = set->features;
	imapc_set->imapc_list_prefix = "";
	imapc_set->imapc_cmd_timeout = (set->timeout_msecs + 999) / 1000;
	/* a server that is down fails the command, once */
	imapc_set->imapc_connection_retry_count = 1;
	imapc_set->imapc_rawlog_dir = "";
	if (mail_set->mail_prefetch_count < REFERRAL_PROXY_PREFETCH_COUNT)
		mail_set->mail_prefetch_count = REFERRAL_PROXY_PREFETCH_COUNT;
	/* the parsed forms of the settings (imapc features, lock methods)
	   are not settings: settings_dup() left them zero */
	if (!settings_check(user->set_info, user->pool, user_set, &error)) {
		*error_r = t_strdup_printf("Invalid settings: %s", error);
		return NULL;
	}
	server_set = array_append_space(&ruser->proxy->server_sets);
	server_set->server = p_strdup(user->pool, name);
	server_set->user_set = user_set;
	return user_set;
}

/* Create the namespace through which this session reaches server for the
   names of home_ns, and wait until it has logged in. Returns it, or NULL
   with error_r (the server is unreachable or refused the login). */
static struct referral_proxy_conn *
referral_proxy_conn_create(struct referral_user *ruser,
			   struct mail_namespace *home_ns,
			   const struct referral_host *server,
			   const char **error_r)
{
	struct mail_user *user = ruser->user;
	struct referral_proxy_state *proxy = ruser->proxy;
	struct referral_proxy_conn *conn;
	struct mail_namespace_settings *ns_set, *unexpanded_ns_set;
	struct mail_namespace *ns;
	struct imapc_storage *istorage;
	enum imapc_capability caps;
	void *user_set;
	const char *error;
	int ret;

	if (proxy->set->password[0] == '\0') {
		*error_r = REFERRAL_SETTING_PREFIX"proxy_password is not set";
		return NULL;
	}
	user_set = referral_proxy_settings_for(ruser, server, error_r);
	if (user_set == NULL)
		return NULL;

	/* private: the remote server checks the user's rights, so a local
	   acl plugin must not add its own (the owner has them all) */
	ns_set = p_new(user->pool, struct mail_namespace_settings, 1);
	ns_set->name = "";
	ns_set->type = "private";
	ns_set->separator = p_strdup_printf(user->pool, "%c",
					    mail_namespace_get_sep(home_ns));
	ns_set->prefix = home_ns->prefix;
	ns_set->location = "imapc::INDEX=MEMORY";
	ns_set->list = "no";
	ns_set->hidden = TRUE;
	ns_set->subscriptions = FALSE;
	ns_set->disabled = FALSE;
	ns_set->ignore_on_failure = FALSE;
	ns_set->user_set = user_set;
	/* lib-storage reads paths from the unexpanded location too: the
	   same, marked as a value without variables */
	unexpanded_ns_set = p_new(user->pool, struct mail_namespace_settings, 1);
	*unexpanded_ns_set = *ns_set;
	unexpanded_ns_set->location = SETTING_STRVAR_UNEXPANDED"imapc::INDEX=MEMORY";
	if (mail_namespace_alloc(user, user_set, ns_set, unexpanded_ns_set,
				 &ns, &error) < 0) {
		*error_r = t_strdup_printf("Cannot create namespace: %s",
					   error);
		return NULL;
	}
	/* SUBSCRIPTIONS: lib-storage then asks this namespace's own list
	   about them, which answers from the home namespace's */
	ns->flags |= NAMESPACE_FLAG_NOQUOTA | NAMESPACE_FLAG_NOACL |
		NAMESPACE_FLAG_SUBSCRIPTIONS;

	conn = p_new(user->pool, struct referral_proxy_conn, 1);
	conn->server = p_strdup(user->pool, referral_host_to_string(server));
	conn->home_ns = home_ns;
	conn->ns = ns;
	proxy->creating = conn;
	ret = mail_storage_create(ns, NULL, MAIL_STORAGE_FLAG_NO_AUTOVERIFY,
				  &error);
	proxy->creating = NULL;
	if (ret < 0) {
		*error_r = t_strdup_printf("Cannot create storage: %s", error);
		mail_namespace_destroy(ns);
		return NULL;
	}
	referral_proxy_list_init(ns->list, conn);
	ns->flags |= NAMESPACE_FLAG_USABLE;

	/* imapc_storage gives its connections imapc's fixed connect and
	   login deadline (30 s); ours bounds every later (re)connection.
	   The first one is already under way with imapc's. */
	istorage = IMAPC_STORAGE(ns->storage);
	istorage->client->client->set.connect_timeout_msecs =
		proxy->set->timeout_msecs;

	/* wait for the login: a server that is down or refuses us is
	   found here, while another replica can still be tried */
	if (imapc_client_get_capabilities(istorage->client->client,
					  &caps) < 0) {
		*error_r = istorage->client->auth_failed_reason != NULL ?
			t_strdup_printf("Login failed: %s",
					istorage->client->auth_failed_reason) :
			"Cannot connect";
		mail_namespace_destroy(ns);
		return NULL;
	}
	e_debug(ruser->event, "Proxying to %s for namespace '%s'",
		conn->server, home_ns->prefix);
	array_push_back(&proxy->conns, &conn);
	return conn;
}

/* Returns the session's connection to the first of target's servers that
   can be reached, creating it if needed; NULL with error_r if none. */
static struct referral_proxy_conn *
referral_proxy_conn_get(struct referral_user *ruser,
			struct mail_namespace *home_ns,
			const struct referral_target *target,
			const char **error_r)
{
	struct referral_proxy_conn *conn, *const *connp;
	const struct referral_server *server;
	string_t *errors = t_str_new(128);
	const char *name, *error = NULL;

	array_foreach(&target->servers, server) {
		name = referral_host_to_string(&server->addr);
		conn = NULL;
		array_foreach(&ruser->proxy->conns, connp) {
			if ((*connp)->home_ns == home_ns &&
			    strcmp((*connp)->server, name) == 0) {
				conn = *connp;
				break;
			}
		}
		if (conn != NULL)
			return conn;
		conn = referral_proxy_conn_create(ruser, home_ns,
						  &server->addr, &error);
		if (conn != NULL)
			return conn;
		/* the reason may quote the remote server's words */
		e_warning(ruser->event, "Remote server %s: %s", name,
			  str_sanitize(error, 256));
		if (str_len(errors) > 0)
			str_append(errors, ", ");
		str_append(errors, name);
	}
	/* the reasons are in the log, as for a server lost later */
	*error_r = array_count(&target->servers) == 1 ?
		t_strdup_printf("Remote server %s is unavailable",
				str_c(errors)) :
		t_strdup_printf("Remote servers %s are unavailable",
				str_c(errors));
	return NULL;
}

/* mail_storage's mailbox_alloc() of a storage of this session: a remote
   mailbox of a proxied session is allocated in its server's proxy
   namespace instead (the mailbox returned belongs to that storage and
   list; mailbox_alloc() takes both from it). This is done here, not in
   the list's get_storage: other callers of mailbox_list_get_storage()
   expect a name's storage to be in the list's own namespace (the acl
   plugin asserts it). */
static struct mailbox *
referral_proxy_storage_mailbox_alloc(struct mail_storage *storage,
				     struct mailbox_list *list,
				     const char *vname,
				     enum mailbox_flags flags)
{
	struct referral_proxy_storage *pstorage =
		REFERRAL_PROXY_STORAGE_CONTEXT(storage);
	struct referral_user *ruser = REFERRAL_USER_CONTEXT(list->ns->user);
	struct referral_proxy_state *proxy;
	struct referral_proxy_conn *conn;
	struct referral_target target;
	struct mail_storage *remote_storage;
	const char *error;
	string_t *storage_name;
	int ret;

	if (ruser == NULL || ruser->proxy == NULL ||
	    REFERRAL_LIST_CONTEXT(list) == NULL ||
	    !referral_proxy_active(ruser))
		return pstorage->next_mailbox_alloc(storage, list, vname, flags);
	proxy = ruser->proxy;
	/* a mailbox allocated again (e.g. re-opened) must not pick up a
	   name or failure decided for another */
	proxy->pending_vname = NULL;
	referral_proxy_clear_failure(proxy);

	if (proxy->local_list == list &&
	    strcmp(proxy->local_vname, vname) == 0)
		ret = 0;
	else {
		ret = referral_lookup(ruser, list->ns->prefix, vname,
				      mail_namespace_get_sep(list->ns),
				      &target, &error);
	}
	referral_proxy_clear_local(proxy);
	if (ret <= 0) {
		/* local, or unknown: the mailbox hooks of the namespace
		   decide (and fail with UNAVAILABLE) as without the proxy */
		return pstorage->next_mailbox_alloc(storage, list, vname, flags);
	}
	conn = referral_proxy_conn_get(ruser, list->ns, &target, &error);
	if (conn == NULL) {
		/* the mailbox is allocated here, and the referral hooks fail
		   it with the reason at its first use (referral-mailbox.c) */
		referral_proxy_clear_failure(proxy);
		proxy->failed_vname = i_strdup(vname);
		proxy->failed_error = i_strdup(error);
		return pstorage->next_mailbox_alloc(storage, list, vname, flags);
	}
	storage_name = t_str_new(64);
	if (imap_utf8_to_utf7(target.remote_name, storage_name) < 0)
		i_unreached(); /* the directory's names are valid UTF-8 */
	proxy->pending_vname = t_strdup(vname);
	proxy->pending_storage_name = str_c(storage_name);
	proxy->pending_home_list = list;
	proxy->pending_own_entry = target.own_entry;
	remote_storage = conn->ns->storage;
	return remote_storage->v.mailbox_alloc(remote_storage, conn->ns->list,
					       vname, flags);
}

void referral_proxy_storage_created(struct mail_storage *storage)
{
	struct referral_user *ruser = REFERRAL_USER_CONTEXT(storage->user);
	struct referral_proxy_storage *pstorage;

	if (ruser == NULL || ruser->proxy == NULL ||
	    ruser->proxy->set->policy == REFERRAL_PROXY_NO ||
	    ruser->proxy->creating != NULL)
		return;
	/* written into the table mailbox_alloc() calls, not through vlast:
	   see referral_proxy_list_init() */
	pstorage = p_new(storage->pool, struct referral_proxy_storage, 1);
	pstorage->next_mailbox_alloc = storage->v.mailbox_alloc;
	storage->v.mailbox_alloc = referral_proxy_storage_mailbox_alloc;
	MODULE_CONTEXT_SET(storage, referral_proxy_storage_module, pstorage);
}

void referral_proxy_user_storages_init(struct mail_user *user)
{
	struct mail_namespace *ns;
	struct mail_storage *storage;

	for (ns = user->namespaces; ns != NULL; ns = ns->next) {
		array_foreach_elem(&ns->all_storages, storage) {
			/* namespaces may share a storage */
			if (REFERRAL_PROXY_CONTEXT(storage) == NULL)
				referral_proxy_storage_created(storage);
		}
	}
}

/* Errors of the remote server reach the client as UNAVAILABLE: temporary
   failures (a lost connection, a timeout) would otherwise be SERVERBUG,
   which tells the client the fault is ours to fix. */
static void referral_proxy_map_error(struct mailbox *box)
{
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT_REQUIRE(box);
	enum mail_error error;
	const char *text, *p;
	size_t len;

	text = mailbox_get_last_error(box, &error);
	if (box->storage->last_error_is_internal ||
	    str_begins(text, MAIL_ERRSTR_CRITICAL_MSG)) {
		if (error != MAIL_ERROR_TEMP)
			return;
		/* the cause (refused, timed out, ...) is in the log, from
		   imapc */
		mail_storage_set_error(box->storage, MAIL_ERROR_UNAVAILABLE,
			t_strdup_printf("Remote server %s is unavailable",
					pbox->conn->server));
		return;
	}
	/* The remote server's own words (imapc took them from its reply,
	   response code apart), without the timing Dovecot appends to its
	   replies: ours follows. */
	p = strrchr(text, '(');
	len = strlen(text);
	if (p != NULL && p > text && p[-1] == ' ' && len > 7 &&
	    (strcmp(text + len - 6, " secs)") == 0 ||
	     strcmp(text + len - 7, " secs).") == 0))
		text = t_strdup_until(text, p - 1);
	/* one line from the remote server, but no more trusted than that:
	   no control characters reach the client, and not at any length */
	text = str_sanitize(text, 256);
	if (error == MAIL_ERROR_TEMP) {
		text = t_strdup_printf("Remote server %s: %s",
				       pbox->conn->server, text);
		error = MAIL_ERROR_UNAVAILABLE;
	}
	mail_storage_set_error(box->storage, error, text);
}

static int referral_proxy_mailbox_open(struct mailbox *box)
{
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT_REQUIRE(box);

	if (pbox->module_ctx.super.open(box) < 0) {
		referral_proxy_map_error(box);
		return -1;
	}
	return 0;
}

static int
referral_proxy_mailbox_get_status(struct mailbox *box,
				  enum mailbox_status_items items,
				  struct mailbox_status *status_r)
{
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT_REQUIRE(box);

	if (pbox->module_ctx.super.get_status(box, items, status_r) < 0) {
		referral_proxy_map_error(box);
		return -1;
	}
	return 0;
}

static int
referral_proxy_mailbox_create(struct mailbox *box,
			      const struct mailbox_update *update,
			      bool directory)
{
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT_REQUIRE(box);

	if (pbox->module_ctx.super.create_box(box, update, directory) < 0) {
		referral_proxy_map_error(box);
		return -1;
	}
	return 0;
}

static int referral_proxy_mailbox_delete(struct mailbox *box)
{
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT_REQUIRE(box);

	if (pbox->module_ctx.super.delete_box(box) < 0) {
		referral_proxy_map_error(box);
		return -1;
	}
	return 0;
}

static int
referral_proxy_mailbox_rename(struct mailbox *src, struct mailbox *dest)
{
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT_REQUIRE(src);
	struct referral_proxy_mailbox *dest_pbox = REFERRAL_PROXY_CONTEXT(dest);

	if (pbox->own_entry) {
		/* the directory would go on naming the old name */
		mail_storage_set_error(src->storage, MAIL_ERROR_NOTPOSSIBLE,
			"Mailbox is published in the referral directory; "
			"an administrator must move its directory entry");
		return -1;
	}
	if (dest_pbox == NULL || dest_pbox->conn != pbox->conn) {
		mail_storage_set_error(src->storage, MAIL_ERROR_NOTPOSSIBLE,
				       "Cannot rename across servers");
		return -1;
	}
	if (pbox->module_ctx.super.rename_box(src, dest) < 0) {
		referral_proxy_map_error(src);
		return -1;
	}
	return 0;
}

/* Subscriptions of remote mailboxes stay on the home server, as for
   sessions that are referred: LSUB and RLSUB list them from there. Where
   the namespace keeps none (subscriptions = no), the namespace that
   keeps them for its names does, under the full name, as lib-storage
   does for local mailboxes. */
static int referral_proxy_mailbox_set_subscribed(struct mailbox *box, bool set)
{
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT_REQUIRE(box);
	struct mailbox_list *list = pbox->home_list;
	struct mail_namespace *ns;
	const char *name;

	name = mailbox_list_get_storage_name(list, box->vname);
	if ((list->ns->flags & NAMESPACE_FLAG_SUBSCRIPTIONS) == 0) {
		ns = mail_namespace_find_subscribable(
			box->storage->user->namespaces, box->vname);
		name = t_strconcat(list->ns->prefix, name, NULL);
		if (ns == NULL || !str_begins(name, ns->prefix)) {
			mail_storage_set_error(box->storage,
				MAIL_ERROR_NOTPOSSIBLE,
				"This namespace has no subscriptions");
			return -1;
		}
		name += strlen(ns->prefix);
		list = ns->list;
	}
	if (mailbox_list_set_subscribed(list, name, set) < 0) {
		mail_storage_copy_list_error(box->storage, list);
		return -1;
	}
	return 0;
}

static int
referral_proxy_transaction_commit(struct mailbox_transaction_context *t,
				  struct mail_transaction_commit_changes *changes_r)
{
	struct mailbox *box = t->box;
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT_REQUIRE(box);

	if (pbox->module_ctx.super.transaction_commit(t, changes_r) < 0) {
		referral_proxy_map_error(box);
		return -1;
	}
	return 0;
}

static int
referral_proxy_save_begin(struct mail_save_context *ctx, struct istream *input)
{
	struct mailbox *box = ctx->transaction->box;
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT_REQUIRE(box);

	if (pbox->module_ctx.super.save_begin(ctx, input) < 0) {
		referral_proxy_map_error(box);
		return -1;
	}
	return 0;
}

static int referral_proxy_save_continue(struct mail_save_context *ctx)
{
	struct mailbox *box = ctx->transaction->box;
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT_REQUIRE(box);

	if (pbox->module_ctx.super.save_continue(ctx) < 0) {
		referral_proxy_map_error(box);
		return -1;
	}
	return 0;
}

static int referral_proxy_save_finish(struct mail_save_context *ctx)
{
	struct mailbox *box = ctx->transaction->box;
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT_REQUIRE(box);

	if (pbox->module_ctx.super.save_finish(ctx) < 0) {
		referral_proxy_map_error(box);
		return -1;
	}
	return 0;
}

static int referral_proxy_copy(struct mail_save_context *ctx, struct mail *mail)
{
	struct mailbox *box = ctx->transaction->box;
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT_REQUIRE(box);

	if (pbox->module_ctx.super.copy(ctx, mail) < 0) {
		referral_proxy_map_error(box);
		return -1;
	}
	return 0;
}

/* imapc learns of changes on the remote server from IDLE, which it starts
   a moment after each command; a sync that is not FAST (NOOP, CHECK,
   SELECT, the end of IDLE, after EXPUNGE or MOVE) asks the remote server
   itself, so that the client sees every change made there before the
   command ends. */
static struct mailbox_sync_context *
referral_proxy_sync_init(struct mailbox *box, enum mailbox_sync_flags flags)
{
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT_REQUIRE(box);

	if ((flags & MAILBOX_SYNC_FLAG_FAST) == 0)
		flags |= MAILBOX_SYNC_FLAG_FULL_READ;
	return pbox->module_ctx.super.sync_init(box, flags);
}

/* imapc calls a mailbox inconsistent as soon as its connection is gone,
   and imap then ends the whole session ("IMAP session state is
   inconsistent"). A remote server going down must not take the session
   with it: the mailbox's commands fail (UNAVAILABLE) until the client
   selects it again, and everything else goes on. Only a view that is
   inconsistent in itself (e.g. the remote UIDVALIDITY changed) is
   reported. */
static bool referral_proxy_is_inconsistent(struct mailbox *box)
{
	return box->view != NULL && mail_index_view_is_inconsistent(box->view);
}

struct mailbox_list *
referral_proxy_subtree_list(struct referral_user *ruser,
			    struct mail_namespace *home_ns, const char *vname,
			    const char **remote_name_r)
{
	struct referral_proxy_conn *conn;
	struct referral_target target;
	const char *error;

	if (referral_lookup(ruser, home_ns->prefix, vname,
			    mail_namespace_get_sep(home_ns),
			    &target, &error) <= 0)
		return NULL;
	conn = referral_proxy_conn_get(ruser, home_ns, &target, &error);
	if (conn == NULL)
		return NULL;
	*remote_name_r = target.remote_name;
	return conn->ns->list;
}

const char *referral_proxy_take_failure(struct mailbox *box)
{
	struct referral_user *ruser =
		REFERRAL_USER_CONTEXT_REQUIRE(box->storage->user);
	struct referral_proxy_state *proxy = ruser->proxy;
	const char *error;

	if (proxy == NULL || proxy->failed_vname == NULL ||
	    strcmp(proxy->failed_vname, box->vname) != 0)
		return NULL;
	error = p_strdup(box->pool, proxy->failed_error);
	referral_proxy_clear_failure(proxy);
	return error;
}

bool referral_proxy_mailbox_lost(struct mailbox *box, const char **error_r)
{
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT(box);
	struct imapc_mailbox *mbox;

	if (pbox == NULL || !box->opened)
		return FALSE;
	mbox = IMAPC_MAILBOX(box);
	if (mbox->client_box == NULL)
		return FALSE;
	/* Between commands nothing reads the connection: a server that
	   went away is found by the next command sent to it. After a
	   pause, ask first (one round trip), while the client's command
	   can still get a clean answer; if the server is back, imapc
	   reconnects and selects the mailbox again here. */
	if (ioloop_time - pbox->last_checked >= REFERRAL_PROXY_CHECK_IDLE_SECS ||
	    !imapc_client_mailbox_is_opened(mbox->client_box))
		imapc_mailbox_noop(mbox);
	pbox->last_checked = ioloop_time;
	if (imapc_client_mailbox_is_opened(mbox->client_box))
		return FALSE;
	*error_r = t_strdup_printf("Lost the connection to the server of "
				   "this mailbox (%s); select it again",
				   pbox->conn->server);
	return TRUE;
}

/* Write the remote server's thread lists (RFC 5256 thread-list: numbers
   separated by spaces, nested lists side by side), with UIDs turned into
   this view's sequence numbers when the client asked without UID. A UID
   this view does not know (a message the client has not been told of
   yet) is left out, and so is a list left empty. */
static void
referral_proxy_write_threads(struct mailbox *box, string_t *dest,
			     const struct imap_arg *args, bool to_seqs)
{
	const struct imap_arg *list;
	const char *atom;
	uint32_t num, seq;
	size_t pos;
	bool prev_number = FALSE;

	for (; !IMAP_ARG_IS_EOL(args); args++) {
		if (imap_arg_get_list(args, &list)) {
			pos = str_len(dest);
			if (prev_number)
				str_append_c(dest, ' ');
			str_append_c(dest, '(');
			referral_proxy_write_threads(box, dest, list, to_seqs);
			if (str_data(dest)[str_len(dest) - 1] == '(') {
				str_truncate(dest, pos);
				continue;
			}
			str_append_c(dest, ')');
			prev_number = FALSE;
			continue;
		}
		if (!imap_arg_get_atom(args, &atom) ||
		    str_to_uint32(atom, &num) < 0 || num == 0)
			continue;
		if (to_seqs) {
			if (!mail_index_lookup_seq(box->view, num, &seq))
				continue;
			num = seq;
		}
		if (prev_number)
			str_append_c(dest, ' ');
		str_printfa(dest, "%u", num);
		prev_number = TRUE;
	}
}

static void
referral_proxy_untagged_thread(const struct imapc_untagged_reply *reply,
			       struct imapc_mailbox *mbox)
{
	struct referral_proxy_mailbox *pbox =
		REFERRAL_PROXY_CONTEXT(&mbox->box);

	if (pbox == NULL || pbox->thread_reply == NULL)
		return;
	referral_proxy_write_threads(&mbox->box, pbox->thread_reply,
				     reply->args, pbox->thread_uids_to_seqs);
}

int referral_proxy_route(struct mail_namespace *ns, const char *vname,
			 struct referral_proxy_route *route_r)
{
	struct referral_user *ruser = REFERRAL_USER_CONTEXT(ns->user);
	struct referral_proxy_route_server *rserver;
	const struct referral_server *server;
	struct referral_target target;
	const char *error;
	string_t *name;
	int ret;

	if (ruser == NULL || ruser->proxy == NULL ||
	    REFERRAL_LIST_CONTEXT(ns->list) == NULL ||
	    !referral_proxy_active(ruser) || !ruser->proxy->set->passthrough ||
	    ruser->proxy->set->password[0] == '\0')
		return 0;
	referral_proxy_clear_local(ruser->proxy);
	ret = referral_lookup(ruser, ns->prefix, vname,
			      mail_namespace_get_sep(ns), &target, &error);
	if (ret == 0) {
		ruser->proxy->local_list = ns->list;
		ruser->proxy->local_vname = i_strdup(vname);
	}
	if (ret <= 0)
		return ret;
	i_zero(route_r);
	t_array_init(&route_r->servers, array_count(&target.servers));
	array_foreach(&target.servers, server) {
		rserver = array_append_space(&route_r->servers);
		rserver->name = referral_host_to_string(&server->addr);
		rserver->host = server->addr.host.name;
		rserver->ip = server->addr.host.ip;
		rserver->port = server->addr.port;
	}
	name = t_str_new(64);
	if (imap_utf8_to_utf7(target.remote_name, name) < 0)
		i_unreached(); /* the directory's names are valid UTF-8 */
	route_r->remote_name = str_c(name);
	route_r->username = ns->user->username;
	route_r->set = ruser->proxy->set;
	route_r->event = ruser->event;
	return 1;
}

bool referral_proxy_mailbox_is_remote(struct mailbox *box)
{
	return REFERRAL_PROXY_CONTEXT(box) != NULL;
}

int referral_proxy_mailbox_thread(struct mailbox *box,
				  const struct imap_arg *args, bool uid,
				  string_t *threads)
{
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT(box);
	struct imapc_mailbox *mbox;
	struct imapc_simple_context sctx;
	struct imapc_command *cmd;
	string_t *str;

	if (pbox == NULL || !box->opened)
		return 0;
	mbox = IMAPC_MAILBOX(box);
	if (mbox->client_box == NULL)
		return 0;

	str = t_str_new(256);
	str_append(str, "UID THREAD");
	for (; !IMAP_ARG_IS_EOL(args); args++) {
		str_append_c(str, ' ');
		if (!referral_imap_write_arg(str, args,
				(mbox->capabilities &
				 IMAPC_CAPABILITY_LITERALPLUS) != 0)) {
			mail_storage_set_error(box->storage,
				MAIL_ERROR_NOTPOSSIBLE,
				"The remote server cannot take this "
				"literal in one command (no LITERAL+)");
			return -1;
		}
	}
	if (!pbox->thread_registered) {
		imapc_mailbox_register_untagged(mbox, "THREAD",
						referral_proxy_untagged_thread);
		pbox->thread_registered = TRUE;
	}
	pbox->thread_reply = threads;
	pbox->thread_uids_to_seqs = !uid;
	imapc_simple_context_init(&sctx, mbox->storage->client);
	cmd = imapc_client_mailbox_cmd(mbox->client_box,
				       imapc_simple_callback, &sctx);
	imapc_command_send(cmd, str_c(str));
	imapc_simple_run(&sctx, &cmd);
	pbox->thread_reply = NULL;
	if (sctx.ret < 0) {
		referral_proxy_map_error(box);
		return -1;
	}
	return 1;
}

static void
referral_proxy_resp_permanentflags(
	const struct imapc_untagged_reply *reply ATTR_UNUSED,
				   struct imapc_mailbox *mbox)
{
	struct referral_proxy_mailbox *pbox;

	if (mbox == NULL)
		return;
	pbox = REFERRAL_PROXY_CONTEXT(&mbox->box);
	if (pbox != NULL)
		pbox->permanent_flags_known = TRUE;
}

/* A remote mailbox where the user may change no flag (PERMANENTFLAGS ()
   without \*, e.g. the remote ACL grants no write right) is read-only,
   as its server says in its SELECT reply, which imapc does not pass on. */
static bool referral_proxy_is_readonly(struct mailbox *box)
{
	struct referral_proxy_mailbox *pbox = REFERRAL_PROXY_CONTEXT_REQUIRE(box);
	struct imapc_mailbox *mbox = IMAPC_MAILBOX(box);

	if (pbox->module_ctx.super.is_readonly(box))
		return TRUE;
	return pbox->permanent_flags_known && mbox->permanent_flags == 0 &&
		box->disallow_new_keywords;
}

/* Flags the remote server does not keep (not in its PERMANENTFLAGS) are
   not changed here either: the remote server ignores them without a word,
   and the session would otherwise show them set. */
static void
referral_proxy_mail_update_flags(struct mail *mail,
				 enum modify_type modify_type,
				 enum mail_flags flags)
{
	struct mail_private *pmail = (struct mail_private *)mail;
	union mail_module_context *pctx =
		MODULE_CONTEXT_REQUIRE(pmail, referral_proxy_mail_module);
	struct referral_proxy_mailbox *pbox =
		REFERRAL_PROXY_CONTEXT_REQUIRE(mail->box);
	struct imapc_mailbox *mbox = IMAPC_MAILBOX(mail->box);

	if (pbox->permanent_flags_known)
		flags &= mbox->permanent_flags;
	pctx->super.update_flags(mail, modify_type, flags);
}

void referral_proxy_mail_allocated(struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct mail_vfuncs *v = mail->vlast;
	union mail_module_context *pctx;

	if (REFERRAL_PROXY_CONTEXT(_mail->box) == NULL)
		return;
	pctx = p_new(mail->pool, union mail_module_context, 1);
	pctx->super = *v;
	mail->vlast = &pctx->super;
	v->update_flags = referral_proxy_mail_update_flags;
	MODULE_CONTEXT_SET_SELF(mail, referral_proxy_mail_module, pctx);
}

void referral_proxy_mailbox_allocated(struct mailbox *box)
{
	struct referral_proxy_list *plist = REFERRAL_PROXY_LIST_CONTEXT(box->list);
	struct referral_user *ruser;
	struct referral_proxy_mailbox *pbox;
	struct mailbox_vfuncs *v = box->vlast;

	if (plist == NULL || plist->conn == NULL)
		return;
	ruser = REFERRAL_USER_CONTEXT_REQUIRE(box->storage->user);

	pbox = p_new(box->pool, struct referral_proxy_mailbox, 1);
	pbox->conn = plist->conn;
	if (ruser->proxy->pending_vname != NULL &&
	    strcmp(ruser->proxy->pending_vname, box->vname) == 0) {
		pbox->home_list = ruser->proxy->pending_home_list;
		pbox->own_entry = ruser->proxy->pending_own_entry;
	} else {
		pbox->home_list = plist->conn->home_ns->list;
		pbox->own_entry = TRUE;
	}
	ruser->proxy->pending_vname = NULL;
	ruser->proxy->pending_storage_name = NULL;
	ruser->proxy->pending_home_list = NULL;

	pbox->module_ctx.super = *v;
	box->vlast = &pbox->module_ctx.super;
	v->open = referral_proxy_mailbox_open;
	v->get_status = referral_proxy_mailbox_get_status;
	v->create_box = referral_proxy_mailbox_create;
	v->delete_box = referral_proxy_mailbox_delete;
	v->rename_box = referral_proxy_mailbox_rename;
	v->set_subscribed = referral_proxy_mailbox_set_subscribed;
	v->transaction_commit = referral_proxy_transaction_commit;
	v->sync_init = referral_proxy_sync_init;
	v->save_begin = referral_proxy_save_begin;
	v->save_continue = referral_proxy_save_continue;
	v->save_finish = referral_proxy_save_finish;
	v->copy = referral_proxy_copy;
	v->is_inconsistent = referral_proxy_is_inconsistent;
	v->is_readonly = referral_proxy_is_readonly;
	MODULE_CONTEXT_SET(box, referral_proxy_storage_module, pbox);
	imapc_mailbox_register_resp_text(IMAPC_MAILBOX(box), "PERMANENTFLAGS",
					 referral_proxy_resp_permanentflags);
}

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_PROXY_H
#define REFERRAL_PROXY_H

#include "array.h"
#include "net.h"
#include "referral-settings.h"

struct mail_user;
struct mailbox;
struct mailbox_list;
struct referral_user;

/* Who gets remote mailboxes served through this server instead of a
   referral (mailbox_referrals_proxy). */
enum referral_proxy_policy {
	/* refer every session (RFC 2193 alone) */
	REFERRAL_PROXY_NO = 0,
	/* proxy sessions until they show they follow referrals */
	REFERRAL_PROXY_UNAWARE,
	/* proxy every session */
	REFERRAL_PROXY_ALL,
};

struct referral_proxy_settings {
	enum referral_proxy_policy policy;
	/* empty: log in as the user with password */
	const char *master_user;
	const char *password;
	/* "", "imaps" or "starttls", as imapc_ssl */
	const char *ssl;
	bool ssl_verify;
	unsigned int timeout_msecs;
	/* imapc_features of the connections to remote servers */
	const char *features;
	/* a selected remote mailbox's commands go to its server as the
	   client sent them (imap-referral-relay.c), not through imapc */
	bool passthrough;
};

/* Parse the mailbox_referrals_proxy* settings. Returns 0, or -1 with
   error_r naming the invalid setting. */
int referral_proxy_settings_parse(pool_t pool,
				  referral_setting_lookup_t *lookup,
				  void *context,
				  const struct referral_proxy_settings **set_r,
				  const char **error_r);

/* Set up the session's proxy state (after its settings are parsed).
   Returns 0, or -1 with error_r. */
int referral_proxy_user_init(struct referral_user *ruser,
			     referral_setting_lookup_t *lookup,
			     void *context, const char **error_r);
/* Close the session's connections to remote servers. */
void referral_proxy_user_deinit(struct referral_user *ruser);

/* Returns TRUE if remote mailboxes are served through this server for the
   session now (policy, awareness, and not itself a proxy's session). */
bool referral_proxy_active(struct referral_user *ruser);
/* Returns TRUE if the session was opened by another server's proxy: it is
   never proxied further nor referred. */
bool referral_proxy_session_is_proxied(struct referral_user *ruser);

struct mail_storage;
/* Install the proxy's mailbox_alloc() on a storage of a proxying session. */
void referral_proxy_storage_created(struct mail_storage *storage);
/* Returns TRUE if list belongs to one of the session's proxy namespaces
   (then no other hook of ours applies to it). */
bool referral_proxy_list_is_ours(struct mailbox_list *list);
struct mail_namespace;
/* Returns the proxy namespace's list of the server of vname, the root of
   a subtree entry of home_ns, connecting to it if needed, and the root's
   name there (data stack); NULL if it is not remote or cannot be
   reached. Names in that list are its namespace prefix (home_ns's) and
   the remote server's name. */
struct mailbox_list *
referral_proxy_subtree_list(struct referral_user *ruser,
			    struct mail_namespace *home_ns, const char *vname,
			    const char **remote_name_r);
/* Returns why the proxy could not reach the servers of box (a mailbox
   of a list where referrals apply, just allocated), in box's pool, or
   NULL if it did not try or succeeded. */
const char *referral_proxy_take_failure(struct mailbox *box);
/* Returns TRUE (with error_r, text for the client) if box is a remote
   mailbox whose connection to its server is lost: its commands fail
   until the client selects it again. (The IMAP plugin asks through
   mailbox_referrals_proxy_lost(), see referral-plugin.h.) */
bool referral_proxy_mailbox_lost(struct mailbox *box, const char **error_r);
/* Returns TRUE if box is a remote mailbox served through this server.
   (The IMAP plugin asks through mailbox_referrals_proxy_is_remote().) */
bool referral_proxy_mailbox_is_remote(struct mailbox *box);
/* One server of a route, in the order to try. */
struct referral_proxy_route_server {
	/* "HOST[:PORT]", for logs and errors */
	const char *name;
	/* the host to connect to: an IP literal (ip set) or a DNS name */
	const char *host;
	struct ip_addr ip;
	in_port_t port;
};
ARRAY_DEFINE_TYPE(referral_proxy_route_server,
		  struct referral_proxy_route_server);

/* Where a proxied session's commands on a remote mailbox go when they
   are passed through (imap-referral-relay.c). */
struct referral_proxy_route {
	ARRAY_TYPE(referral_proxy_route_server) servers;
	/* the mailbox's name on the servers, in IMAP's modified UTF-7 */
	const char *remote_name;
	/* the user to log in as, with settings->master_user if not empty */
	const char *username;
	const struct referral_proxy_settings *set;
	/* the session's event of the plugin (category mailbox-referrals):
	   the parent of the relay's */
	struct event *event;
};

/* Where the mailbox vname of ns lives, for passing its commands
   through: returns 1 with route_r (data stack) if the session is proxied
   now, passes commands through (mailbox_referrals_proxy_passthrough) and
   the directory places vname on other servers; 0 if not (then the mailbox
   is used through lib-storage, which reports any directory failure); -1
   if the directory could not be asked (the same). */
int referral_proxy_route(struct mail_namespace *ns, const char *vname,
			 struct referral_proxy_route *route_r);

struct imap_arg;
/* THREAD on a remote mailbox, run by its server: Dovecot 2.3's own
   threading crashes on messages fetched through imapc (README, "Known
   limits"). args are the client's arguments (algorithm, charset,
   criteria); the thread lists are appended to threads, with sequence
   numbers unless uid. Returns 1 when done, 0 if box is not a remote
   mailbox, -1 with the storage error set. (The IMAP plugin asks through
   mailbox_referrals_proxy_thread().) */
int referral_proxy_mailbox_thread(struct mailbox *box,
				  const struct imap_arg *args, bool uid,
				  string_t *threads);
struct mail;
/* Install the vfuncs of a message of a mailbox on a remote server. */
void referral_proxy_mail_allocated(struct mail *mail);
struct mail_user;
/* Install the proxy's mailbox_alloc() on the storages the user has
   already (created at login, before the core module was loaded). */
void referral_proxy_user_storages_init(struct mail_user *user);
/* Install the vfuncs of a mailbox on a remote server. */
void referral_proxy_mailbox_allocated(struct mailbox *box);

#endif

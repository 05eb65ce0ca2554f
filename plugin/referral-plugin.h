/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_PLUGIN_H
#define REFERRAL_PLUGIN_H

#include "module-context.h"
#include "mail-user.h"
#include "mail-storage-private.h"
#include "mailbox-list-private.h"

#define REFERRAL_USER_CONTEXT(obj) \
	MODULE_CONTEXT(obj, referral_user_module)
#define REFERRAL_USER_CONTEXT_REQUIRE(obj) \
	MODULE_CONTEXT_REQUIRE(obj, referral_user_module)
#define REFERRAL_LIST_CONTEXT(obj) \
	MODULE_CONTEXT(obj, referral_mailbox_list_module)
#define REFERRAL_CONTEXT(obj) \
	MODULE_CONTEXT(obj, referral_storage_module)
#define REFERRAL_CONTEXT_REQUIRE(obj) \
	MODULE_CONTEXT_REQUIRE(obj, referral_storage_module)

/* Exists only for users with referrals enabled. */
struct referral_user {
	union mail_user_module_context module_ctx;
	struct mail_user *user;

	const struct referral_settings *set;
	struct event *event;
	/* The fields below are set up by the plugin's core module, loaded
	   when the session first needs it (referral_user_require_core()):
	   until then core_initialized is FALSE and they are empty. */
	bool core_initialized;
	struct referral_directory *dir;
	struct referral_cache *cache;
	/* namespace prefix -> the namespace's entries, for listings */
	struct referral_cache *list_cache;
	/* how many remote listings were incomplete, and the last's error */
	unsigned int list_failures;
	char *list_error;
	/* per-session order of servers with equal preference; 0 = none */
	unsigned int shuffle_seed;
	/* the session sent RLIST, RLSUB or LIST (REMOTE): it follows
	   referrals */
	bool aware;
	/* the settings may have remote mailboxes' commands passed through
	   to their servers (known at login, from the proxy settings) */
	bool may_pass_through;
	/* serving remote mailboxes through this server (referral-proxy.c) */
	struct referral_proxy_state *proxy;
};

/* Exists only for the mailbox lists of namespaces where referrals apply. */
struct referral_mailbox_list {
	union mailbox_list_module_context module_ctx;
	/* the vfuncs through which lib-storage calls us: the core module's
	   are installed there when the list is first used */
	struct mailbox_list_vfuncs *v;
	bool core_initialized;
};

struct referral_mailbox {
	union mailbox_module_context module_ctx;
	/* this server serves the mailbox: decided once per struct mailbox
	   (e.g. STATUS checks, then opens) */
	bool local;
	/* the proxy could not reach the mailbox's servers (see
	   referral-proxy.c): the error every use of it gets */
	const char *proxy_error;
};

extern MODULE_CONTEXT_DEFINE(referral_user_module,
			     &mail_user_module_register);
extern MODULE_CONTEXT_DEFINE(referral_mailbox_list_module,
			     &mailbox_list_module_register);
extern MODULE_CONTEXT_DEFINE(referral_storage_module,
			     &mail_storage_module_register);

struct imap_arg;
struct referral_proxy_route;

/* The core module's entry points (referral-core.c), which the mail
   plugin's own module (referral-plugin.c, referral-user.c) calls once it
   is loaded. The mail plugin's module links none of the core's symbols:
   Dovecot loads it with RTLD_NOW in every session, which resolves every
   symbol a module names whether the session uses it or not. */
struct referral_core_vfuncs {
	/* set up the user's directory backend, caches and proxy state;
	   returns 0, or -1 with error_r */
	int (*user_init)(struct referral_user *ruser, const char **error_r);
	void (*user_deinit)(struct referral_user *ruser);
	/* install the vfuncs of a list where referrals apply */
	void (*list_init)(struct mailbox_list_vfuncs *v);
	bool (*list_is_ours)(struct mailbox_list *list);
	void (*mailbox_allocated)(struct mailbox *box);
	bool (*mailbox_lost)(struct mailbox *box, const char **error_r);
	bool (*mailbox_is_remote)(struct mailbox *box);
	int (*mailbox_thread)(struct mailbox *box, const struct imap_arg *args,
			      bool uid, string_t *threads);
	int (*route)(struct mail_namespace *ns, const char *vname,
		     struct referral_proxy_route *route_r);
	/* the hooks of the same names, for what exists once the core is
	   loaded (the user's storages of before are set up by user_init) */
	void (*storage_created)(struct mail_storage *storage);
	void (*mail_allocated)(struct mail *mail);
};

extern const char *mailbox_referrals_plugin_version;
extern const char *mailbox_referrals_plugin_dependencies[];

/* The core module registers itself from its init function. */
void referral_core_register(const struct referral_core_vfuncs *vfuncs);
void referral_core_unregister(void);
/* Returns the core's entry points, loading the core module first if
   needed (a failure to load it ends the process, as a missing mail
   plugin does). */
const struct referral_core_vfuncs *referral_core_require(void);
/* Load and initialize the module name (e.g. "mailbox_referrals_core")
   from the directory of the mail plugin's module into modules; a failure
   ends the process. */
struct module;
void referral_plugin_load_module(struct module **modules, const char *name);
/* Returns the core's entry points, or NULL if it is not loaded. */
const struct referral_core_vfuncs *referral_core_get(void);

/* A setting of the user by its name without the prefix (context: the
   mail_user), and the directory backend's parameters. */
const char *referral_user_setting(const char *name, void *context);
struct referral_directory_params;
void referral_user_directory_params(struct referral_user *ruser,
				    struct referral_directory_params *params_r);

/* Set up the core's part of the user (the directory, caches, proxy) if
   not done yet. Returns 0, or -1 with error_r. */
int referral_user_require_core(struct referral_user *ruser,
			       const char **error_r);

void referral_mail_user_created(struct mail_user *user);
void referral_mailbox_list_created(struct mailbox_list *list);
void referral_mailbox_allocated(struct mailbox *box);
/* The mail plugin's mailbox_allocated hook: hands over to the core's
   referral_mailbox_allocated() once the core is loaded. */
void referral_plugin_mailbox_allocated(struct mailbox *box);
/* The mail plugin's mail_storage_created and mail_allocated hooks: hand
   over to the core once it is loaded (before, there is no proxy to set
   up: the core's user_init sets up the storages created until then). */
void referral_plugin_storage_created(struct mail_storage *storage);
void referral_plugin_mail_allocated(struct mail *mail);

/* Returns TRUE if referrals are enabled for the user (for the imap plugin:
   advertise MAILBOX-REFERRALS only then). */
bool mailbox_referrals_user_enabled(struct mail_user *user);
/* The session has shown that it follows referrals (it sent RLIST, RLSUB
   or LIST (REMOTE)): from now on remote mailboxes are referred, unless
   mailbox_referrals_proxy = all. */
void mailbox_referrals_user_set_aware(struct mail_user *user);
/* Returns TRUE (with error_r, text for the client) if box is a proxied
   remote mailbox whose connection to its server is lost (see
   referral_proxy_mailbox_lost()); FALSE while the core is not loaded,
   as no mailbox is proxied then. */
bool mailbox_referrals_proxy_lost(struct mailbox *box, const char **error_r);
/* Returns TRUE if box is a remote mailbox served through this server
   (referral_proxy_mailbox_is_remote()); FALSE while the core is not
   loaded. */
bool mailbox_referrals_proxy_is_remote(struct mailbox *box);
/* THREAD on a remote mailbox, run by its server (see
   referral_proxy_mailbox_thread()): 1 when done, 0 if box is not a
   remote mailbox (always while the core is not loaded), -1 with the
   storage error set. */
int mailbox_referrals_proxy_thread(struct mailbox *box,
				   const struct imap_arg *args, bool uid,
				   string_t *threads);

/* Returns TRUE if the user's settings may pass commands on remote
   mailboxes through to their servers (the IMAP plugin then checks each
   SELECT and EXAMINE); known at login, without the core. */
bool mailbox_referrals_user_may_pass_through(struct mail_user *user);
/* Where the commands on the mailbox vname of ns go when passed through
   (referral_proxy_route()): 1 with route_r, 0 if they are not (always
   when ns is not a namespace where referrals apply), -1 if the directory
   could not be asked. Loads the core if needed. */
struct referral_proxy_route;
int mailbox_referrals_proxy_route(struct mail_namespace *ns,
				  const char *vname,
				  struct referral_proxy_route *route_r);

/* The functions above that the IMAP plugin's module calls at every
   login or command, in one table: Dovecot loads that module in every
   session and binds each symbol it imports then (about 1,400
   instructions each); the table is one. */
struct mailbox_referrals_imap_entry_points {
	bool (*user_enabled)(struct mail_user *user);
	bool (*proxy_is_remote)(struct mailbox *box);
	bool (*user_may_pass_through)(struct mail_user *user);
	bool (*list_enabled)(struct mailbox_list *list);
};
extern const struct mailbox_referrals_imap_entry_points
	mailbox_referrals_imap_entry_points;

void mailbox_referrals_plugin_preinit(void);
void mailbox_referrals_plugin_init(struct module *module);
void mailbox_referrals_plugin_deinit(void);

#endif

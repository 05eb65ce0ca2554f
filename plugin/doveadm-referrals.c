/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* doveadm mailbox-referrals lookup|list|check: what the directory says,
   as this server's sessions see it.

   This doveadm plugin uses the mail plugin's functions without linking to
   it: doveadm loads its plugins once before and once after the mail
   plugins of mail_plugins, skipping those that fail to load, so these
   commands exist exactly when mailbox_referrals is in mail_plugins (a
   *_dependencies symbol would not do: doveadm checks it against its own
   plugins, not the mail plugins). Most of those functions are in the
   mail plugin's core module, which the mail plugin loads in doveadm as
   soon as it is loaded itself (mailbox_referrals_plugin_preinit()). Everything runs as a mail command, so
   -u, -A and -F work, and prints through doveadm-print, so -f works. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "imap-match.h"
#include "mail-namespace.h"
#include "doveadm-mail.h"
#include "doveadm-print.h"
#include "referral-plugin.h"
#include "referral-directory.h"
#include "referral-cache.h"
#include "referral-lookup.h"
#include "referral-mailbox-list.h"
#include "referral-url.h"
#include "doveadm-referrals-check.h"
#include "doveadm-referrals-output.h"

struct referrals_cmd_context {
	struct doveadm_mail_cmd_context ctx;
	/* lookup: the mailbox; list: the pattern */
	const char *arg;
};

const char *doveadm_mailbox_referrals_plugin_version = DOVECOT_ABI_VERSION;

void doveadm_mailbox_referrals_plugin_init(struct module *module);
void doveadm_mailbox_referrals_plugin_deinit(void);

/* Returns the servers as "PREFERENCE HOST[:PORT], ..." in their order. */
static const char *
referrals_servers_text(const ARRAY_TYPE(referral_server) *servers)
{
	const struct referral_server *server;
	string_t *str = t_str_new(128);

	array_foreach(servers, server) {
		if (str_len(str) > 0)
			str_append(str, ", ");
		str_printfa(str, "%u %s", server->preference,
			    referral_host_to_string(&server->addr));
	}
	return str_c(str);
}

/* Returns the user's referral state, or NULL after failing the command
   (EX_CONFIG) when referrals are not enabled for the user. */
static struct referral_user *
referrals_cmd_get_user(struct doveadm_mail_cmd_context *ctx,
		       struct mail_user *user)
{
	struct referral_user *ruser = REFERRAL_USER_CONTEXT(user);

	if (ruser == NULL) {
		i_error("Mailbox referrals are not enabled for user %s "
			"(mailbox_referrals_namespaces is empty or "
			"mailbox_referrals is not in mail_plugins)",
			user->username);
		if (ctx->exit_code == 0)
			ctx->exit_code = EX_CONFIG;
	}
	return ruser;
}

/* Returns TRUE if referrals apply to ns: the mail plugin hooks only the
   lists of those namespaces. */
static bool referrals_namespace_enabled(struct mail_namespace *ns)
{
	return REFERRAL_LIST_CONTEXT(ns->list) != NULL;
}

/* Returns TRUE if list and check go through ns: an alias namespace would
   show the same entries and mailboxes twice. */
static bool referrals_namespace_listed(struct mail_namespace *ns)
{
	return ns->alias_for == NULL && referrals_namespace_enabled(ns);
}

/* Returns the namespace's root: its prefix without the separator. */
static const char *referrals_namespace_root(struct mail_namespace *ns)
{
	if (ns->prefix_len > 0 &&
	    ns->prefix[ns->prefix_len-1] == mail_namespace_get_sep(ns))
		return t_strndup(ns->prefix, ns->prefix_len - 1);
	return ns->prefix;
}

/* ------------------------------------------------------------- lookup */

static void
referrals_lookup_print(const char *vname, const char *location,
		       const char *reason, const struct referral_entry *entry,
		       const char *remote_name,
		       const ARRAY_TYPE(referral_server) *servers,
		       const char *urls)
{
	doveadm_print(doveadm_referrals_printable(vname));
	doveadm_print(location);
	doveadm_print(reason);
	doveadm_print(entry == NULL ? "" :
		      doveadm_referrals_printable(entry->dn));
	doveadm_print(entry == NULL ? "" :
		      (entry->subtree ? "subtree" : "mailbox"));
	doveadm_print(remote_name == NULL ? "" :
		      doveadm_referrals_printable(remote_name));
	doveadm_print(servers == NULL ? "" : referrals_servers_text(servers));
	doveadm_print(urls);
}

/* Print where vname lives; returns 0, or -1 after failing the command. */
static int
referrals_lookup(struct doveadm_mail_cmd_context *ctx, struct mail_user *user,
		 const char *vname)
{
	struct referral_user *ruser = REFERRAL_USER_CONTEXT(user);
	const struct referral_entry *entry;
	const struct referral_server *server;
	ARRAY_TYPE(referral_server) servers;
	struct mail_namespace *ns;
	const char *remote_name, *source, *error;
	string_t *urls;

	if (!referral_mailbox_name_is_safe(vname)) {
		i_error("Invalid mailbox name: empty, not UTF-8 or has "
			"control characters");
		doveadm_mail_failed_error(ctx, MAIL_ERROR_PARAMS);
		return -1;
	}
	ns = mail_namespace_find(user->namespaces, vname);
	if (ruser == NULL || !referrals_namespace_enabled(ns)) {
		/* no directory query, as in sessions */
		referrals_lookup_print(vname, "local", "namespace-not-enabled",
				       NULL, NULL, NULL, "");
		return 0;
	}
	if (referral_lookup_entry(ruser, ns->prefix, vname,
				  mail_namespace_get_sep(ns),
				  &entry, &source, &error) < 0) {
		i_error("Can't look up %s: %s", vname, error);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	if (entry == NULL) {
		referrals_lookup_print(vname, "local", "no-entry",
				       NULL, NULL, NULL, "");
		return 0;
	}

	remote_name = referral_entry_remote_name(entry, vname);
	if (entry->error != NULL) {
		/* sessions answer NO [UNAVAILABLE] */
		referrals_lookup_print(vname, "unusable", entry->error, entry,
				       remote_name, NULL, "");
		doveadm_mail_failed_error(ctx, MAIL_ERROR_INVALIDDATA);
		return 0;
	}
	/* the order one session of this user would use: equal preferences
	   are shuffled per session, so per run here */
	t_array_init(&servers, array_count(&entry->servers));
	array_append_array(&servers, &entry->servers);
	referral_servers_sort(&servers, ruser->shuffle_seed);
	if (referral_entry_is_local(ruser, entry)) {
		referrals_lookup_print(vname, "local", "self", entry,
				       remote_name, &servers, "");
		return 0;
	}
	urls = t_str_new(256);
	array_foreach(&servers, server) {
		if (str_len(urls) > 0)
			str_append_c(urls, ' ');
		str_append(urls, referral_url_create(
			user->anonymous ? NULL : user->username,
			&server->addr, remote_name));
	}
	referrals_lookup_print(vname, "remote", "entry", entry, remote_name,
			       &servers, str_c(urls));
	return 0;
}

static int
cmd_referrals_lookup_run(struct doveadm_mail_cmd_context *_ctx,
			 struct mail_user *user)
{
	struct referrals_cmd_context *ctx =
		container_of(_ctx, struct referrals_cmd_context, ctx);

	return referrals_lookup(_ctx, user, ctx->arg);
}

static void
cmd_referrals_lookup_init(struct doveadm_mail_cmd_context *_ctx,
			  const char *const args[])
{
	struct referrals_cmd_context *ctx =
		container_of(_ctx, struct referrals_cmd_context, ctx);

	if (args[0] == NULL || args[1] != NULL)
		doveadm_mail_help_name("mailbox-referrals lookup");
	ctx->arg = p_strdup(_ctx->pool, args[0]);

	doveadm_print_header_simple("mailbox");
	doveadm_print_header_simple("location");
	doveadm_print_header_simple("reason");
	doveadm_print_header_simple("dn");
	doveadm_print_header_simple("scope");
	doveadm_print_header_simple("remote_name");
	doveadm_print_header_simple("servers");
	doveadm_print_header_simple("urls");
}

static struct doveadm_mail_cmd_context *cmd_referrals_lookup_alloc(void)
{
	struct referrals_cmd_context *ctx;

	ctx = doveadm_mail_cmd_alloc(struct referrals_cmd_context);
	ctx->ctx.v.init = cmd_referrals_lookup_init;
	ctx->ctx.v.run = cmd_referrals_lookup_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_FLOW);
	return &ctx->ctx;
}

/* --------------------------------------------------------------- list */

static void referrals_list_print(const struct referral_entry *entry)
{
	ARRAY_TYPE(referral_server) servers;

	/* the directory's view, not one session's: ties in the directory's
	   order */
	t_array_init(&servers, array_count(&entry->servers));
	array_append_array(&servers, &entry->servers);
	referral_servers_sort(&servers, 0);

	doveadm_print(doveadm_referrals_printable(entry->mailbox));
	doveadm_print(entry->subtree ? "subtree" : "mailbox");
	doveadm_print(referrals_servers_text(&servers));
	doveadm_print(doveadm_referrals_printable(
		entry->remote_name != NULL ? entry->remote_name :
		entry->mailbox));
	doveadm_print(doveadm_referrals_printable(entry->dn));
	doveadm_print(entry->error != NULL ? entry->error : "");
}

/* Print the namespace's entries matching glob; returns 0, or -1 after
   failing the command. */
static int
referrals_list_namespace(struct doveadm_mail_cmd_context *ctx,
			 struct referral_user *ruser,
			 struct mail_namespace *ns, const char *pattern)
{
	const struct referral_cache_record *record;
	ARRAY(const struct referral_entry *) sorted;
	const struct referral_entry *entry, *const *entryp;
	struct imap_match_glob *glob;
	const char *error;

	record = referral_list_get_entries(ruser, ns, TRUE, &error);
	if (record == NULL) {
		i_error("Can't list the directory entries of namespace '%s': "
			"%s", ns->prefix, error);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	/* as LIST matches names: lib-imap's matching, INBOX in any case */
	glob = imap_match_init(pool_datastack_create(), pattern, TRUE,
			       mail_namespace_get_sep(ns));
	t_array_init(&sorted, array_count(&record->entries));
	array_foreach(&record->entries, entry)
		array_push_back(&sorted, &entry);
	array_sort(&sorted, referral_entry_cmp);
	array_foreach(&sorted, entryp) T_BEGIN {
		if (imap_match(glob, (*entryp)->mailbox) == IMAP_MATCH_YES)
			referrals_list_print(*entryp);
	} T_END;
	return 0;
}

static int
cmd_referrals_list_run(struct doveadm_mail_cmd_context *_ctx,
		       struct mail_user *user)
{
	struct referrals_cmd_context *ctx =
		container_of(_ctx, struct referrals_cmd_context, ctx);
	struct referral_user *ruser;
	struct mail_namespace *ns;
	int ret = 0;

	if ((ruser = referrals_cmd_get_user(_ctx, user)) == NULL)
		return -1;
	for (ns = user->namespaces; ns != NULL && ret == 0; ns = ns->next) {
		if (referrals_namespace_listed(ns)) {
			ret = referrals_list_namespace(_ctx, ruser, ns,
						       ctx->arg);
		}
	}
	return ret;
}

static void
cmd_referrals_list_init(struct doveadm_mail_cmd_context *_ctx,
			const char *const args[])
{
	struct referrals_cmd_context *ctx =
		container_of(_ctx, struct referrals_cmd_context, ctx);

	if (args[0] != NULL && args[1] != NULL)
		doveadm_mail_help_name("mailbox-referrals list");
	ctx->arg = p_strdup(_ctx->pool, args[0] != NULL ? args[0] : "*");

	doveadm_print_header_simple("mailbox");
	doveadm_print_header_simple("scope");
	doveadm_print_header_simple("servers");
	doveadm_print_header_simple("remote_name");
	doveadm_print_header_simple("dn");
	doveadm_print_header_simple("error");
}

static struct doveadm_mail_cmd_context *cmd_referrals_list_alloc(void)
{
	struct referrals_cmd_context *ctx;

	ctx = doveadm_mail_cmd_alloc(struct referrals_cmd_context);
	ctx->ctx.v.init = cmd_referrals_list_init;
	ctx->ctx.v.run = cmd_referrals_list_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return &ctx->ctx;
}

/* -------------------------------------------------------------- check */

static bool referrals_entry_is_local(const struct referral_entry *entry,
				     void *context)
{
	return referral_entry_is_local(context, entry);
}

/* A mailbox that exists on this server. */
struct referrals_local {
	struct mail_namespace *ns;
	const char *vname;
	bool selectable;
};
ARRAY_DEFINE_TYPE(referrals_local, struct referrals_local);

/* Add the mailboxes that exist in ns's list to locals (from pool). In a
   namespace where referrals apply, the plugin's own iteration hides the
   local mailboxes that the directory places elsewhere, which are exactly
   what the check looks for: iterate below it, with the vfuncs it wraps.
   RAW_LIST: what exists, whatever the user's ACLs. */
static int
referrals_list_locals(struct mail_namespace *ns, pool_t pool,
		      ARRAY_TYPE(referrals_local) *locals,
		      const char **error_r)
{
	struct referral_mailbox_list *rlist = REFERRAL_LIST_CONTEXT(ns->list);
	const struct mailbox_list_vfuncs *v = rlist != NULL ?
		&rlist->module_ctx.super : &ns->list->v;
	const char *patterns[] = { t_strconcat(ns->prefix, "*", NULL), NULL };
	struct mailbox_list_iterate_context *iter;
	const struct mailbox_info *info;
	struct referrals_local *local;
	enum mail_error error;

	iter = v->iter_init(ns->list, patterns,
		MAILBOX_LIST_ITER_RAW_LIST | MAILBOX_LIST_ITER_NO_AUTO_BOXES);
	for (;;) {
		T_BEGIN {
			info = v->iter_next(iter);
			if (info != NULL &&
			    (info->flags & MAILBOX_NONEXISTENT) == 0) {
				local = array_append_space(locals);
				local->ns = ns;
				local->vname = p_strdup(pool, info->vname);
				local->selectable =
					(info->flags & MAILBOX_NOSELECT) == 0;
			}
		} T_END;
		if (info == NULL)
			break;
	}
	if (v->iter_deinit(iter) < 0) {
		*error_r = t_strdup_printf(
			"Can't list the mailboxes of namespace '%s': %s",
			ns->prefix, mailbox_list_get_last_error(ns->list,
								&error));
		return -1;
	}
	return 0;
}

/* Get the mailboxes that exist in the user's namespaces: those of the
   namespace checked, and any other, where an entry's remote name may be.
   Shared namespaces are left out (listing them walks other users'
   mailboxes). */
static int
referrals_get_locals(struct mail_user *user, pool_t pool,
		     ARRAY_TYPE(referrals_local) *locals, const char **error_r)
{
	struct mail_namespace *ns;

	for (ns = user->namespaces; ns != NULL; ns = ns->next) {
		if (ns->alias_for != NULL ||
		    ns->type == MAIL_NAMESPACE_TYPE_SHARED)
			continue;
		if (referrals_list_locals(ns, pool, locals, error_r) < 0)
			return -1;
	}
	return 0;
}

static void referrals_check_print(const struct referral_check_problem *problem)
{
	doveadm_print(referral_check_kind_name(problem->kind));
	doveadm_print(doveadm_referrals_printable(problem->mailbox));
	doveadm_print(doveadm_referrals_printable(problem->dn));
	doveadm_print(problem->detail);
}

/* Check the namespace's entries; returns the number of problems printed,
   or -1 after failing the command. */
static int
referrals_check_namespace(struct doveadm_mail_cmd_context *ctx,
			  struct referral_user *ruser,
			  struct mail_namespace *ns,
			  const ARRAY_TYPE(referrals_local) *locals)
{
	ARRAY_TYPE(referral_directory_entry) raw_entries;
	const struct referral_directory_entry *raw;
	const struct referrals_local *local;
	const struct referral_check_problem *problems;
	struct referral_check *check;
	const char *error;
	unsigned int i, count;
	pool_t pool;
	int ret;

	/* the raw entries, not the session's validated listing: what
	   sessions skip is what this reports */
	pool = pool_alloconly_create("doveadm referral check", 16384);
	p_array_init(&raw_entries, pool, 64);
	if (referral_directory_list(ruser->dir, referrals_namespace_root(ns),
				    pool, &raw_entries, &error) < 0) {
		i_error("Can't list the directory entries of namespace '%s': "
			"%s", ns->prefix, error);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		pool_unref(&pool);
		return -1;
	}

	check = referral_check_init(pool, mail_namespace_get_sep(ns),
				    ns->prefix, referrals_entry_is_local,
				    ruser);
	array_foreach(&raw_entries, raw) {
		if (referral_name_in_namespace(ns, raw->mailbox))
			referral_check_add_entry(check, raw);
	}
	array_foreach(locals, local) {
		referral_check_add_local(check, local->vname, local->ns == ns,
					 local->selectable);
	}
	problems = referral_check_finish(check, &count);
	for (i = 0; i < count; i++) T_BEGIN {
		referrals_check_print(&problems[i]);
	} T_END;
	ret = (int)count;
	pool_unref(&pool);
	return ret;
}

static int
cmd_referrals_check_run(struct doveadm_mail_cmd_context *ctx,
			struct mail_user *user)
{
	ARRAY_TYPE(referrals_local) locals;
	struct referral_user *ruser;
	struct mail_namespace *ns;
	unsigned int problems = 0;
	const char *error;
	pool_t pool;
	int ret = 0;

	if ((ruser = referrals_cmd_get_user(ctx, user)) == NULL)
		return -1;
	pool = pool_alloconly_create("doveadm referral locals", 4096);
	p_array_init(&locals, pool, 64);
	if (referrals_get_locals(user, pool, &locals, &error) < 0) {
		i_error("%s", error);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		pool_unref(&pool);
		return -1;
	}
	for (ns = user->namespaces; ns != NULL && ret >= 0; ns = ns->next) {
		if (!referrals_namespace_listed(ns))
			continue;
		T_BEGIN {
			ret = referrals_check_namespace(ctx, ruser, ns,
							&locals);
		} T_END;
		if (ret > 0)
			problems += ret;
	}
	pool_unref(&pool);
	if (ret < 0)
		return -1;
	if (problems > 0) {
		/* DOVEADM_EX_NOTPOSSIBLE: the directory needs fixing */
		doveadm_mail_failed_error(ctx, MAIL_ERROR_INVALIDDATA);
	}
	return 0;
}

static void
cmd_referrals_check_init(struct doveadm_mail_cmd_context *ctx ATTR_UNUSED,
			 const char *const args[])
{
	if (args[0] != NULL)
		doveadm_mail_help_name("mailbox-referrals check");

	doveadm_print_header_simple("problem");
	doveadm_print_header_simple("mailbox");
	doveadm_print_header_simple("dn");
	doveadm_print_header_simple("detail");
}

static struct doveadm_mail_cmd_context *cmd_referrals_check_alloc(void)
{
	struct doveadm_mail_cmd_context *ctx;

	ctx = doveadm_mail_cmd_alloc(struct doveadm_mail_cmd_context);
	ctx->v.init = cmd_referrals_check_init;
	ctx->v.run = cmd_referrals_check_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return ctx;
}

/* ----------------------------------------------------------- commands */

static struct doveadm_cmd_ver2 referrals_commands[] = {
{
	.name = "mailbox-referrals lookup",
	.mail_cmd = cmd_referrals_lookup_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX "<mailbox>",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('\0', "mailbox", CMD_PARAM_STR, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
},
{
	.name = "mailbox-referrals list",
	.mail_cmd = cmd_referrals_list_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX "[<pattern>]",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('\0', "pattern", CMD_PARAM_STR, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
},
{
	.name = "mailbox-referrals check",
	.mail_cmd = cmd_referrals_check_alloc,
	.usage = DOVEADM_CMD_MAIL_USAGE_PREFIX,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAMS_END
},
};

void doveadm_mailbox_referrals_plugin_init(struct module *module ATTR_UNUSED)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(referrals_commands); i++)
		doveadm_cmd_register_ver2(&referrals_commands[i]);
}

void doveadm_mailbox_referrals_plugin_deinit(void)
{
}

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* RLIST and RLSUB (RFC 2193 section 5) and LIST with the REMOTE selection
   option (RFC 5258): listings that include remote mailboxes.

   Dovecot's cmd_list_full() has no way to print the \Remote attribute, so
   these commands have their own output loop; the listing itself is the
   normal mailbox list iteration, which the mail plugin extends with the
   directory's mailboxes when asked with MAILBOX_LIST_ITER_REFERRAL_REMOTE. Plain LIST goes to Dovecot's own command. */

#include "imap-common.h"
#include "str.h"
#include "imap-quote.h"
#include "imap-utf7.h"
#include "imap-list.h"
#include "imap-status.h"
#include "imap-commands.h"
#include "mail-namespace.h"
#include "mailbox-list-iter.h"
#include "referral-mailbox-list.h"
#include "imap-referral-plugin.h"

struct referral_list_context {
	struct client_command_context *cmd;
	struct mail_user *user;
	enum mailbox_list_iter_flags list_flags;
	struct imap_status_items status_items;
	struct mailbox_list_iterate_context *iter;

	/* mailbox_referrals_list_failures() when the listing started */
	unsigned int failures_before;

	bool lsub:1;
	bool lsub_no_unsubscribed:1;
	/* LIST-EXTENDED syntax was used */
	bool extended:1;
	/* LIST (REMOTE): mark remote mailboxes \Remote */
	bool remote_attr:1;
	bool used_status:1;
};

static command_func_t *referral_orig_cmd_list;
static enum command_flags referral_orig_cmd_list_flags;

static bool
referral_list_parse_select(struct referral_list_context *ctx,
			   const struct imap_arg *args)
{
	enum mailbox_list_iter_flags flags = 0;
	const char *str;

	for (; !IMAP_ARG_IS_EOL(args); args++) {
		if (!imap_arg_get_atom(args, &str)) {
			client_send_command_error(ctx->cmd,
				"List options contains non-atoms.");
			return FALSE;
		}
		if (strcasecmp(str, "SUBSCRIBED") == 0) {
			flags |= MAILBOX_LIST_ITER_SELECT_SUBSCRIBED |
				MAILBOX_LIST_ITER_RETURN_SUBSCRIBED;
		} else if (strcasecmp(str, "RECURSIVEMATCH") == 0)
			flags |= MAILBOX_LIST_ITER_SELECT_RECURSIVEMATCH;
		else if (strcasecmp(str, "SPECIAL-USE") == 0) {
			flags |= MAILBOX_LIST_ITER_SELECT_SPECIALUSE |
				MAILBOX_LIST_ITER_RETURN_SPECIALUSE;
		} else if (strcasecmp(str, "REMOTE") == 0)
			ctx->remote_attr = TRUE;
		else {
			client_send_command_error(ctx->cmd,
						  "Unknown select options");
			return FALSE;
		}
	}
	if ((flags & MAILBOX_LIST_ITER_SELECT_RECURSIVEMATCH) != 0 &&
	    (flags & (MAILBOX_LIST_ITER_SELECT_SUBSCRIBED |
		      MAILBOX_LIST_ITER_SELECT_SPECIALUSE)) == 0) {
		client_send_command_error(ctx->cmd,
			"RECURSIVEMATCH must not be the only selection.");
		return FALSE;
	}
	ctx->list_flags |= flags;
	return TRUE;
}

static bool
referral_list_parse_return(struct referral_list_context *ctx,
			   const struct imap_arg *args)
{
	const struct imap_arg *list_args;
	const char *str;

	for (; !IMAP_ARG_IS_EOL(args); args++) {
		if (!imap_arg_get_atom(args, &str)) {
			client_send_command_error(ctx->cmd,
				"List options contains non-atoms.");
			return FALSE;
		}
		if (strcasecmp(str, "SUBSCRIBED") == 0)
			ctx->list_flags |= MAILBOX_LIST_ITER_RETURN_SUBSCRIBED;
		else if (strcasecmp(str, "CHILDREN") == 0)
			ctx->list_flags |= MAILBOX_LIST_ITER_RETURN_CHILDREN;
		else if (strcasecmp(str, "SPECIAL-USE") == 0)
			ctx->list_flags |= MAILBOX_LIST_ITER_RETURN_SPECIALUSE;
		else if (strcasecmp(str, "STATUS") == 0 &&
			 imap_arg_get_list(&args[1], &list_args)) {
			if (imap_status_parse_items(ctx->cmd, list_args,
						    &ctx->status_items) < 0)
				return FALSE;
			ctx->used_status = TRUE;
			args++;
		} else {
			client_send_command_error(ctx->cmd,
				"Unknown return options");
			return FALSE;
		}
	}
	return TRUE;
}

static void
referral_list_append_flags(struct referral_list_context *ctx, string_t *str,
			   const struct mailbox_info *info)
{
	enum mailbox_info_flags flags = info->flags;
	bool remote = (flags & MAILBOX_REFERRAL_REMOTE) != 0;
	size_t orig_len = str_len(str);

	flags &= ENUM_NEGATE(MAILBOX_REFERRAL_REMOTE);
	if ((flags & MAILBOX_NONEXISTENT) != 0 && !ctx->extended) {
		flags |= MAILBOX_NOSELECT;
		flags &= ENUM_NEGATE(MAILBOX_NONEXISTENT);
	}
	if ((ctx->list_flags & MAILBOX_LIST_ITER_RETURN_CHILDREN) == 0)
		flags &= ENUM_NEGATE(MAILBOX_CHILDREN | MAILBOX_NOCHILDREN);
	if ((flags & MAILBOX_CHILD_SUBSCRIBED) != 0 &&
	    (flags & MAILBOX_SUBSCRIBED) == 0 && !ctx->extended) {
		/* LSUB uses \Noselect for this */
		flags |= MAILBOX_NOSELECT;
	} else if ((ctx->list_flags & MAILBOX_LIST_ITER_RETURN_SUBSCRIBED) == 0)
		flags &= ENUM_NEGATE(MAILBOX_SUBSCRIBED);
	(void)imap_mailbox_flags2str(str, flags);

	if (remote && ctx->remote_attr) {
		if (str_len(str) != orig_len)
			str_append_c(str, ' ');
		str_append(str, "\\Remote");
	}
	if ((ctx->list_flags & MAILBOX_LIST_ITER_RETURN_SPECIALUSE) != 0 &&
	    info->special_use != NULL) {
		if (str_len(str) != orig_len)
			str_append_c(str, ' ');
		str_append(str, info->special_use);
	}
}

static void referral_list_append_sep(string_t *str, char sep)
{
	if (sep == '\0') {
		str_append(str, "NIL");
		return;
	}
	str_append_c(str, '"');
	if (sep == '\\' || sep == '"')
		str_append_c(str, '\\');
	str_append_c(str, sep);
	str_append_c(str, '"');
}

static void
referral_list_send_status(struct referral_list_context *ctx,
			  const struct mailbox_info *info,
			  const char *mutf7_name)
{
	struct imap_status_result result;

	struct mail_namespace *ns;

	/* a remote mailbox's status is its servers' business; the listing
	   still succeeds */
	if ((info->flags & (MAILBOX_NONEXISTENT | MAILBOX_NOSELECT |
			    MAILBOX_REFERRAL_REMOTE)) != 0)
		return;
	if ((info->flags & MAILBOX_SUBSCRIBED) == 0 &&
	    (ctx->list_flags & MAILBOX_LIST_ITER_SELECT_SUBSCRIBED) != 0) {
		/* listed only because a child is subscribed */
		return;
	}
	/* subscriptions=no namespaces list their subscriptions through
	   another namespace: find the mailbox's own */
	ns = mail_namespace_find(ctx->user->namespaces, info->vname);
	if (imap_status_get(ctx->cmd, ns, info->vname,
			    &ctx->status_items, &result) < 0) {
		client_send_line(ctx->cmd->client,
				 t_strconcat("* ", result.errstr, NULL));
		return;
	}
	imap_status_send(ctx->cmd->client, mutf7_name, &ctx->status_items,
			 &result);
}

static bool referral_list_continue(struct client_command_context *cmd)
{
	struct referral_list_context *ctx = cmd->context;
	const struct mailbox_info *info;
	string_t *str, *mutf7_name;
	const char *error;
	int ret;

	if (cmd->cancel) {
		if (ctx->iter != NULL)
			(void)mailbox_list_iter_deinit(&ctx->iter);
		return TRUE;
	}
	str = t_str_new(256);
	mutf7_name = t_str_new(128);
	while ((info = mailbox_list_iter_next(ctx->iter)) != NULL) {
		if ((info->flags & MAILBOX_CHILD_SUBSCRIBED) != 0 &&
		    (info->flags & MAILBOX_SUBSCRIBED) == 0 &&
		    ctx->lsub_no_unsubscribed)
			continue;

		str_truncate(mutf7_name, 0);
		if (imap_utf8_to_utf7(info->vname, mutf7_name) < 0)
			i_panic("RLIST: Mailbox name not UTF-8: %s", info->vname);

		str_truncate(str, 0);
		str_printfa(str, "* %s (", ctx->lsub ? "LSUB" : "LIST");
		referral_list_append_flags(ctx, str, info);
		str_append(str, ") ");
		referral_list_append_sep(str, mail_namespace_get_sep(info->ns));
		str_append_c(str, ' ');
		imap_append_astring(str, str_c(mutf7_name));
		if (ctx->extended &&
		    (ctx->list_flags & MAILBOX_LIST_ITER_SELECT_RECURSIVEMATCH) != 0) {
			if ((info->flags & MAILBOX_CHILD_SUBSCRIBED) != 0)
				str_append(str, " (CHILDINFO (\"SUBSCRIBED\"))");
			if ((info->flags & MAILBOX_CHILD_SPECIALUSE) != 0)
				str_append(str, " (CHILDINFO (\"SPECIAL-USE\"))");
		}

		ret = client_send_line_next(cmd->client, str_c(str));
		if (ctx->used_status) T_BEGIN {
			referral_list_send_status(ctx, info, str_c(mutf7_name));
		} T_END;
		if (ret == 0) {
			/* buffer is full, continue later */
			return FALSE;
		}
	}

	ret = mailbox_list_iter_deinit(&ctx->iter);
	/* another listing of the session may have failed meanwhile:
	   compare counts, don't just look at the last error */
	if (mailbox_referrals_list_failures(ctx->user, &error) !=
	    ctx->failures_before) {
		/* what was sent stays sent, but the list is incomplete */
		client_send_tagline(cmd, t_strdup_printf(
			"NO [UNAVAILABLE] %s", error));
	} else if (ret < 0) {
		client_send_list_error(cmd, ctx->user->namespaces->list);
	} else {
		client_send_tagline(cmd, ctx->lsub ?
				    "OK Lsub completed." : "OK List completed.");
	}
	return TRUE;
}

static const char *
referral_list_utf8(struct client_command_context *cmd, const char *name)
{
	string_t *str = t_str_new(64);

	if (imap_utf7_to_utf8(name, str) < 0)
		return name;
	return p_strdup(cmd->pool, str_c(str));
}

/* [(<selection options>)] <reference> <pattern>|(<patterns>)
   [RETURN (<return options>)]; RLIST and RLSUB take only the reference
   and one pattern, like LIST and LSUB. */
static bool
referral_list_full(struct client_command_context *cmd,
		   const struct imap_arg *args, bool lsub)
{
	struct referral_list_context *ctx;
	const struct imap_arg *list_args;
	ARRAY_TYPE(const_string) patterns;
	const char *ref, *pattern, *error;
	struct mail_namespace *ns;

	ctx = p_new(cmd->pool, struct referral_list_context, 1);
	ctx->cmd = cmd;
	ctx->user = cmd->client->user;
	ctx->lsub = lsub;
	p_array_init(&patterns, cmd->pool, 4);

	if (!lsub && imap_arg_get_list(&args[0], &list_args)) {
		ctx->extended = TRUE;
		if (!referral_list_parse_select(ctx, list_args))
			return TRUE;
		args++;
	}
	if (!imap_arg_get_astring(&args[0], &ref)) {
		client_send_command_error(cmd, "Invalid reference.");
		return TRUE;
	}
	ref = referral_list_utf8(cmd, ref);
	if (!lsub && imap_arg_get_list(&args[1], &list_args)) {
		ctx->extended = TRUE;
		for (; !IMAP_ARG_IS_EOL(list_args); list_args++) {
			if (!imap_arg_get_astring(list_args, &pattern)) {
				client_send_command_error(cmd,
					"Invalid pattern list.");
				return TRUE;
			}
			pattern = referral_list_utf8(cmd, pattern);
			array_push_back(&patterns, &pattern);
		}
	} else {
		size_t len;

		if (!imap_arg_get_astring(&args[1], &pattern)) {
			client_send_command_error(cmd, "Invalid pattern.");
			return TRUE;
		}
		pattern = referral_list_utf8(cmd, pattern);
		array_push_back(&patterns, &pattern);
		len = strlen(pattern);
		ctx->lsub_no_unsubscribed = lsub &&
			(len == 0 || pattern[len-1] != '%');
	}
	args += 2;
	if (!lsub && imap_arg_atom_equals(&args[0], "RETURN") &&
	    imap_arg_get_list(&args[1], &list_args)) {
		ctx->extended = TRUE;
		if (!referral_list_parse_return(ctx, list_args))
			return TRUE;
		args += 2;
	}
	if (!IMAP_ARG_IS_EOL(args)) {
		client_send_command_error(cmd, "Extra arguments.");
		return TRUE;
	}

	if (lsub) {
		/* as Dovecot's LSUB */
		ctx->list_flags |= MAILBOX_LIST_ITER_SELECT_SUBSCRIBED |
			MAILBOX_LIST_ITER_SELECT_RECURSIVEMATCH |
			MAILBOX_LIST_ITER_RETURN_SPECIALUSE;
		if ((cmd->client->set->parsed_workarounds &
		     WORKAROUND_TB_LSUB_FLAGS) == 0)
			ctx->list_flags |= MAILBOX_LIST_ITER_RETURN_NO_FLAGS;
	} else if (!ctx->extended) {
		ctx->list_flags |= MAILBOX_LIST_ITER_RETURN_CHILDREN |
			MAILBOX_LIST_ITER_RETURN_SPECIALUSE;
	}

	if (*ref != '\0') {
		/* join the reference to every pattern */
		const char **pat;

		ns = mail_namespace_find(ctx->user->namespaces, ref);
		array_foreach_modifiable(&patterns, pat) {
			*pat = p_strdup(cmd->pool,
				mailbox_list_join_refpattern(ns->list, ref, *pat));
		}
	}
	array_append_zero(&patterns);

	cmd->context = ctx;
	ctx->failures_before =
		mailbox_referrals_list_failures(ctx->user, &error);
	ctx->iter = mailbox_list_iter_init_namespaces(ctx->user->namespaces,
		array_front(&patterns), MAIL_NAMESPACE_TYPE_MASK_ALL,
		ctx->list_flags | MAILBOX_LIST_ITER_REFERRAL_REMOTE);

	if (!referral_list_continue(cmd)) {
		cmd->state = CLIENT_COMMAND_STATE_WAIT_OUTPUT;
		cmd->func = referral_list_continue;
		return FALSE;
	}
	cmd->context = NULL;
	return TRUE;
}

/* Returns TRUE if (checked basic) args are RLIST <ref> "": the request for
   the hierarchy separator, which Dovecot's own LIST answers. */
static bool referral_list_is_root_request(const struct imap_arg *args)
{
	const char *pattern;

	return imap_arg_get_astring(&args[1], &pattern) && *pattern == '\0';
}

/* Returns TRUE if args are exactly <reference> <mailbox> (RFC 2193 gives
   RLIST and RLSUB LIST's basic syntax only); else answers BAD. */
static bool
referral_list_check_basic_args(struct client_command_context *cmd,
			       const struct imap_arg *args)
{
	/* the array ends with EOL: args[n+1] exists when args[n] isn't EOL */
	if (IMAP_ARG_IS_EOL(&args[0]) || args[0].type == IMAP_ARG_LIST ||
	    IMAP_ARG_IS_EOL(&args[1]) || args[1].type == IMAP_ARG_LIST ||
	    !IMAP_ARG_IS_EOL(&args[2])) {
		client_send_command_error(cmd, t_strdup_printf(
			"%s takes a reference and a mailbox pattern.",
			t_str_ucase(cmd->name)));
		return FALSE;
	}
	return TRUE;
}

static bool cmd_rlist_full(struct client_command_context *cmd, bool lsub)
{
	const struct imap_arg *args;

	if (!client_read_args(cmd, 0, 0, &args))
		return FALSE;
	if (!referral_list_check_basic_args(cmd, args))
		return TRUE;
	if (!lsub && referral_list_is_root_request(args))
		return referral_orig_cmd_list(cmd);
	return referral_list_full(cmd, args, lsub);
}

static bool cmd_rlist(struct client_command_context *cmd)
{
	return cmd_rlist_full(cmd, FALSE);
}

static bool cmd_rlsub(struct client_command_context *cmd)
{
	return cmd_rlist_full(cmd, TRUE);
}

static bool referral_list_args_have_remote(const struct imap_arg *args)
{
	const struct imap_arg *list_args;
	const char *str;

	if (!imap_arg_get_list(&args[0], &list_args))
		return FALSE;
	for (; !IMAP_ARG_IS_EOL(list_args); list_args++) {
		if (imap_arg_get_atom(list_args, &str) &&
		    strcasecmp(str, "REMOTE") == 0)
			return TRUE;
	}
	return FALSE;
}

static bool cmd_referral_list(struct client_command_context *cmd)
{
	const struct imap_arg *args;

	if (!client_read_args(cmd, 0, 0, &args))
		return FALSE;
	if (!referral_list_args_have_remote(args)) {
		/* Dovecot's LIST reads the same, already parsed, arguments */
		return referral_orig_cmd_list(cmd);
	}
	return referral_list_full(cmd, args, FALSE);
}

void imap_referral_list_commands_init(void)
{
	struct command *list = command_find("LIST");

	i_assert(list != NULL);
	referral_orig_cmd_list = list->func;
	referral_orig_cmd_list_flags = list->flags;
	command_unregister("LIST");
	command_register("LIST", cmd_referral_list,
			 referral_orig_cmd_list_flags);
	command_register("RLIST", cmd_rlist, referral_orig_cmd_list_flags);
	command_register("RLSUB", cmd_rlsub, referral_orig_cmd_list_flags);
}

void imap_referral_list_commands_deinit(void)
{
	command_unregister("RLSUB");
	command_unregister("RLIST");
	command_unregister("LIST");
	command_register("LIST", referral_orig_cmd_list,
			 referral_orig_cmd_list_flags);
}

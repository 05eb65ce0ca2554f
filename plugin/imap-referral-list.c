/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The listings that show remote mailboxes: RLIST and RLSUB (RFC 2193
   section 5) and LIST with the REMOTE selection option (RFC 5258).

   The three commands share one argument parser, driven by the table of
   options below, and one output loop. The entries come from the normal
   mailbox list iteration, which the mail plugin extends with the
   directory's mailboxes when the iteration flags include
   MAILBOX_LIST_ITER_REFERRAL_REMOTE; the output loop is ours because
   Dovecot's LIST has no way to print \Remote. LIST without REMOTE and the
   hierarchy separator request RLIST <ref> "" are left to Dovecot's LIST.

   This file is the IMAP plugin's core module,
   lib21_imap_mailbox_referrals_core_plugin.so: the IMAP plugin's module
   registers the commands and loads it at a session's first RLIST, RLSUB
   or LIST (imap-referral-commands.c). */

#include "imap-common.h"
#include "array.h"
#include "str.h"
#include "str-sanitize.h"
#include "imap-quote.h"
#include "imap-utf7.h"
#include "imap-list.h"
#include "imap-status.h"
#include "imap-commands.h"
#include "mail-namespace.h"
#include "mailbox-list-iter.h"
#include "referral-mailbox-list.h"
#include "referral-plugin.h"
#include "imap-referral-plugin.h"

/* The parenthesised list an option word may appear in */
enum rlist_option_place {
	/* LIST (<selection options>) <reference> <pattern> */
	RLIST_IN_SELECTION,
	/* ... RETURN (<return options>) */
	RLIST_IN_RETURN,
};

enum rlist_option_kind {
	/* adds its iteration flags */
	RLIST_OPT_ITER_FLAGS,
	/* STATUS (<items>) of RFC 5819: followed by a list of its own */
	RLIST_OPT_STATUS,
};

struct rlist_option {
	const char *name;
	enum mailbox_list_iter_flags iter_flags;
	enum rlist_option_kind kind;
	enum rlist_option_place place;
};

/* Every option this module understands, by the list it belongs to. A
   selection option also returns what it selects on (RFC 5258 section 3.1:
   SUBSCRIBED implies the \Subscribed attribute; RFC 6154 section 3 alike
   for SPECIAL-USE). REMOTE is what brings a LIST here at all. */
static const struct rlist_option rlist_options[] = {
	{ "REMOTE", MAILBOX_LIST_ITER_REFERRAL_REMOTE,
	  RLIST_OPT_ITER_FLAGS, RLIST_IN_SELECTION },
	{ "SUBSCRIBED", MAILBOX_LIST_ITER_SELECT_SUBSCRIBED |
			MAILBOX_LIST_ITER_RETURN_SUBSCRIBED,
	  RLIST_OPT_ITER_FLAGS, RLIST_IN_SELECTION },
	{ "SPECIAL-USE", MAILBOX_LIST_ITER_SELECT_SPECIALUSE |
			 MAILBOX_LIST_ITER_RETURN_SPECIALUSE,
	  RLIST_OPT_ITER_FLAGS, RLIST_IN_SELECTION },
	{ "RECURSIVEMATCH", MAILBOX_LIST_ITER_SELECT_RECURSIVEMATCH,
	  RLIST_OPT_ITER_FLAGS, RLIST_IN_SELECTION },

	{ "SUBSCRIBED", MAILBOX_LIST_ITER_RETURN_SUBSCRIBED,
	  RLIST_OPT_ITER_FLAGS, RLIST_IN_RETURN },
	{ "CHILDREN", MAILBOX_LIST_ITER_RETURN_CHILDREN,
	  RLIST_OPT_ITER_FLAGS, RLIST_IN_RETURN },
	{ "SPECIAL-USE", MAILBOX_LIST_ITER_RETURN_SPECIALUSE,
	  RLIST_OPT_ITER_FLAGS, RLIST_IN_RETURN },
	{ "STATUS", 0, RLIST_OPT_STATUS, RLIST_IN_RETURN },
};

/* The selection options RECURSIVEMATCH can refine; REMOTE is not one of
   them (RFC 5258 section 3.1). */
#define RLIST_RECURSIVEMATCH_BASES \
	(MAILBOX_LIST_ITER_SELECT_SUBSCRIBED | \
	 MAILBOX_LIST_ITER_SELECT_SPECIALUSE)

struct rlist_context {
	struct client_command_context *cmd;
	struct mail_user *user;

	enum mailbox_list_iter_flags iter_flags;
	/* UTF-8 patterns, the reference joined in; NULL-terminated once
	   parsed */
	ARRAY_TYPE(const_string) patterns;
	struct imap_status_items status;
	struct mailbox_list_iterate_context *iter;

	/* mailbox_referrals_list_failures() before the iteration began */
	unsigned int failures_at_start;

	/* RLIST or RLSUB: RFC 3501's syntax and attributes, no \Remote */
	bool basic:1;
	/* RLSUB: LSUB replies */
	bool lsub_replies:1;
	/* RLSUB with a pattern that does not end in '%': a parent listed
	   only for a subscribed child is left out (RFC 3501 section 6.3.9) */
	bool hide_unsubscribed_parents:1;
	/* RETURN (STATUS (...)) */
	bool want_status:1;
};

/* Dovecot's own LIST, for the plain listings */
static command_func_t *dovecot_cmd_list;

const char *imap_mailbox_referrals_core_plugin_version = DOVECOT_ABI_VERSION;

void imap_mailbox_referrals_core_plugin_init(struct module *module);
void imap_mailbox_referrals_core_plugin_deinit(void);

static const struct rlist_option *
rlist_option_find(const char *name, enum rlist_option_place place)
{
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(rlist_options); i++) {
		if (rlist_options[i].place == place &&
		    strcasecmp(rlist_options[i].name, name) == 0)
			return &rlist_options[i];
	}
	return NULL;
}

/* Answers the command BAD and returns FALSE. RLIST and RLSUB have one
   syntax only, so their answer names it rather than the detail; the
   answer never quotes the client's words. */
static bool rlist_syntax_error(struct rlist_context *ctx, const char *detail)
{
	const char *text = detail;

	if (ctx->basic) {
		text = t_strdup_printf(
			"%s takes a reference and a mailbox pattern.",
			ctx->lsub_replies ? "RLSUB" : "RLIST");
	}
	client_send_command_error(ctx->cmd, text);
	return FALSE;
}

/* Reads a parenthesised list of options of one place. Repeating a plain
   option is harmless and accepted; a second STATUS is refused, since the
   client's intent (which items) would be a guess. Returns FALSE after
   answering BAD. */
static bool
rlist_parse_options(struct rlist_context *ctx, const struct imap_arg *args,
		    enum rlist_option_place place)
{
	const struct rlist_option *opt;
	const struct imap_arg *items;
	const char *word;

	while (!IMAP_ARG_IS_EOL(args)) {
		opt = !imap_arg_get_atom(args, &word) ? NULL :
			rlist_option_find(word, place);
		if (opt == NULL) {
			return rlist_syntax_error(ctx,
				place == RLIST_IN_SELECTION ?
				"Unknown LIST selection option." :
				"Unknown LIST return option.");
		}
		args++;

		ctx->iter_flags |= opt->iter_flags;
		if (opt->kind != RLIST_OPT_STATUS)
			continue;
		if (ctx->want_status) {
			return rlist_syntax_error(ctx,
				"STATUS return option given twice.");
		}
		if (!imap_arg_get_list(args, &items)) {
			return rlist_syntax_error(ctx,
				"STATUS return option needs a list of items.");
		}
		/* answers BAD itself on an unknown or empty item list */
		if (imap_status_parse_items(ctx->cmd, items,
					    &ctx->status) < 0)
			return FALSE;
		ctx->want_status = TRUE;
		args++;
	}
	return TRUE;
}

/* Names arrive in modified UTF-7; the iteration matches UTF-8. Text that is
   not valid modified UTF-7 is matched as the client sent it. */
static const char *rlist_to_utf8(struct rlist_context *ctx, const char *name)
{
	string_t *utf8 = t_str_new(64);

	if (imap_utf7_to_utf8(name, utf8) < 0)
		return name;
	return p_strdup(ctx->cmd->pool, str_c(utf8));
}

/* Adds a pattern, interpreted in the context of the reference (RFC 3501
   section 6.3.8). ref_list is the mailbox list of the namespace holding a
   non-empty reference, which knows how the two join (its separator, its
   prefix); NULL for an empty reference. */
static void
rlist_add_pattern(struct rlist_context *ctx, struct mailbox_list *ref_list,
		  const char *ref, const char *pattern)
{
	pattern = rlist_to_utf8(ctx, pattern);
	if (ref_list != NULL) {
		pattern = p_strdup(ctx->cmd->pool,
			mailbox_list_join_refpattern(ref_list, ref, pattern));
	}
	array_push_back(&ctx->patterns, &pattern);
}

/* [(<selection options>)] <reference> <pattern> | (<pattern> ...)
   [RETURN (<return options>)]; RLIST and RLSUB take only <reference>
   <pattern>. Returns FALSE after answering BAD. */
static bool rlist_parse(struct rlist_context *ctx, const struct imap_arg *args)
{
	const struct imap_arg *list;
	struct mailbox_list *ref_list = NULL;
	const char *ref, *pattern;
	size_t len;

	if (imap_arg_get_list(args, &list)) {
		if (ctx->basic)
			return rlist_syntax_error(ctx, NULL);
		if (!rlist_parse_options(ctx, list, RLIST_IN_SELECTION))
			return FALSE;
		if ((ctx->iter_flags &
		     MAILBOX_LIST_ITER_SELECT_RECURSIVEMATCH) != 0 &&
		    (ctx->iter_flags & RLIST_RECURSIVEMATCH_BASES) == 0) {
			return rlist_syntax_error(ctx, "RECURSIVEMATCH "
				"needs SUBSCRIBED or SPECIAL-USE.");
		}
		args++;
	}

	if (!imap_arg_get_astring(args, &ref))
		return rlist_syntax_error(ctx, "Missing or invalid reference.");
	ref = rlist_to_utf8(ctx, ref);
	if (*ref != '\0') {
		/* mail_namespace_find() always finds one: there is always a
		   namespace with the prefix "" */
		ref_list = mail_namespace_find(ctx->user->namespaces,
					       ref)->list;
	}
	args++;

	if (imap_arg_get_list(args, &list)) {
		if (ctx->basic)
			return rlist_syntax_error(ctx, NULL);
		/* RFC 5258's patterns: one or more */
		if (IMAP_ARG_IS_EOL(list))
			return rlist_syntax_error(ctx, "Empty pattern list.");
		for (; !IMAP_ARG_IS_EOL(list); list++) {
			if (!imap_arg_get_astring(list, &pattern)) {
				return rlist_syntax_error(ctx,
					"Invalid mailbox pattern.");
			}
			rlist_add_pattern(ctx, ref_list, ref, pattern);
		}
	} else if (imap_arg_get_astring(args, &pattern)) {
		len = strlen(pattern);
		ctx->hide_unsubscribed_parents = ctx->lsub_replies &&
			(len == 0 || pattern[len - 1] != '%');
		rlist_add_pattern(ctx, ref_list, ref, pattern);
	} else {
		return rlist_syntax_error(ctx,
			"Missing or invalid mailbox pattern.");
	}
	args++;

	if (!ctx->basic && imap_arg_atom_equals(args, "RETURN")) {
		if (!imap_arg_get_list(&args[1], &list)) {
			return rlist_syntax_error(ctx,
				"RETURN needs a list of return options.");
		}
		if (!rlist_parse_options(ctx, list, RLIST_IN_RETURN))
			return FALSE;
		args += 2;
	}
	if (!IMAP_ARG_IS_EOL(args)) {
		return rlist_syntax_error(ctx,
			"Unexpected arguments after the mailbox pattern.");
	}
	return TRUE;
}

/* The name is listed only because a mailbox below it is subscribed */
static bool rlist_only_child_subscribed(enum mailbox_info_flags flags)
{
	return (flags & (MAILBOX_SUBSCRIBED | MAILBOX_CHILD_SUBSCRIBED)) ==
		MAILBOX_CHILD_SUBSCRIBED;
}

static void rlist_append_word(string_t *dest, const char *word, bool *first)
{
	if (!*first)
		str_append_c(dest, ' ');
	str_append(dest, word);
	*first = FALSE;
}

/* Returns TRUE if info is its namespace's root: "Public" of "Public/" */
static bool rlist_is_namespace_root(const struct mailbox_info *info)
{
	const struct mail_namespace *ns = info->ns;

	return ns->prefix_len > 0 &&
		strlen(info->vname) == ns->prefix_len - 1 &&
		strncmp(info->vname, ns->prefix, ns->prefix_len - 1) == 0;
}

/* The entry's flags. lib-storage lists a namespace root itself and tells
   whether it has children by a listing of its own, made without REMOTE,
   in which the mail plugin hides remote mailboxes: a root whose children
   are all remote comes as \HasNoChildren, and a client browsing with "%"
   would never open it. Ask again with REMOTE. If the directory fails
   meanwhile, the failure counts in mailbox_referrals_list_failures() and
   the command ends NO [UNAVAILABLE]. */
static enum mailbox_info_flags
rlist_entry_flags(const struct mailbox_info *info)
{
	struct mailbox_list_iterate_context *iter;
	bool found;

	if ((info->flags & MAILBOX_NOCHILDREN) == 0 ||
	    !rlist_is_namespace_root(info) ||
	    !mailbox_referrals_list_enabled(info->ns->list))
		return info->flags;

	iter = mailbox_list_iter_init(info->ns->list,
		t_strconcat(info->ns->prefix, "%", NULL),
		MAILBOX_LIST_ITER_RETURN_NO_FLAGS |
		MAILBOX_LIST_ITER_REFERRAL_REMOTE);
	found = mailbox_list_iter_next(iter) != NULL;
	(void)mailbox_list_iter_deinit(&iter);
	if (!found)
		return info->flags;
	return (info->flags & ENUM_NEGATE(MAILBOX_NOCHILDREN)) |
		MAILBOX_CHILDREN;
}

/* The attributes of an entry, as far as this command asked for them */
static void
rlist_append_attributes(const struct rlist_context *ctx,
			const struct mailbox_info *info,
			enum mailbox_info_flags flags, string_t *dest)
{
	enum mailbox_info_flags hidden = MAILBOX_REFERRAL_REMOTE;
	bool first;

	/* RFC 3501 has neither \NonExistent nor CHILDINFO: a name that is
	   only the parent of others, or (RLSUB) only of a subscribed
	   mailbox, cannot be selected there */
	if (ctx->basic) {
		hidden |= MAILBOX_NONEXISTENT;
		if ((flags & MAILBOX_NONEXISTENT) != 0 ||
		    rlist_only_child_subscribed(flags))
			flags |= MAILBOX_NOSELECT;
	}
	if ((ctx->iter_flags & MAILBOX_LIST_ITER_RETURN_CHILDREN) == 0)
		hidden |= MAILBOX_CHILDREN | MAILBOX_NOCHILDREN;
	if ((ctx->iter_flags & MAILBOX_LIST_ITER_RETURN_SUBSCRIBED) == 0)
		hidden |= MAILBOX_SUBSCRIBED;

	first = !imap_mailbox_flags2str(dest, flags & ENUM_NEGATE(hidden));
	/* RFC 5258's attribute; RFC 2193's RLIST predates it */
	if (!ctx->basic && (flags & MAILBOX_REFERRAL_REMOTE) != 0)
		rlist_append_word(dest, "\\Remote", &first);
	if ((ctx->iter_flags & MAILBOX_LIST_ITER_RETURN_SPECIALUSE) != 0 &&
	    info->special_use != NULL)
		rlist_append_word(dest, info->special_use, &first);
}

/* RFC 5258 section 3.5: with RECURSIVEMATCH, why a name that does not match
   the selection itself is listed. One extended item with all reasons. */
static void
rlist_append_childinfo(const struct rlist_context *ctx,
		       enum mailbox_info_flags flags, string_t *dest)
{
	bool first = TRUE;

	if (ctx->basic ||
	    (ctx->iter_flags & MAILBOX_LIST_ITER_SELECT_RECURSIVEMATCH) == 0 ||
	    (flags & (MAILBOX_CHILD_SUBSCRIBED |
		      MAILBOX_CHILD_SPECIALUSE)) == 0)
		return;

	str_append(dest, " (\"CHILDINFO\" (");
	if ((flags & MAILBOX_CHILD_SUBSCRIBED) != 0)
		rlist_append_word(dest, "\"SUBSCRIBED\"", &first);
	if ((flags & MAILBOX_CHILD_SPECIALUSE) != 0)
		rlist_append_word(dest, "\"SPECIAL-USE\"", &first);
	str_append(dest, "))");
}

/* The STATUS line that follows an entry's LIST line (RFC 5819), for a
   selectable local mailbox that the selection matched itself. A remote
   mailbox's status is its servers' business: it is listed without. */
static void
rlist_send_status(struct rlist_context *ctx, const struct mailbox_info *info,
		  const char *wire_name)
{
	struct client *client = ctx->cmd->client;
	struct imap_status_result result;
	struct mail_namespace *holder;

	if ((info->flags & (MAILBOX_REFERRAL_REMOTE | MAILBOX_NONEXISTENT |
			    MAILBOX_NOSELECT)) != 0)
		return;
	if ((ctx->iter_flags & MAILBOX_LIST_ITER_SELECT_SUBSCRIBED) != 0 &&
	    (info->flags & MAILBOX_SUBSCRIBED) == 0)
		return;

	/* info->ns is where the name was listed, which for subscriptions
	   may be the namespace keeping them rather than the one holding the
	   mailbox: ask the holder */
	holder = mail_namespace_find(ctx->user->namespaces, info->vname);
	if (imap_status_get(ctx->cmd, holder, info->vname, &ctx->status,
			    &result) < 0) {
		/* an untagged NO; the listing goes on */
		client_send_line(client,
				 t_strdup_printf("* %s", result.errstr));
		return;
	}
	(void)imap_status_send(client, wire_name, &ctx->status, &result);
}

/* Sends one entry: its LIST (LSUB) line and, if asked, its STATUS line.
   Returns what client_send_line_next() said of the LIST line: 1 go on, 0
   the output buffer is full, -1 the client is gone. */
static int
rlist_send_entry(struct rlist_context *ctx, const struct mailbox_info *info)
{
	string_t *line, *wire_name;
	char sep;
	int ret;

	if (ctx->hide_unsubscribed_parents &&
	    rlist_only_child_subscribed(info->flags))
		return 1;

	wire_name = t_str_new(128);
	if (imap_utf8_to_utf7(info->vname, wire_name) < 0) {
		/* lib-storage and the directory layer hand out UTF-8 only;
		   should one not, leave it out rather than end the process */
		e_warning(ctx->cmd->event, "Listing skips a name that is not "
			  "UTF-8: %s", str_sanitize(info->vname, 256));
		return 1;
	}

	line = t_str_new(256);
	str_append(line, ctx->lsub_replies ? "* LSUB (" : "* LIST (");
	rlist_append_attributes(ctx, info, rlist_entry_flags(info), line);
	str_append(line, ") ");
	sep = mail_namespace_get_sep(info->ns);
	imap_append_nstring(line, sep == '\0' ? NULL : t_strndup(&sep, 1));
	str_append_c(line, ' ');
	imap_append_astring(line, str_c(wire_name));
	rlist_append_childinfo(ctx, info->flags, line);

	ret = client_send_line_next(ctx->cmd->client, str_c(line));
	if (ret >= 0 && ctx->want_status)
		rlist_send_status(ctx, info, str_c(wire_name));
	return ret;
}

/* Ends the iteration and sends the tagged reply. Entries already sent stay
   sent: when the directory failed meanwhile, NO [UNAVAILABLE] tells the
   client that the list is incomplete, never OK. */
static void rlist_finish(struct rlist_context *ctx)
{
	const char *error;
	int ret;

	ret = mailbox_list_iter_deinit(&ctx->iter);
	/* another listing of this session may have failed meanwhile too:
	   compare counts rather than look at the last error */
	if (mailbox_referrals_list_failures(ctx->user, &error) !=
	    ctx->failures_at_start) {
		client_send_tagline(ctx->cmd, t_strconcat(
			"NO [UNAVAILABLE] ", error, NULL));
	} else if (ret < 0) {
		client_send_list_error(ctx->cmd, ctx->user->namespaces->list);
	} else {
		client_send_tagline(ctx->cmd, ctx->lsub_replies ?
			"OK Lsub completed." : "OK List completed.");
	}
}

/* The command's function while entries remain: sends as many as the
   output buffer takes. Returns TRUE when the command is done. A client that
   is gone ends the listing at once, whether a write failed or Dovecot
   cancels the waiting command as it ends the session: the same path, as
   the tagged reply is dropped for a closed or cancelled command anyway. */
static bool rlist_send_more(struct client_command_context *cmd)
{
	struct rlist_context *ctx = cmd->context;
	const struct mailbox_info *info;
	int ret = cmd->cancel ? -1 : 1;

	while (ret > 0 && (info = mailbox_list_iter_next(ctx->iter)) != NULL) {
		/* one data stack frame per entry: listings can be long */
		T_BEGIN {
			ret = rlist_send_entry(ctx, info);
		} T_END;
	}
	if (ret == 0) {
		/* the output buffer is full: called again once it drains */
		return FALSE;
	}
	/* all sent, or the client is gone (ret < 0) */
	rlist_finish(ctx);
	return TRUE;
}

/* What RLIST and RLSUB ask of the iteration: what Dovecot's LIST and LSUB
   return, and the remote mailboxes. */
static enum mailbox_list_iter_flags
rlist_basic_iter_flags(struct client_command_context *cmd, bool lsub)
{
	enum mailbox_list_iter_flags flags =
		MAILBOX_LIST_ITER_RETURN_SPECIALUSE |
		MAILBOX_LIST_ITER_REFERRAL_REMOTE;
	enum imap_client_workarounds workarounds =
		cmd->client->set->parsed_workarounds;

	if (!lsub)
		return flags | MAILBOX_LIST_ITER_RETURN_CHILDREN;

	/* subscriptions, with the parents of subscribed mailboxes (shown
	   \Noselect); LSUB's other attributes only for clients that need
	   Dovecot's tb-lsub-flags workaround */
	flags |= MAILBOX_LIST_ITER_SELECT_SUBSCRIBED;
	flags |= MAILBOX_LIST_ITER_SELECT_RECURSIVEMATCH;
	if ((workarounds & WORKAROUND_TB_LSUB_FLAGS) == 0)
		flags |= MAILBOX_LIST_ITER_RETURN_NO_FLAGS;
	return flags;
}

/* Runs RLIST (basic), RLSUB (basic, lsub) or LIST (REMOTE) on the
   command's parsed arguments. */
static bool
rlist_run(struct client_command_context *cmd, const struct imap_arg *args,
	  bool basic, bool lsub)
{
	struct rlist_context *ctx;
	const char *error;

	ctx = p_new(cmd->pool, struct rlist_context, 1);
	ctx->cmd = cmd;
	ctx->user = cmd->client->user;
	ctx->basic = basic;
	ctx->lsub_replies = lsub;
	if (basic)
		ctx->iter_flags = rlist_basic_iter_flags(cmd, lsub);
	p_array_init(&ctx->patterns, cmd->pool, 4);
	if (!rlist_parse(ctx, args))
		return TRUE;
	array_append_zero(&ctx->patterns);

	ctx->failures_at_start =
		mailbox_referrals_list_failures(ctx->user, &error);
	ctx->iter = mailbox_list_iter_init_namespaces(ctx->user->namespaces,
		array_front(&ctx->patterns), MAIL_NAMESPACE_TYPE_MASK_ALL,
		ctx->iter_flags);
	cmd->context = ctx;
	if (rlist_send_more(cmd))
		return TRUE;
	cmd->state = CLIENT_COMMAND_STATE_WAIT_OUTPUT;
	cmd->func = rlist_send_more;
	return FALSE;
}

static bool cmd_rlist(struct client_command_context *cmd)
{
	const struct imap_arg *args;
	const char *pattern;

	if (!client_read_args(cmd, 0, 0, &args))
		return FALSE;
	mailbox_referrals_user_set_aware(cmd->client->user);
	/* RLIST <ref> "": the request for the hierarchy separator and root,
	   whose answer does not depend on where mailboxes live */
	if (!IMAP_ARG_IS_EOL(args) && args[0].type != IMAP_ARG_LIST &&
	    imap_arg_get_astring(&args[1], &pattern) && *pattern == '\0' &&
	    IMAP_ARG_IS_EOL(&args[2]))
		return dovecot_cmd_list(cmd);
	return rlist_run(cmd, args, TRUE, FALSE);
}

static bool cmd_rlsub(struct client_command_context *cmd)
{
	const struct imap_arg *args;

	if (!client_read_args(cmd, 0, 0, &args))
		return FALSE;
	mailbox_referrals_user_set_aware(cmd->client->user);
	return rlist_run(cmd, args, TRUE, TRUE);
}

/* Returns TRUE if the arguments begin with selection options that include
   REMOTE. */
static bool rlist_args_select_remote(const struct imap_arg *args)
{
	const struct imap_arg *opts;
	const struct rlist_option *opt;
	const char *word;

	if (!imap_arg_get_list(args, &opts))
		return FALSE;
	for (; !IMAP_ARG_IS_EOL(opts); opts++) {
		if (!imap_arg_get_atom(opts, &word))
			continue;
		opt = rlist_option_find(word, RLIST_IN_SELECTION);
		if (opt != NULL &&
		    (opt->iter_flags & MAILBOX_LIST_ITER_REFERRAL_REMOTE) != 0)
			return TRUE;
	}
	return FALSE;
}

static bool cmd_list_maybe_remote(struct client_command_context *cmd)
{
	const struct imap_arg *args;

	if (!client_read_args(cmd, 0, 0, &args))
		return FALSE;
	if (!rlist_args_select_remote(args)) {
		/* Dovecot's LIST reads the same arguments again, parsed */
		return dovecot_cmd_list(cmd);
	}
	mailbox_referrals_user_set_aware(cmd->client->user);
	return rlist_run(cmd, args, FALSE, FALSE);
}

static const struct imap_referral_core_vfuncs imap_referral_core_vfuncs = {
	.cmd_rlist = cmd_rlist,
	.cmd_rlsub = cmd_rlsub,
	.cmd_list = cmd_list_maybe_remote,
	.command_pre = imap_referral_proxy_command_pre,
};

void imap_mailbox_referrals_core_plugin_init(struct module *module ATTR_UNUSED)
{
	dovecot_cmd_list = imap_referral_core_register(&imap_referral_core_vfuncs);
}

void imap_mailbox_referrals_core_plugin_deinit(void)
{
	imap_referral_core_unregister();
}

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "str.h"
#include "imap-arg.h"
#include "imap-util.h"
#include "referral-imap-arg.h"

/* Write a client's argument for the remote server: as the client sent
   it, but a literal (or a string that can only be one) as a
   non-synchronizing literal: commands are sent in one go. */
bool referral_imap_arg_closes_section(const struct imap_arg *arg)
{
	/* imap's parser splits BODY[HEADER.FIELDS (A B)] into an atom,
	   a list and the atom "]": the client wrote no space before it */
	return arg->type == IMAP_ARG_ATOM && imap_arg_as_astring(arg)[0] == ']';
}

bool referral_imap_write_arg(string_t *dest, const struct imap_arg *arg,
			 bool literal_plus)
{
	const struct imap_arg *list;
	const char *value;
	bool first = TRUE;

	switch (arg->type) {
	case IMAP_ARG_LIST:
		str_append_c(dest, '(');
		for (list = imap_arg_as_list(arg); !IMAP_ARG_IS_EOL(list); list++) {
			if (!first && !referral_imap_arg_closes_section(list))
				str_append_c(dest, ' ');
			first = FALSE;
			if (!referral_imap_write_arg(dest, list, literal_plus))
				return FALSE;
		}
		str_append_c(dest, ')');
		return TRUE;
	case IMAP_ARG_LITERAL:
	case IMAP_ARG_STRING:
		value = imap_arg_as_astring(arg);
		if (arg->type == IMAP_ARG_STRING &&
		    strpbrk(value, "\r\n") == NULL) {
			imap_write_arg(dest, arg);
			return TRUE;
		}
		if (!literal_plus)
			return FALSE;
		str_printfa(dest, "{%zu+}\r\n%s", strlen(value), value);
		return TRUE;
	default:
		imap_write_arg(dest, arg);
		return TRUE;
	}
}

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "str.h"
#include "istream.h"
#include "imap-parser.h"
#include "test-common.h"
#include "referral-imap-arg.h"

/* Parse line as imap parses a command's arguments, and write them back
   as the proxy sends them to a remote server. */
static const char *test_rewrite(const char *line, bool literal_plus)
{
	struct istream *input;
	struct imap_parser *parser;
	const struct imap_arg *args;
	string_t *str = t_str_new(128);
	const char *result;

	input = i_stream_create_from_data(line, strlen(line));
	parser = imap_parser_create(input, NULL, 1024, NULL);
	(void)i_stream_read(input);
	if (imap_parser_finish_line(parser, 0, IMAP_PARSE_FLAG_LITERAL8,
				    &args) < 0)
		i_panic("%s: parse failed", line);
	for (; !IMAP_ARG_IS_EOL(args); args++) {
		if (str_len(str) > 0 && !referral_imap_arg_closes_section(args))
			str_append_c(str, ' ');
		if (!referral_imap_write_arg(str, args, literal_plus)) {
			str_truncate(str, 0);
			str_append(str, "<needs a literal>");
			break;
		}
	}
	result = t_strdup(str_c(str));
	imap_parser_unref(&parser);
	i_stream_unref(&input);
	return result;
}

static void test_referral_imap_arg_rewrite(void)
{
	static const struct {
		const char *in, *out;
		bool literal_plus;
	} tests[] = {
		{ "1:* (UID FLAGS)\r\n", "1:* (UID FLAGS)", TRUE },
		/* the section's "]" follows its field list */
		{ "1 (BODY.PEEK[HEADER.FIELDS (SUBJECT DATE)])\r\n",
		  "1 (BODY.PEEK[HEADER.FIELDS (SUBJECT DATE)])", TRUE },
		{ "1 BODY.PEEK[HEADER.FIELDS.NOT (TO)]<0.10>\r\n",
		  "1 BODY.PEEK[HEADER.FIELDS.NOT (TO)]<0.10>", TRUE },
		{ "CHARSET UTF-8 SUBJECT \"a \\\"b\\\"\"\r\n",
		  "CHARSET UTF-8 SUBJECT \"a \\\"b\\\"\"", TRUE },
		/* a string with a line break can only be a literal */
		{ "SUBJECT {3}\r\na\nb\r\n", "SUBJECT {3+}\r\na\nb", TRUE },
		{ "SUBJECT {3}\r\na\nb\r\n", "<needs a literal>", FALSE },
	};
	unsigned int i;

	test_begin("referral imap arg: rewrite");
	for (i = 0; i < N_ELEMENTS(tests); i++) T_BEGIN {
		test_assert_strcmp_idx(test_rewrite(tests[i].in,
						    tests[i].literal_plus),
				       tests[i].out, i);
	} T_END;
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_referral_imap_arg_rewrite,
		NULL
	};
	return test_run(test_functions);
}

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "str.h"
#include "unichar.h"
#include "doveadm-referrals-output.h"

const char *doveadm_referrals_printable(const char *value)
{
	const unsigned char *data = (const unsigned char *)value;
	size_t i, len = strlen(value);
	string_t *str = NULL;
	unichar_t chr;
	int n, k;

	for (i = 0; i < len; i += n) {
		n = uni_utf8_get_char_n(data + i, len - i, &chr);
		if (n > 0 && chr >= 0x20 && !(chr >= 0x7f && chr < 0xa0)) {
			if (str != NULL)
				str_append_data(str, data + i, n);
			continue;
		}
		if (str == NULL) {
			str = t_str_new(len + 32);
			str_append_data(str, data, i);
		}
		/* an invalid or truncated sequence: escape one byte and
		   look again from the next */
		if (n <= 0)
			n = 1;
		for (k = 0; k < n; k++)
			str_printfa(str, "\\%02X", data[i + k]);
	}
	return str == NULL ? value : str_c(str);
}

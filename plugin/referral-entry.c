/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strescape.h"
#include "str-sanitize.h"
#include "unichar.h"
#include "referral-entry.h"

/* Longest directory value quoted in a log line. */
#define REFERRAL_LOG_VALUE_MAX_LEN 128

bool referral_mailbox_name_is_safe(const char *name)
{
	const unsigned char *p;

	if (*name == '\0' || !uni_utf8_str_is_valid(name))
		return FALSE;
	for (p = (const unsigned char *)name; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return FALSE;
	}
	return TRUE;
}

static const char *referral_log_value(const char *value)
{
	return t_strdup_printf("\"%s\"", str_escape(
		str_sanitize(value, REFERRAL_LOG_VALUE_MAX_LEN)));
}

static void ATTR_FORMAT(3, 4)
referral_entry_warn(ARRAY_TYPE(referral_entry_warning) *warnings,
		    enum referral_entry_warning_kind kind,
		    const char *fmt, ...)
{
	struct referral_entry_warning *warning;
	va_list args;

	warning = array_append_space(warnings);
	warning->kind = kind;
	va_start(args, fmt);
	warning->text = t_strdup_vprintf(fmt, args);
	va_end(args);
}

void referral_entry_validate(pool_t pool,
			     const struct referral_directory_entry *input,
			     struct referral_entry *entry_r,
			     ARRAY_TYPE(referral_entry_warning) *warnings)
{
	struct referral_server server;
	const char *const *value, *error;

	i_zero(entry_r);
	entry_r->dn = p_strdup(pool, input->dn);
	entry_r->mailbox = p_strdup(pool, input->mailbox);
	p_array_init(&entry_r->servers, pool, 4);

	if (input->scope == NULL || strcasecmp(input->scope, "mailbox") == 0)
		entry_r->subtree = FALSE;
	else if (strcasecmp(input->scope, "subtree") == 0)
		entry_r->subtree = TRUE;
	else {
		/* Guessing either way could send clients to the wrong
		   server or serve the wrong mailbox: refuse the entry. */
		referral_entry_warn(warnings,
			REFERRAL_ENTRY_WARNING_INVALID_VALUE,
			"Invalid imapReferralScope value %s "
			"(expected mailbox or subtree)",
			referral_log_value(input->scope));
		entry_r->error = "invalid imapReferralScope";
	}

	if (input->remote_name != NULL) {
		if (!referral_mailbox_name_is_safe(input->remote_name)) {
			referral_entry_warn(warnings,
				REFERRAL_ENTRY_WARNING_INVALID_VALUE,
				"Invalid imapReferralRemoteName value %s "
				"(empty, not UTF-8 or has control characters)",
				referral_log_value(input->remote_name));
			entry_r->error = "invalid imapReferralRemoteName";
		} else {
			entry_r->remote_name =
				p_strdup(pool, input->remote_name);
		}
	}

	for (value = input->servers; value != NULL && *value != NULL; value++) {
		if (referral_server_parse(pool, *value, &server, &error) < 0) {
			referral_entry_warn(warnings,
				REFERRAL_ENTRY_WARNING_INVALID_VALUE,
				"Ignoring invalid imapReferralServer value %s: %s",
				referral_log_value(*value), error);
		} else {
			array_push_back(&entry_r->servers, &server);
		}
	}
	if (array_count(&entry_r->servers) > REFERRAL_MAX_SERVERS) {
		referral_entry_warn(warnings,
			REFERRAL_ENTRY_WARNING_TOO_MANY_SERVERS,
			"%u imapReferralServer values, using the %u with the "
			"lowest preference", array_count(&entry_r->servers),
			REFERRAL_MAX_SERVERS);
		referral_servers_sort(&entry_r->servers, 0);
		array_delete(&entry_r->servers, REFERRAL_MAX_SERVERS,
			     array_count(&entry_r->servers) -
			     REFERRAL_MAX_SERVERS);
	}
	if (entry_r->error == NULL && array_count(&entry_r->servers) == 0) {
		referral_entry_warn(warnings, REFERRAL_ENTRY_WARNING_NO_SERVER,
				    "No valid imapReferralServer value");
		entry_r->error = "no valid imapReferralServer";
	}
	if (entry_r->error != NULL)
		array_clear(&entry_r->servers);
}

void referral_entry_parse(pool_t pool,
			  const struct referral_directory_entry *input,
			  struct referral_entry *entry_r,
			  ARRAY_TYPE(const_string) *warnings)
{
	ARRAY_TYPE(referral_entry_warning) values;
	const struct referral_entry_warning *value;
	const char *msg;

	t_array_init(&values, 4);
	referral_entry_validate(pool, input, entry_r, &values);
	array_foreach(&values, value) {
		msg = t_strdup_printf("Directory entry %s: %s",
				      referral_log_value(input->dn),
				      value->text);
		array_push_back(warnings, &msg);
	}
}

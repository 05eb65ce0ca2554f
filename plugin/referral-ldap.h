/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

#ifndef REFERRAL_LDAP_H
#define REFERRAL_LDAP_H

/* Internals of the LDAP directory backend, shared with its unit tests. */

/* Append value to dest escaped for an LDAP filter (RFC 4515), with
   OpenLDAP's own escaping function. */
void referral_ldap_filter_escape(string_t *dest, const char *value);

/* Build the filter that finds the entry for name (unless NULL) or a
   subtree entry for one of its ancestors. Allocated from the data stack. */
const char *referral_ldap_lookup_filter(const char *name,
					const char *const *ancestors);

/* Build the filter that finds every entry whose mailbox starts with prefix.
   Allocated from the data stack. */
const char *referral_ldap_list_filter(const char *prefix);

#endif

/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The service backend's settings. The mail plugin's entry module checks
   them at login (an invalid value fails the login) without loading the
   backend, which parses them again when a session first needs it. */

#include "lib.h"
#include "referral-settings.h"
#include "referral-directory.h"
#include "referral-directory-service.h"

#define REFERRAL_SERVICE_DEFAULT_TIMEOUT_MSECS (5*1000)

int referral_directory_service_settings(
	const struct referral_directory_params *params,
	const char **socket_path_r, unsigned int *timeout_msecs_r,
	const char **error_r)
{
	const char *path;

	path = referral_setting_get(params->lookup, params->lookup_context,
				    "directory_socket");
	if (path == NULL)
		path = REFERRAL_SERVICE_NAME;
	if (path[0] != '/') {
		if (params->base_dir == NULL || params->base_dir[0] == '\0') {
			*error_r = REFERRAL_SETTING_PREFIX"directory_socket: "
				"relative path, but base_dir is not known";
			return -1;
		}
		path = t_strconcat(params->base_dir, "/", path, NULL);
	}
	if (referral_setting_get_time_msecs(params->lookup,
			params->lookup_context, "directory_timeout",
			REFERRAL_SERVICE_DEFAULT_TIMEOUT_MSECS,
			timeout_msecs_r, error_r) < 0)
		return -1;
	if (*timeout_msecs_r == 0) {
		*error_r = REFERRAL_SETTING_PREFIX
			"directory_timeout: must not be 0";
		return -1;
	}
	*socket_path_r = path;
	return 0;
}

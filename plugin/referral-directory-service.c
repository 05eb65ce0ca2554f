/* Copyright (c) 2026 dovecot-mailbox-referrals authors.
   SPDX-License-Identifier: LGPL-2.1-only (see COPYING) */

/* The service backend: asks the mailbox-referrals-directory service over
   its UNIX socket (doc/directory-service-protocol.md). Mailbox vfuncs are
   synchronous, so every request is too: connect (lazily, at the first
   request of the session), send, and read the whole reply, each step
   bounded by one deadline of mailbox_referrals_directory_timeout per
   request, waiting with poll() on the socket. The connection is kept for
   the session; a kept connection that turns out dead (the service was
   restarted) is replaced once per request. Replies are parsed strictly:
   anything unexpected closes the connection and fails the request, which
   the caller turns into NO [UNAVAILABLE]. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strnum.h"
#include "strescape.h"
#include "str-sanitize.h"
#include "net.h"
#include "istream.h"
#include "time-util.h"
#include "referral-directory-private.h"
#include "referral-directory-service.h"

#include <poll.h>
#include <sys/socket.h>

/* Longest part of a bad line quoted in an error. */
#define REFERRAL_SERVICE_MAX_QUOTED 128

struct service_referral_directory {
	struct referral_directory dir;
	char *socket_path;
	unsigned int timeout_msecs;

	/* -1 while not connected */
	int fd;
	struct istream *input;
	/* our VERSION line was sent, the service's was received */
	bool version_sent;
	bool version_received;
	/* a request was answered on this connection: if it fails now, the
	   service may have been restarted meanwhile */
	bool answered;
	/* the current request failed because the connection was lost */
	bool connection_lost;
	uint32_t last_id;
	struct timeval deadline;
	/* most entries accepted in one reply */
	unsigned int max_entries;
};

static void referral_service_disconnect(struct service_referral_directory *sdir)
{
	if (sdir->fd == -1)
		return;
	i_stream_destroy(&sdir->input);
	i_close_fd(&sdir->fd);
}

static void
referral_service_attach(struct service_referral_directory *sdir, int fd)
{
	i_assert(sdir->fd == -1);

	fd_set_nonblock(fd, TRUE);
	sdir->fd = fd;
	sdir->input = i_stream_create_fd(fd, REFERRAL_SERVICE_MAX_LINE_LENGTH);
	sdir->version_sent = FALSE;
	sdir->version_received = FALSE;
	sdir->answered = FALSE;
	/* ids are per connection */
	sdir->last_id = 0;
}

void referral_directory_service_attach_fd(struct referral_directory *dir,
					  int fd)
{
	struct service_referral_directory *sdir =
		container_of(dir, struct service_referral_directory, dir);

	referral_service_disconnect(sdir);
	referral_service_attach(sdir, fd);
}

void referral_directory_service_set_max_entries(struct referral_directory *dir,
						unsigned int max_entries)
{
	struct service_referral_directory *sdir =
		container_of(dir, struct service_referral_directory, dir);

	sdir->max_entries = max_entries;
}

static int
referral_service_connect(struct service_referral_directory *sdir,
			 const char **error_r)
{
	int fd;

	fd = net_connect_unix(sdir->socket_path);
	if (fd == -1) {
		/* ENOENT, ECONNREFUSED: the service is not running; EAGAIN:
		   its listen queue is full. Either way, don't wait. */
		*error_r = t_strdup_printf("connect(%s) failed: %m",
					   sdir->socket_path);
		return -1;
	}
	e_debug(sdir->dir.event, "Connected to %s", sdir->socket_path);
	referral_service_attach(sdir, fd);
	return 0;
}

/* Wait until the socket is ready for events, at most until the deadline.
   Returns 0, or -1 with error_r. */
static int
referral_service_wait(struct service_referral_directory *sdir, short events,
		      const char **error_r)
{
	struct pollfd pfd;
	struct timeval now;
	int msecs, ret;

	i_zero(&pfd);
	pfd.fd = sdir->fd;
	pfd.events = events;
	do {
		i_gettimeofday(&now);
		msecs = timeval_diff_msecs(&sdir->deadline, &now);
		if (msecs <= 0) {
			ret = 0;
			break;
		}
		ret = poll(&pfd, 1, msecs);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0) {
		*error_r = t_strdup_printf("poll(%s) failed: %m",
					   sdir->socket_path);
		return -1;
	}
	if (ret == 0) {
		*error_r = t_strdup_printf("Timed out after %u ms waiting "
			"for the directory service (%s)", sdir->timeout_msecs,
			sdir->socket_path);
		return -1;
	}
	return 0;
}

static int
referral_service_send(struct service_referral_directory *sdir,
		      const string_t *data, const char **error_r)
{
	const unsigned char *p = str_data(data);
	size_t left = str_len(data);
	ssize_t ret;

	while (left > 0) {
		/* MSG_NOSIGNAL: a service gone away is an error to report,
		   not a signal to die of */
		ret = send(sdir->fd, p, left, MSG_NOSIGNAL);
		if (ret > 0) {
			p += ret;
			left -= ret;
			continue;
		}
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0 && errno == EAGAIN) {
			if (referral_service_wait(sdir, POLLOUT, error_r) < 0)
				return -1;
			continue;
		}
		if (errno == EPIPE || errno == ECONNRESET)
			sdir->connection_lost = TRUE;
		*error_r = t_strdup_printf("send(%s) failed: %m",
					   sdir->socket_path);
		return -1;
	}
	return 0;
}

/* Read the next line into line_r (valid until the next read). Returns 0,
   or -1 with error_r. */
static int
referral_service_read_line(struct service_referral_directory *sdir,
			   const char **line_r, const char **error_r)
{
	const char *line;
	ssize_t ret;

	for (;;) {
		line = i_stream_next_line(sdir->input);
		if (line != NULL) {
			*line_r = line;
			return 0;
		}
		ret = i_stream_read(sdir->input);
		if (ret > 0)
			continue;
		if (ret == 0) {
			if (referral_service_wait(sdir, POLLIN, error_r) < 0)
				return -1;
			continue;
		}
		if (ret == -2) {
			*error_r = t_strdup_printf("Directory service (%s) "
				"sent a line longer than %u bytes",
				sdir->socket_path,
				REFERRAL_SERVICE_MAX_LINE_LENGTH);
			return -1;
		}
		if (sdir->input->stream_errno != 0 &&
		    sdir->input->stream_errno != ECONNRESET) {
			*error_r = t_strdup_printf("read(%s) failed: %s",
				sdir->socket_path,
				i_stream_get_error(sdir->input));
			return -1;
		}
		sdir->connection_lost = TRUE;
		*error_r = t_strdup_printf("Directory service (%s) closed "
					   "the connection", sdir->socket_path);
		return -1;
	}
}

static const char *
referral_service_malformed(struct service_referral_directory *sdir,
			   const char *what, const char *line)
{
	return t_strdup_printf("Malformed reply from the directory service "
			       "(%s): %s: %s", sdir->socket_path, what,
			       str_sanitize(line, REFERRAL_SERVICE_MAX_QUOTED));
}

static int
referral_service_check_version(struct service_referral_directory *sdir,
			       const char *line, const char **error_r)
{
	const char *const *args = t_strsplit_tabescaped(line);
	unsigned int major;

	if (str_array_length(args) < 4 || strcmp(args[0], "VERSION") != 0) {
		*error_r = referral_service_malformed(sdir,
			"expected a VERSION line", line);
		return -1;
	}
	if (strcmp(args[1], REFERRAL_SERVICE_NAME) != 0 ||
	    str_to_uint(args[2], &major) < 0 ||
	    major != REFERRAL_SERVICE_VERSION_MAJOR) {
		*error_r = t_strdup_printf("Directory service (%s) speaks "
			"an incompatible protocol: %s", sdir->socket_path,
			str_sanitize(line, REFERRAL_SERVICE_MAX_QUOTED));
		return -1;
	}
	return 0;
}

/* Parse the reply line of the request id. Returns 1 when the request is
   answered (OK), 0 when more lines follow (an entry was added), -1 with
   error_r when it failed (FAIL) or the line is malformed (*malformed_r). */
static int
referral_service_parse_reply(struct service_referral_directory *sdir,
			     const char *line, uint32_t id, pool_t pool,
			     ARRAY_TYPE(referral_directory_entry) *entries,
			     bool *malformed_r, const char **error_r)
{
	const char *const *args = t_strsplit_tabescaped(line);
	struct referral_directory_entry *entry;
	unsigned int count = str_array_length(args);
	uint32_t reply_id;

	*malformed_r = TRUE;
	if (count < 2) {
		*error_r = referral_service_malformed(sdir,
			"missing fields", line);
		return -1;
	}
	if (str_to_uint32(args[1], &reply_id) < 0 || reply_id != id) {
		*error_r = referral_service_malformed(sdir, t_strdup_printf(
			"not a reply to request %u", id), line);
		return -1;
	}
	if (strcmp(args[0], "OK") == 0)
		return 1;
	if (strcmp(args[0], "FAIL") == 0) {
		if (count < 3) {
			*error_r = referral_service_malformed(sdir,
				"FAIL without an error", line);
			return -1;
		}
		*malformed_r = FALSE;
		*error_r = t_strdup_printf("Directory service failed: %s",
			str_sanitize(args[2], REFERRAL_SERVICE_MAX_QUOTED));
		return -1;
	}
	if (strcmp(args[0], "E") != 0) {
		*error_r = referral_service_malformed(sdir,
			"unexpected reply type", line);
		return -1;
	}
	/* E id dn mailbox scope remote_name server... */
	if (array_count(entries) >= sdir->max_entries) {
		/* the rest of the reply stays unread: malformed closes the
		   connection */
		*error_r = t_strdup_printf("The directory service sent more "
			"than %u entries for one request: too many to list in "
			"a mail process", sdir->max_entries);
		return -1;
	}
	if (count < 6) {
		*error_r = referral_service_malformed(sdir,
			"entry with missing fields", line);
		return -1;
	}
	entry = array_append_space(entries);
	entry->dn = p_strdup(pool, args[2]);
	entry->mailbox = p_strdup(pool, args[3]);
	/* the protocol's empty value is LDAP's absent attribute */
	entry->scope = args[4][0] == '\0' ? NULL : p_strdup(pool, args[4]);
	entry->remote_name = args[5][0] == '\0' ? NULL :
		p_strdup(pool, args[5]);
	entry->servers = p_strarray_dup(pool, args + 6);
	return 0;
}

/* Send the request (the line without its id) on the current connection
   and read its reply. */
static int
referral_service_request_once(struct service_referral_directory *sdir,
			      const char *command, const string_t *args,
			      pool_t pool,
			      ARRAY_TYPE(referral_directory_entry) *entries,
			      const char **error_r)
{
	string_t *out = t_str_new(128 + str_len(args));
	const char *line;
	bool malformed;
	uint32_t id;
	int ret;

	if (++sdir->last_id == 0)
		sdir->last_id = 1;
	id = sdir->last_id;
	if (!sdir->version_sent) {
		str_printfa(out, "VERSION\t%s\t%u\t%u\n", REFERRAL_SERVICE_NAME,
			    REFERRAL_SERVICE_VERSION_MAJOR,
			    REFERRAL_SERVICE_VERSION_MINOR);
	}
	str_printfa(out, "%s\t%u", command, id);
	str_append_str(out, args);
	str_append_c(out, '\n');
	if (referral_service_send(sdir, out, error_r) < 0)
		return -1;
	sdir->version_sent = TRUE;

	if (!sdir->version_received) {
		if (referral_service_read_line(sdir, &line, error_r) < 0 ||
		    referral_service_check_version(sdir, line, error_r) < 0)
			return -1;
		sdir->version_received = TRUE;
	}
	do {
		if (referral_service_read_line(sdir, &line, error_r) < 0)
			return -1;
		ret = referral_service_parse_reply(sdir, line, id, pool,
						   entries, &malformed,
						   error_r);
	} while (ret == 0);
	if (ret < 0 && !malformed) {
		/* FAIL: the connection is fine */
		sdir->answered = TRUE;
		return 0;
	}
	if (ret > 0)
		sdir->answered = TRUE;
	return ret > 0 ? 1 : -1;
}

/* Run one request: returns 0, or -1 with error_r (the entries it added
   removed). */
static int
referral_service_request(struct service_referral_directory *sdir,
			 const char *command, const string_t *args,
			 pool_t pool,
			 ARRAY_TYPE(referral_directory_entry) *entries,
			 const char **error_r)
{
	unsigned int first = array_count(entries);
	bool retry, fresh;
	int ret;

	i_gettimeofday(&sdir->deadline);
	timeval_add_msecs(&sdir->deadline, sdir->timeout_msecs);
	if (str_len(args) + 32 > REFERRAL_SERVICE_MAX_LINE_LENGTH) {
		/* only names near the schema's limit, with many levels */
		*error_r = "Request too long for the directory service";
		return -1;
	}
	do {
		fresh = FALSE;
		if (sdir->fd == -1) {
			if (referral_service_connect(sdir, error_r) < 0)
				return -1;
			fresh = TRUE;
		}
		sdir->connection_lost = FALSE;
		ret = referral_service_request_once(sdir, command, args,
						    pool, entries, error_r);
		if (ret > 0)
			return 0;
		/* FAIL (0) or failure (-1): what came for it is discarded */
		array_delete(entries, first, array_count(entries) - first);
		if (ret == 0)
			return -1;
		/* a kept connection found closed: the service restarted
		   since the last request. Try a new one, once. */
		retry = sdir->connection_lost && sdir->answered && !fresh;
		referral_service_disconnect(sdir);
		if (retry) {
			e_debug(sdir->dir.event, "%s - reconnecting",
				*error_r);
		}
	} while (retry);
	return -1;
}

static int
referral_service_lookup(struct referral_directory *dir, const char *name,
			const char *const *ancestors, pool_t pool,
			ARRAY_TYPE(referral_directory_entry) *entries,
			const char **error_r)
{
	struct service_referral_directory *sdir =
		container_of(dir, struct service_referral_directory, dir);
	string_t *args = t_str_new(256);

	str_append_c(args, '\t');
	if (name != NULL)
		str_append_tabescaped(args, name);
	for (; ancestors != NULL && *ancestors != NULL; ancestors++) {
		str_append_c(args, '\t');
		str_append_tabescaped(args, *ancestors);
	}
	return referral_service_request(sdir, "LOOKUP", args, pool, entries,
					error_r);
}

static int
referral_service_list(struct referral_directory *dir, const char *prefix,
		      pool_t pool,
		      ARRAY_TYPE(referral_directory_entry) *entries,
		      const char **error_r)
{
	struct service_referral_directory *sdir =
		container_of(dir, struct service_referral_directory, dir);
	string_t *args = t_str_new(128);

	str_append_c(args, '\t');
	str_append_tabescaped(args, prefix);
	return referral_service_request(sdir, "LIST", args, pool, entries,
					error_r);
}

static void referral_service_deinit(struct referral_directory *dir)
{
	struct service_referral_directory *sdir =
		container_of(dir, struct service_referral_directory, dir);

	referral_service_disconnect(sdir);
	i_free(sdir->socket_path);
	i_free(sdir);
}

static int
referral_service_init(const struct referral_directory_params *params,
		      struct referral_directory **dir_r, const char **error_r)
{
	struct service_referral_directory *sdir;
	const char *path;
	unsigned int timeout_msecs;

	if (referral_directory_service_settings(params, &path, &timeout_msecs,
						error_r) < 0)
		return -1;
	sdir = i_new(struct service_referral_directory, 1);
	sdir->dir.name = "service";
	sdir->dir.v.deinit = referral_service_deinit;
	sdir->dir.v.lookup = referral_service_lookup;
	sdir->dir.v.list = referral_service_list;
	sdir->dir.fresh_answers = TRUE;
	sdir->socket_path = i_strdup(path);
	sdir->timeout_msecs = timeout_msecs;
	sdir->fd = -1;
	sdir->max_entries = REFERRAL_SERVICE_MAX_REPLY_ENTRIES;
	*dir_r = &sdir->dir;
	return 0;
}

const struct referral_directory_backend referral_directory_backend_service = {
	.name = "service",
	.init = referral_service_init,
};

/* sdnotify.c — the service manager's notification protocol (sd_notify(3), systemd's
 * Type=notify) without libsystemd: one datagram to $NOTIFY_SOCKET per state change.
 *
 *   READY=1      the listeners accept and every route is in place (just before serving)
 *   RELOADING=1  SIGHUP: re-reading the config file and credentials (with MONOTONIC_USEC,
 *                as Type=notify-reload wants); READY=1 again once done
 *   STOPPING=1   a stop signal: the drain has begun
 *
 * The socket is opened once at start-up; zhd_notify_stopping() runs inside the stop
 * signal's handler, so it only calls sendto(2), which is async-signal-safe, on a message
 * built beforehand. Without NOTIFY_SOCKET every call does nothing.
 */
#include "zerohttpd.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int notify_fd = -1;
static volatile sig_atomic_t stopping_failed; /* errno of a failed STOPPING=1, reported later */
static struct sockaddr_un notify_addr;
static socklen_t notify_len;

int zhd_notify_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t n;
	if (path == NULL || *path == '\0')
		return 0;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof notify_addr.sun_path) {
		zhd_log(ZHD_WARN, "NOTIFY_SOCKET %s: not a unix socket path; no notifications", path);
		return 0;
	}
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, path, n);
	if (path[0] == '@') /* the abstract namespace */
		notify_addr.sun_path[0] = '\0';
	notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify_fd < 0) {
		zhd_log(ZHD_ERROR, "cannot notify the service manager: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* One datagram; async-signal-safe. */
static int send_state(const char *state, size_t len)
{
	if (notify_fd < 0)
		return 0;
	if (sendto(notify_fd, state, len, MSG_NOSIGNAL, (struct sockaddr *)&notify_addr,
		   notify_len) < 0)
		return -errno;
	return 0;
}

void zhd_notify(const char *state)
{
	int r = send_state(state, strlen(state));
	if (r < 0)
		zhd_log(ZHD_WARN, "notify '%.*s': %s", (int)strcspn(state, "\n"), state,
			strerror(-r));
}

void zhd_notify_reloading(void)
{
	char msg[64];
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
	zhd_notify(msg);
}

void zhd_notify_stopping(void)
{
	static const char msg[] = "STOPPING=1";
	int saved = errno; /* a signal handler leaves errno as it found it */
	int r = send_state(msg, sizeof msg - 1);
	if (r < 0) /* no logging in a signal handler: zhd_notify_free() reports it */
		stopping_failed = -r;
	errno = saved;
}

void zhd_notify_free(void)
{
	if (stopping_failed)
		zhd_log(ZHD_WARN, "notify 'STOPPING=1': %s", strerror(stopping_failed));
	if (notify_fd >= 0)
		close(notify_fd);
	notify_fd = -1;
}

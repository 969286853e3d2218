/* sdnotify.c — the service manager's notification protocol (sd_notify(3), systemd's
 * Type=notify) without libsystemd: one datagram to $NOTIFY_SOCKET per state change.
 *
 *   READY=1      the listeners accept and every route is in place (just before serving)
 *   RELOADING=1  SIGHUP: re-reading the config file and credentials (with MONOTONIC_USEC,
 *                as Type=notify-reload wants); READY=1 again once done
 *   STOPPING=1   a stop signal: the drain has begun
 *   WATCHDOG=1   every WATCHDOG_USEC/2 (WatchdogSec=), but only after zh_server_ping saw
 *                every worker turn its loop: a wedged worker stops the pings, and systemd
 *                restarts the service
 *
 * The socket is opened once at start-up; zhd_notify_stopping() runs inside the stop
 * signal's handler, so it only calls sendto(2), which is async-signal-safe, on a message
 * built beforehand. Without NOTIFY_SOCKET every call does nothing.
 */
#include "zerohttpd.h"

#include <errno.h>
#include <pthread.h>
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

/* ---- the watchdog ------------------------------------------------------------------------ */

static struct {
	pthread_t tid;
	bool started, quit;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	zh_server_t *srv;
	unsigned long long interval_us;
} dog = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *watchdog(void *unused)
{
	struct timespec next;
	bool failing = false;
	(void)unused;
	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&dog.lock);
	while (!dog.quit) {
		unsigned long long ns = (unsigned long long)next.tv_nsec + dog.interval_us * 1000;
		next.tv_sec += (time_t)(ns / 1000000000);
		next.tv_nsec = (long)(ns % 1000000000);
		while (!dog.quit && pthread_cond_timedwait(&dog.wake, &dog.lock, &next) != ETIMEDOUT)
			;
		if (dog.quit)
			break;
		pthread_mutex_unlock(&dog.lock);
		/* half the interval to answer: the other half is left for the message itself */
		if (zh_server_ping(dog.srv, (unsigned)(dog.interval_us / 2000 + 1)) == 0) {
			zhd_notify("WATCHDOG=1");
			failing = false;
		} else if (!failing) {
			zhd_log(ZHD_WARN, "watchdog: a worker did not turn its loop within %llu ms; "
					  "no WATCHDOG=1", dog.interval_us / 2000 + 1);
			failing = true;
		}
		pthread_mutex_lock(&dog.lock);
	}
	pthread_mutex_unlock(&dog.lock);
	return NULL;
}

int zhd_watchdog_start(zh_server_t *srv)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	unsigned long long us, owner;
	pthread_condattr_t attr;
	int r;
	if (notify_fd < 0 || usec == NULL)
		return 0;
	if (pid && (zhd_parse_num(pid, ~0ull, &owner) < 0 || owner != (unsigned long long)getpid()))
		return 0; /* meant for another process */
	if (zhd_parse_num(usec, ~0ull, &us) < 0 || us < 2000) {
		zhd_log(ZHD_WARN, "WATCHDOG_USEC %s: not a number of microseconds >= 2000; no "
				  "watchdog", usec);
		return 0;
	}
	dog.srv = srv;
	dog.interval_us = us / 2;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&dog.wake, &attr);
	pthread_condattr_destroy(&attr);
	if ((r = pthread_create(&dog.tid, NULL, watchdog, NULL)) != 0) {
		zhd_log(ZHD_ERROR, "cannot start the watchdog thread: %s", strerror(r));
		pthread_cond_destroy(&dog.wake);
		return -1;
	}
	dog.started = true;
	return 0;
}

void zhd_watchdog_stop(void)
{
	if (!dog.started)
		return;
	pthread_mutex_lock(&dog.lock);
	dog.quit = true;
	pthread_cond_signal(&dog.wake);
	pthread_mutex_unlock(&dog.lock);
	pthread_join(dog.tid, NULL);
	pthread_cond_destroy(&dog.wake);
	dog.started = false;
}

/* handover.c — listening sockets passed between processes, in both directions.
 *
 * Taking: systemd's socket activation hands zerohttpd its sockets as descriptors 3, 4...
 * with LISTEN_FDS (how many), LISTEN_PID (for whom) and LISTEN_FDNAMES (colon-separated
 * names: "https" marks a TLS socket, any other name a plain one). They replace --listen,
 * --listen-tls, --address and --port; nothing is bound.
 *
 * Giving: on SIGUSR2 zerohttpd starts the binary it was started from (the file now at that
 * path: a new version, after an upgrade) with the same arguments and every listening
 * socket it has, the same way (LISTEN_FDS...), plus ZEROHTTPD_UPGRADE_FD, a pipe the new
 * process writes one byte to once it serves. Then this process drains and exits; until
 * then both accept from the same sockets, and no socket ever closes, so no connection
 * waiting in an accept queue is lost (the trap of an SO_REUSEPORT overlap, where a closing
 * listener's queue is reset). If the new process exits or is not ready within
 * UPGRADE_WAIT_MS, it is stopped and this one goes on serving; the log says why.
 */
#include "zerohttpd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { UPGRADE_WAIT_MS = 30000, IDLE_GRACE_MS = 1000, ENV_MAX = 256 };

extern char **environ;

static struct zhd_inherited g_inherited[ZHD_INHERITED_MAX];
static size_t g_ninherited;
static int g_ready_fd = -1;	 /* ZEROHTTPD_UPGRADE_FD: to tell the old process we serve */
static char g_exe[PATH_MAX];	 /* the binary's path at start: what SIGUSR2 runs */
static char **g_argv;

/* A decimal environment value: 0 with *out set, -1 if absent or not a number in [0, max]. */
static int env_number(const char *name, long max, long *out)
{
	const char *v = getenv(name);
	char *end;
	if (v == NULL || *v < '0' || *v > '9')
		return -1;
	errno = 0;
	*out = strtol(v, &end, 10);
	return errno || *end || *out > max ? -1 : 0;
}

/* The name of descriptor i in LISTEN_FDNAMES ("" past its end). */
static void fd_name(const char *names, size_t i, char *out, size_t cap)
{
	const char *p = names ? names : "";
	size_t len;
	for (; i > 0 && *p; i--) {
		p = strchr(p, ':');
		p = p ? p + 1 : "";
	}
	len = strcspn(p, ":");
	snprintf(out, cap, "%.*s", (int)(len < cap ? len : cap - 1), p);
}

int zhd_handover_init(char **argv)
{
	long pid, n, ready;
	ssize_t len = readlink("/proc/self/exe", g_exe, sizeof g_exe - 1);
	g_exe[len > 0 ? len : 0] = '\0';
	g_argv = argv;
	if (env_number("ZEROHTTPD_UPGRADE_FD", INT_MAX, &ready) == 0 &&
	    fcntl((int)ready, F_SETFD, FD_CLOEXEC) == 0)
		g_ready_fd = (int)ready;
	unsetenv("ZEROHTTPD_UPGRADE_FD");
	if (env_number("LISTEN_PID", LONG_MAX, &pid) == 0 && pid == (long)getpid() &&
	    env_number("LISTEN_FDS", ZHD_INHERITED_MAX, &n) == 0) {
		const char *names = getenv("LISTEN_FDNAMES");
		for (long i = 0; i < n; i++) {
			struct zhd_inherited *in = &g_inherited[i];
			char name[32];
			in->fd = 3 + (int)i; /* sd_listen_fds(3): SD_LISTEN_FDS_START */
			fd_name(names, (size_t)i, name, sizeof name);
			in->kind = !strcmp(name, "https")     ? ZHD_SOCK_HTTPS
				 : !strcmp(name, "metrics") ? ZHD_SOCK_METRICS
							    : ZHD_SOCK_HTTP;
			/* ours alone: a program we start must not hold the port open */
			if (fcntl(in->fd, F_SETFD, FD_CLOEXEC) < 0) {
				zhd_log(ZHD_ERROR, "LISTEN_FDS=%ld: descriptor %d: %s", n, in->fd,
					strerror(errno));
				return -1;
			}
		}
		g_ninherited = (size_t)n;
	}
	/* not for the programs we start (sd_listen_fds' unset_environment) */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return 0;
}

const struct zhd_inherited *zhd_inherited(size_t *n)
{
	*n = g_ninherited;
	return g_inherited;
}

void zhd_handover_ready(void)
{
	if (g_ready_fd < 0)
		return;
	if (write(g_ready_fd, "1", 1) != 1)
		zhd_log(ZHD_WARN, "cannot tell the old process we serve: %s", strerror(errno));
	close(g_ready_fd);
	g_ready_fd = -1;
}

/* ---- giving: SIGUSR2 --------------------------------------------------------------------- */

struct upgrade {
	int fds[ZHD_INHERITED_MAX];
	size_t nfds;
	char *envp[ENV_MAX + 8];
	char fds_var[32], names_var[ZHD_INHERITED_MAX * 6 + 32], ready_var[48];
	char pid_var[32]; /* "LISTEN_PID=" and the child's pid, written in the child */
};

/* Adds server srv's listening sockets (metrics: --metrics-listen's) to u; -1 (logged) if
 * there are too many. */
static int collect_fds(zh_server_t *srv, bool metrics, struct upgrade *u)
{
	for (unsigned i = 0; zh_server_listener_port(srv, i) != 0; i++) {
		size_t room = ZHD_INHERITED_MAX - u->nfds, at = strlen(u->names_var);
		unsigned n = zh_server_listener_fds(srv, i, u->fds + u->nfds, (unsigned)room);
		const char *name = metrics ? "metrics" : zhd_listener_is_tls(i) ? "https" : "http";
		if (n > room) {
			zhd_log(ZHD_ERROR, "upgrade: more than %d listening sockets",
				ZHD_INHERITED_MAX);
			return -1;
		}
		for (unsigned k = 0; k < n; k++)
			at += (size_t)snprintf(u->names_var + at, sizeof u->names_var - at, "%s%s",
					       u->nfds + k ? ":" : "", name);
		u->nfds += n;
	}
	return 0;
}

/* The environment for the new process: ours without LISTEN_* and ZEROHTTPD_UPGRADE_FD, then
 * those. LISTEN_PID's value is the child's pid: written by the child itself. */
static int build_env(struct upgrade *u)
{
	size_t n = 0;
	for (char **e = environ; *e; e++) {
		if (!strncmp(*e, "LISTEN_", 7) || !strncmp(*e, "ZEROHTTPD_UPGRADE_FD=", 21))
			continue;
		if (n == ENV_MAX)
			return -1;
		u->envp[n++] = *e;
	}
	snprintf(u->fds_var, sizeof u->fds_var, "LISTEN_FDS=%zu", u->nfds);
	snprintf(u->ready_var, sizeof u->ready_var, "ZEROHTTPD_UPGRADE_FD=%zu", 3 + u->nfds);
	u->envp[n++] = u->fds_var;
	u->envp[n++] = u->names_var;
	u->envp[n++] = u->ready_var;
	u->envp[n++] = u->pid_var;
	u->envp[n] = NULL;
	return 0;
}

/* In the child, between fork and exec: async-signal-safe calls only. Descriptors go to 3,
 * 4... (first out of the way, above every target, so that no move overwrites a source). */
static void child_exec(struct upgrade *u, int ready_w)
{
	int high = 3 + (int)u->nfds + 1, tmp[ZHD_INHERITED_MAX + 1];
	char digits[16];
	size_t nd = 0, at = strlen("LISTEN_PID=");
	sigset_t none;
	for (pid_t pid = getpid(); pid > 0 && nd < sizeof digits; pid /= 10)
		digits[nd++] = (char)('0' + pid % 10);
	memcpy(u->pid_var, "LISTEN_PID=", at);
	while (nd)
		u->pid_var[at++] = digits[--nd];
	u->pid_var[at] = '\0';
	for (size_t i = 0; i < u->nfds; i++)
		if ((tmp[i] = fcntl(u->fds[i], F_DUPFD_CLOEXEC, high)) < 0)
			_exit(126);
	if ((tmp[u->nfds] = fcntl(ready_w, F_DUPFD_CLOEXEC, high)) < 0)
		_exit(126);
	for (size_t i = 0; i <= u->nfds; i++) /* dup2's copy is not close-on-exec */
		if (dup2(tmp[i], 3 + (int)i) < 0)
			_exit(126);
	sigemptyset(&none); /* the signal helper's mask would survive exec */
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(g_exe, g_argv, u->envp);
	_exit(127);
}

/* Waits for the child's byte: 0 once it serves, -1 (logged, child stopped) if not. */
static int await_ready(pid_t pid, int ready_r)
{
	struct pollfd p = {.fd = ready_r, .events = POLLIN};
	char byte;
	int r = poll(&p, 1, UPGRADE_WAIT_MS), status;
	if (r == 1 && read(ready_r, &byte, 1) == 1)
		return 0;
	if (r == 0) {
		zhd_log(ZHD_ERROR, "upgrade: the new process %d did not serve within %d s; "
				   "stopped it, still serving", (int)pid, UPGRADE_WAIT_MS / 1000);
		kill(pid, SIGKILL);
	}
	if (waitpid(pid, &status, 0) == pid && r != 0)
		zhd_log(ZHD_ERROR, "upgrade: the new process %d exited (%s %d) before serving; "
				   "still serving", (int)pid,
			WIFEXITED(status) ? "status" : "signal",
			WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return -1;
}

void zhd_upgrade(zh_server_t *srv)
{
	static struct upgrade u; /* the signal helper thread's alone */
	static bool handed_over;
	int pipefd[2];
	pid_t pid;
	char msg[32];

	if (handed_over || zhd_stop_signal()) {
		zhd_log(ZHD_WARN, "SIGUSR2 ignored: this process is draining");
		return;
	}
	u.nfds = 0;
	snprintf(u.names_var, sizeof u.names_var, "LISTEN_FDNAMES=");
	if (g_exe[0] == '\0' || collect_fds(srv, false, &u) < 0 ||
	    (zhd_metrics_server() && collect_fds(zhd_metrics_server(), true, &u) < 0))
		return;
	if (build_env(&u) < 0) {
		zhd_log(ZHD_ERROR, "upgrade: more than %d environment variables", ENV_MAX);
		return;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		zhd_log(ZHD_ERROR, "upgrade: pipe: %s", strerror(errno));
		return;
	}
	zhd_log(ZHD_INFO, "upgrade: starting %s with %zu listening sockets", g_exe, u.nfds);
	if ((pid = fork()) == 0)
		child_exec(&u, pipefd[1]);
	close(pipefd[1]);
	if (pid < 0) {
		zhd_log(ZHD_ERROR, "upgrade: fork: %s", strerror(errno));
	} else if (await_ready(pid, pipefd[0]) == 0) {
		zhd_log(ZHD_INFO, "upgrade: the new process %d serves; this one drains and exits",
			(int)pid);
		snprintf(msg, sizeof msg, "MAINPID=%d", (int)pid); /* systemd follows it */
		zhd_notify(msg);
		handed_over = true;
		zh_server_stop_gently(srv, IDLE_GRACE_MS);
	}
	close(pipefd[0]);
}

/* signals.c — SIGTERM/SIGINT drain the server and exit; SIGUSR1 reopens the access log
 * (rotation); SIGHUP re-reads what can change while the server runs; SIGUSR2 hands the
 * listening sockets to a new process (handover.c).
 *
 * The stop signals have a handler (zh_server_stop is async-signal-safe), installed before
 * the listeners exist: a SIGTERM that arrives while we start up (a client may already be
 * queued in the backlog) must drain, not kill. SIGUSR1, SIGUSR2 and SIGHUP are blocked in every
 * thread (the mask is set before any thread exists, and threads inherit it) and one helper
 * thread takes them with sigwait(): no handler runs, no worker syscall is interrupted, and
 * the reopen (open + dup3) or reload (files, allocation) happens on the helper. To stop it,
 * zhd_signals_stop() sets quit and sends the helper a SIGHUP.
 */
#include "zerohttpd.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

static zh_server_t *volatile g_server;
static volatile sig_atomic_t g_stop_signal;
static pthread_t helper_tid;
static bool helper_started, use_usr1;
static _Atomic int helper_quit;
static void (*on_reopen)(void), (*on_reload)(void), (*on_upgrade)(zh_server_t *);

static void on_stop(int sig)
{
	zh_server_t *srv = g_server;
	g_stop_signal = sig;
	zhd_notify_stopping();
	if (srv && !zhd_drain_delay_begin(sig)) /* --drain-delay: its thread stops srv later */
		zh_server_stop(srv);
}

static void helper_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR2);
	if (use_usr1)
		sigaddset(set, SIGUSR1);
}

void zhd_signals_init(bool reopen)
{
	struct sigaction sa;
	sigset_t set;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	use_usr1 = reopen;
	if (!reopen)
		signal(SIGUSR1, SIG_IGN); /* logrotate's kill -USR1 must not stop a server */
	helper_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

void zhd_signals_watch(zh_server_t *srv)
{
	g_server = srv;
	if (g_stop_signal) /* it came before g_server was set: its handler could not stop it */
		zh_server_stop(srv);
}

int zhd_stop_signal(void)
{
	return g_stop_signal;
}

static void *helper(void *unused)
{
	sigset_t set;
	int sig;
	(void)unused;
	helper_set(&set);
	while (sigwait(&set, &sig) == 0 && !helper_quit) {
		if (sig == SIGUSR1 && on_reopen)
			on_reopen();
		else if (sig == SIGHUP && on_reload)
			on_reload();
		else if (sig == SIGUSR2 && on_upgrade && g_server)
			on_upgrade(g_server);
	}
	return NULL;
}

int zhd_signals_start(void (*reopen)(void), void (*reload)(void),
		      void (*upgrade)(zh_server_t *))
{
	int r;
	on_reopen = reopen;
	on_reload = reload;
	on_upgrade = upgrade;
	if ((r = pthread_create(&helper_tid, NULL, helper, NULL)) != 0)
		return -r;
	helper_started = true;
	return 0;
}

void zhd_signals_stop(void)
{
	g_server = NULL;
	if (!helper_started)
		return;
	helper_quit = 1;
	pthread_kill(helper_tid, SIGHUP);
	pthread_join(helper_tid, NULL);
	helper_started = false;
}

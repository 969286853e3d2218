/* server.c — configuration, start-up (with zh_server_route in router.c, the only place
 * that allocates), run and stop. The request accessors are in request.c.
 *
 * Everything a worker will ever use is mapped here, before the first request: one region
 * per worker holding its connection slots and buffer pools (see internal.h). The mapping is
 * MAP_NORESERVE and pools carve objects on first use, so configured-but-unused capacity
 * costs address space, not RSS.
 */
#include "internal.h"

#include <stdatomic.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void zh_config_init(zh_config_t *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->address = "127.0.0.1";
	cfg->port = 8080;
	cfg->workers = 0;
	cfg->max_connections = 10000;
	cfg->io_contexts = 1024;
	cfg->large_buffers = 64;
	cfg->body_buffers = 16;
	cfg->max_request_line = 8192;
	cfg->max_header_bytes = 32768;
	cfg->max_headers = 100;
	cfg->max_body = 1u << 20;
	cfg->header_timeout_ms = 10000;
	cfg->idle_timeout_ms = 60000;
	cfg->body_timeout_ms = 30000;
	cfg->write_timeout_ms = 30000;
	cfg->sync_write_wait_ms = 1000;
	cfg->latency_metrics = 1;
	cfg->drain_timeout_ms = 10000;
	cfg->max_keepalive_requests = 0;
	cfg->loopback_sndbuf = 256 * 1024;
	cfg->server_name = "zerohttp";
	cfg->tls_handshake_timeout_ms = 10000;
}

static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

static uint16_t bound_port(int fd);

/* a listener's address and port as a socket address; -EINVAL if the address is no IP literal. */
static int listen_addr(const zh__listener_t *l, uint16_t port, struct sockaddr_storage *ss,
		       socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, l->address, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof *sin;
	} else if (inet_pton(AF_INET6, l->address,
			     &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len = sizeof *sin6;
	} else {
		return -EINVAL;
	}
	return 0;
}

static int open_listener(const zh__listener_t *l, uint16_t port, int *out)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, err;

	if ((err = listen_addr(l, port, &ss, &len)) < 0)
		return err;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* One listener per worker: the kernel spreads connections across them, so workers
	 * share nothing, not even an accept queue lock. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	*out = fd;
	return 0;
}

/* Unless cfg.reuse_port: is the port free? Our per-worker listeners need SO_REUSEPORT, and
 * with it bind() succeeds on a port that any socket of the same user with SO_REUSEPORT
 * already listens on (another zerohttpd, say): connections would then split between the two
 * processes without a word. So first a probe without SO_REUSEPORT: it fails with EADDRINUSE
 * against every listener on the port, whatever its options (SO_REUSEADDR only forgives
 * sockets in TIME_WAIT, so a restart is not refused). It also resolves port 0: the kernel
 * picks a free port for the probe, which the workers then bind. The probe is closed before
 * the workers bind; docs/design.md ("Listening") discusses the window this leaves. */
static int claim_port(zh__listener_t *l)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, err;

	if ((err = listen_addr(l, l->port, &ss, &len)) < 0)
		return err;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	err = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0)
		err = -errno;
	else if (l->port == 0 && (l->port = bound_port(fd)) == 0)
		err = -EADDRNOTAVAIL;
	close(fd);
	return err;
}

static uint16_t bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int worker_init(zh_server_t *srv, zh__worker_t *w, unsigned id)
{
	const zh_config_t *cfg = &srv->cfg;
	size_t conn_bytes = round_up((size_t)cfg->max_connections * sizeof(zh__conn_t), 1u << 21);
	size_t ctx_bytes = (size_t)cfg->io_contexts * srv->ctx_size;
	size_t large_bytes = (size_t)cfg->large_buffers * srv->large_size;
	size_t body_bytes = (size_t)cfg->body_buffers * srv->body_size;
	struct epoll_event ev;
	char *p;
	int r;

	w->srv = srv;
	w->id = id;
	w->ep = w->stopfd = w->wakefd = -1;
	for (unsigned i = 0; i < ZH__LISTENERS_MAX; i++)
		w->lfd[i] = -1;
	pthread_mutex_init(&w->inbox_lock, NULL);
	w->region_len = conn_bytes + round_up(ctx_bytes + large_bytes + body_bytes, 1u << 21);
	w->region = mmap(NULL, w->region_len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (w->region == MAP_FAILED) {
		w->region = NULL;
		return -ENOMEM;
	}
	p = w->region;
	zh__pool_init(&w->conn_pool, p, sizeof(zh__conn_t), cfg->max_connections);
	zh__pool_keep_readable(&w->conn_pool);
	p += conn_bytes;
	zh__pool_init(&w->ctx_pool, p, srv->ctx_size, cfg->io_contexts);
	p += ctx_bytes;
	zh__pool_init(&w->large_pool, p, srv->large_size, cfg->large_buffers);
	p += large_bytes;
	zh__pool_init(&w->body_pool, p, srv->body_size, cfg->body_buffers);

	w->timers[ZH__T_HEADER].duration_ms = cfg->header_timeout_ms;
	w->timers[ZH__T_SILENT].duration_ms = cfg->header_timeout_ms;
	w->timers[ZH__T_IDLE].duration_ms = cfg->idle_timeout_ms;
	w->timers[ZH__T_BODY].duration_ms = cfg->body_timeout_ms;
	w->timers[ZH__T_WRITE].duration_ms = cfg->write_timeout_ms;
	w->timers[ZH__T_LINGER].duration_ms = ZH__LINGER_MS;
	w->timers[ZH__T_HANDSHAKE].duration_ms = cfg->tls_handshake_timeout_ms;
	w->now_ms = zh__now_ms();
	zh__date_refresh(w, time(NULL));

	w->ep = epoll_create1(EPOLL_CLOEXEC);
	w->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->ep < 0 || w->stopfd < 0 || w->wakefd < 0)
		return -errno;
	ev.events = EPOLLIN;
	for (unsigned i = 0; i < srv->nlisteners; i++) {
		zh__listener_t *l = &srv->listeners[i];
		if (l->fd >= 0) { /* inherited: every worker watches a duplicate of it */
			if ((w->lfd[i] = fcntl(l->fd, F_DUPFD_CLOEXEC, 3)) < 0)
				return -errno;
		} else if ((r = open_listener(l, l->port, &w->lfd[i])) < 0) {
			return r;
		}
		if (l->port == 0) /* with reuse_port: no probe resolved it */
			l->port = bound_port(w->lfd[i]);
		if ((r = zh__listener_watch(w, i, true)) < 0)
			return r;
	}
	ev.data.ptr = &w->stopfd;
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->stopfd, &ev) < 0)
		return -errno;
	ev.data.ptr = &w->wakefd;
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wakefd, &ev) < 0)
		return -errno;
	return 0;
}

/* Starts (on) or stops worker w watching its socket of listener i. A socket shared by the
 * workers (inherited) wakes one of them per connection, not all (EPOLLEXCLUSIVE). */
int zh__listener_watch(zh__worker_t *w, unsigned i, bool on)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->lfd[i]};
	if (w->srv->listeners[i].fd >= 0)
		ev.events |= EPOLLEXCLUSIVE;
	if (epoll_ctl(w->ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, w->lfd[i], &ev) == 0)
		return 0;
	return errno == (on ? EEXIST : ENOENT) ? 0 : -errno; /* already as asked */
}

static void worker_dispose(zh__worker_t *w)
{
	if (w->srv == NULL)
		return; /* zh_server_new failed before worker_init reached it: all zeros, and fd 0
			   is not ours to close */
	for (unsigned i = 0; i < ZH__LISTENERS_MAX; i++)
		if (w->lfd[i] >= 0)
			close(w->lfd[i]);
	if (w->ep >= 0)
		close(w->ep);
	if (w->stopfd >= 0)
		close(w->stopfd);
	if (w->wakefd >= 0)
		close(w->wakefd);
	pthread_mutex_destroy(&w->inbox_lock);
	if (w->region)
		munmap(w->region, w->region_len);
}

/* The soft limit on descriptors is often 1024; a server wants the hard limit. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* writev() has no MSG_NOSIGNAL: a peer that vanished would kill the process with SIGPIPE.
 * Ignore it unless the application installed a handler of its own. */
static void ignore_sigpipe(void)
{
	struct sigaction sa;
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		sa.sa_handler = SIG_IGN;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = 0;
		sigaction(SIGPIPE, &sa, NULL);
	}
}

/* An inherited socket as listener l: it must be a listening stream socket; it becomes
 * nonblocking (a worker woken for a connection another worker took must not block in
 * accept), and its local address names it (access log, start line). */
static int adopt_listener(zh__listener_t *l, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int listening = 0, type = 0, flags;
	socklen_t ilen = sizeof listening, tlen = sizeof type;
	const void *ip;

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || !listening ||
	    type != SOCK_STREAM || getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
		return -ENOTSOCK;
	if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	ip = ss.ss_family == AF_INET ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
				     : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
	if (inet_ntop(ss.ss_family, ip, l->address, sizeof l->address) == NULL)
		return -errno;
	l->port = bound_port(fd);
	l->fd = fd;
	return 0;
}

static int check_listeners(const zh_config_t *cfg)
{
	if (cfg->nlisteners > ZH__LISTENERS_MAX || (cfg->nlisteners && !cfg->listeners))
		return -EINVAL;
	for (unsigned i = 0; i < cfg->nlisteners; i++) {
		const zh_listener_t *l = &cfg->listeners[i];
		const zh__tr_provider_t *p = (const zh__tr_provider_t *)(const void *)l->tls;
		if (l->inherited ? l->fd < 0 : !l->address || strlen(l->address) >= 64)
			return -EINVAL;
		if (p && !p->transport)
			return -EINVAL;
	}
	return 0;
}

/* srv->listeners from the configuration: its list, or the address and port shorthand.
 * A TLS listener's transport joins the transport table (once per process). */
static int set_listeners(zh_server_t *srv, const zh_config_t *cfg)
{
	for (unsigned i = 0; i < ZH__LISTENERS_MAX; i++)
		srv->listeners[i].fd = -1;
	if (cfg->nlisteners == 0) {
		memcpy(srv->listeners[0].address, cfg->address, strlen(cfg->address) + 1);
		srv->listeners[0].port = cfg->port;
		srv->nlisteners = 1;
		return 0;
	}
	for (unsigned i = 0; i < cfg->nlisteners; i++) {
		const zh_listener_t *in = &cfg->listeners[i];
		zh__listener_t *l = &srv->listeners[i];
		int r;
		if (in->inherited) {
			if ((r = adopt_listener(l, in->fd)) < 0)
				return r;
		} else {
			memcpy(l->address, in->address, strlen(in->address) + 1);
			l->port = in->port;
		}
		if (in->tls) {
			const zh__tr_provider_t *p = (const zh__tr_provider_t *)(void *)in->tls;
			int tr = zh__transport_register(p->transport);
			if (tr < 0)
				return tr;
			l->tr = (uint8_t)tr;
			l->tr_arg = in->tls;
		}
	}
	srv->nlisteners = cfg->nlisteners;
	return 0;
}

static int check_config(const zh_config_t *cfg)
{
	if (check_listeners(cfg) < 0)
		return -EINVAL;
	if (!cfg->address || strlen(cfg->address) >= 64 || cfg->max_connections == 0 ||
	    cfg->io_contexts == 0 || cfg->max_headers == 0 || cfg->max_headers > 10000 ||
	    cfg->max_request_line < 16 || cfg->max_request_line > (1u << 20) ||
	    cfg->max_header_bytes > (1u << 20) || cfg->max_body > (1ull << 32) ||
	    (cfg->server_name && strlen(cfg->server_name) > 60) ||
	    (cfg->server_name && !zh__valid_field_value(cfg->server_name,
							 strlen(cfg->server_name))) ||
	    (cfg->io != ZH_IO_EPOLL && cfg->io != ZH_IO_URING) || cfg->io_buffers > 32768)
		return -EINVAL;
	return 0;
}

zh_server_t *zh_server_new(const zh_config_t *cfg, int *err)
{
	zh_server_t *srv;
	int r = check_config(cfg);
	long ncpu;

	if (r < 0)
		goto fail;
	srv = calloc(1, sizeof *srv);
	if (srv == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	srv->cfg = *cfg;
	srv->start_time = time(NULL);
	memcpy(srv->address, cfg->address, strlen(cfg->address) + 1);
	srv->cfg.address = srv->address;
	srv->port = cfg->port;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	srv->nworkers = cfg->workers ? cfg->workers : (unsigned)(ncpu > 0 ? ncpu : 1);
	srv->limits.max_request_line = (uint32_t)cfg->max_request_line;
	srv->limits.max_header_bytes = (uint32_t)cfg->max_header_bytes;
	srv->limits.max_headers = cfg->max_headers;
	srv->large_size = round_up(cfg->max_request_line + cfg->max_header_bytes + 4096, 4096);
	if (srv->large_size < ZH__LARGE_MIN)
		srv->large_size = ZH__LARGE_MIN;
	/* a body buffer must hold max_body, and never be smaller than a large buffer: callers
	 * fall back from the large pool to this one */
	srv->body_size = round_up(cfg->max_body > srv->large_size ? cfg->max_body
								 : srv->large_size, 4096);
	srv->ctx_size = round_up(sizeof(zh__ctx_t) + cfg->max_headers * sizeof(zh__field_t) +
					 ZH__SBUF_SIZE + ZH__RBUF_SIZE + cfg->max_request_line,
				 64);
	if (cfg->server_name && cfg->server_name[0])
		srv->server_hdr_len = (uint32_t)snprintf(srv->server_hdr, sizeof srv->server_hdr,
							 "Server: %s\r\n", cfg->server_name);
	srv->cfg.server_name = NULL; /* the caller's string is not kept */
	r = cfg->trusted_proxies ? zh__cidr_list_parse(cfg->trusted_proxies, srv->proxies,
						       ZH__PROXIES_MAX) : 0;
	srv->cfg.trusted_proxies = NULL; /* parsed into srv->proxies; the string is not kept */
	if (r < 0) {
		free(srv);
		r = -EINVAL;
		goto fail;
	}
	srv->nproxies = (unsigned)r;
	/* io_uring only where it works: otherwise epoll, and zh_server_io() says why */
	srv->io = ZH_IO_EPOLL;
	if (cfg->io == ZH_IO_URING && zh__uring_probe(&srv->io_reason) == 0)
		srv->io = ZH_IO_URING;
	raise_nofile();
	ignore_sigpipe();

	srv->workers = calloc(srv->nworkers, sizeof *srv->workers);
	if (srv->workers == NULL) {
		free(srv);
		r = -ENOMEM;
		goto fail;
	}
	if ((r = set_listeners(srv, cfg)) < 0) {
		zh_server_free(srv);
		goto fail;
	}
	for (unsigned i = 0; i < srv->nlisteners && !cfg->reuse_port; i++) {
		if (srv->listeners[i].fd < 0 && (r = claim_port(&srv->listeners[i])) < 0) {
			zh_server_free(srv);
			goto fail;
		}
	}
	for (unsigned i = 0; i < srv->nworkers; i++) {
		r = worker_init(srv, &srv->workers[i], i);
		if (r < 0) {
			zh_server_free(srv);
			goto fail;
		}
	}
	srv->port = srv->listeners[0].port;
	srv->cfg.listeners = NULL; /* the caller's array is not kept */
	return srv;
fail:
	if (err)
		*err = r;
	return NULL;
}

int zh_server_io(const zh_server_t *srv, const char **reason)
{
	if (reason)
		*reason = srv->io_reason;
	return srv->io;
}

uint16_t zh_server_port(const zh_server_t *srv)
{
	return srv->port;
}

uint16_t zh_server_listener_port(const zh_server_t *srv, unsigned i)
{
	return i < srv->nlisteners ? srv->listeners[i].port : 0;
}

unsigned zh_server_listener_fds(const zh_server_t *srv, unsigned i, int *fds, unsigned cap)
{
	unsigned n = 0;
	if (i >= srv->nlisteners)
		return 0;
	if (srv->listeners[i].fd >= 0) {
		if (cap)
			fds[0] = srv->listeners[i].fd;
		return 1;
	}
	for (unsigned k = 0; k < srv->nworkers; k++)
		if (srv->workers[k].lfd[i] >= 0 && n++ < cap)
			fds[n - 1] = srv->workers[k].lfd[i];
	return n;
}

int zh_server_run(zh_server_t *srv)
{
	unsigned started = 0;
	int r = 0;
	srv->running = true;
	for (; started < srv->nworkers; started++) {
		r = -pthread_create(&srv->workers[started].thread, NULL, zh__worker_main,
				    &srv->workers[started]);
		if (r < 0) {
			zh_server_stop(srv);
			break;
		}
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(srv->workers[i].thread, NULL);
	srv->running = false;
	return r;
}

int zh_server_set_error_handler(zh_server_t *srv, zh_error_handler_fn fn, void *arg)
{
	if (srv->running)
		return -EBUSY;
	srv->err_fn = fn;
	srv->err_arg = arg;
	return 0;
}

void zh_server_stop_gently(zh_server_t *srv, unsigned idle_grace_ms)
{
	srv->idle_grace_ms = idle_grace_ms; /* read by each worker when it sees the stop */
	zh_server_stop(srv);
}

void zh_server_stop(zh_server_t *srv)
{
	srv->stopping = 1;
	for (unsigned i = 0; i < srv->nworkers; i++)
		zh__eventfd_signal(srv->workers[i].stopfd);
}

int zh_server_ping(zh_server_t *srv, unsigned timeout_ms)
{
	struct timespec pause = {0, 1000000}; /* 1 ms between looks */
	uint64_t seq;
	unsigned answered = 0;
	seq = atomic_fetch_add(&srv->ping_seq, 1) + 1;
	for (unsigned i = 0; i < srv->nworkers; i++) {
		atomic_store_explicit(&srv->workers[i].ping_req, seq, memory_order_relaxed);
		zh__eventfd_signal(srv->workers[i].wakefd);
	}
	for (unsigned waited = 0;; waited++) {
		answered = 0;
		for (unsigned i = 0; i < srv->nworkers; i++)
			answered += atomic_load_explicit(&srv->workers[i].ping_ack,
							 memory_order_acquire) >= seq;
		if (answered == srv->nworkers)
			return 0;
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		nanosleep(&pause, NULL);
	}
}

void zh_server_free(zh_server_t *srv)
{
	if (srv == NULL)
		return;
	for (unsigned i = 0; i < srv->nworkers; i++) {
		if (srv->h2 && srv->workers[i].h2)
			srv->h2->worker_free(&srv->workers[i]);
		worker_dispose(&srv->workers[i]);
	}
	zh__router_free(&srv->router);
	zh__app_metrics_free(srv);
	if (srv->h2)
		srv->h2->cfg_free(srv->h2_cfg);
	free(srv->workers);
	free(srv);
}

void zh_server_stats(const zh_server_t *srv, zh_stats_t *out)
{
	enum { N = sizeof(zh_stats_t) / sizeof(uint64_t) };
	memset(out, 0, sizeof *out);
	for (unsigned i = 0; i < srv->nworkers; i++) {
		const uint64_t *src = (const uint64_t *)(const void *)&srv->workers[i].stats;
		uint64_t *dst = (uint64_t *)(void *)out;
		const zh__worker_t *w = &srv->workers[i];
		for (unsigned k = 0; k < N; k++)
			dst[k] += __atomic_load_n(&src[k], __ATOMIC_RELAXED);
		/* the pools' own counts, written by their worker with plain stores */
		out->large_buffers_in_use += __atomic_load_n(&w->large_pool.in_use, __ATOMIC_RELAXED);
		out->large_buffers_high_water +=
			__atomic_load_n(&w->large_pool.high_water, __ATOMIC_RELAXED);
		out->body_buffers_in_use += __atomic_load_n(&w->body_pool.in_use, __ATOMIC_RELAXED);
		out->body_buffers_high_water +=
			__atomic_load_n(&w->body_pool.high_water, __ATOMIC_RELAXED);
	}
}

/* zh_load: a small epoll load and abuse client for the zerohttpd load tests (issue 6).
 *
 *   zh_load keepalive --port P [--conns N] [--rate R] [--idle S] [--flow S] [--duration S]
 *                     [--path P]
 *                     [--expect-status N] [--expect-len N] [--warm-inflight N]
 *   zh_load slowloris --port P [--conns N] [--interval-ms MS] [--duration S] [--body]
 *                     [--reconnect] [--path P]
 *   zh_load slowread  --port P [--conns N] [--rate-bytes B] [--duration S] --path P
 *                     [--expect-bytes N] [--rcvbuf B]
 *
 * Why C: tests/integration is Python, but Python cannot keep 10,000 keep-alive connections
 * busy plus 2,000 dribblers on a 2-core machine that also runs the server and wrk. One
 * thread, one epoll instance, non-blocking sockets, no allocation per request.
 *
 * Output: progress events and the final summary are one-line JSON objects on stdout, so a
 * test can wait for {"event":"ready",...} and then assert on {"event":"summary",...}.
 * Every run ends by itself at --duration; the client only ever connects to 127.0.0.0/8.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { M_KEEPALIVE, M_SLOWLORIS, M_SLOWREAD };
enum cstate { S_FREE, S_CONNECTING, S_OPEN, S_DONE };
/* how a slowloris cycle ended */
enum cut { CUT_STATUS, CUT_CLOSED, CUT_RESET };

#define HEAD_CAP 2048
#define MAX_STATUS 600
#define LAT_BUCKETS 64 /* latency histogram: bucket i holds [2^(i/4)..) microseconds */

struct conn {
	int fd;
	enum cstate state;
	bool inflight;	   /* keepalive: a request is out, its response not complete */
	bool head_done;	   /* the response head has been parsed */
	bool head_sent;	   /* slowloris --body: the whole head went, the body dribbles */
	int status;	   /* of the response being read, 0 before its head */
	long long clen;	   /* its Content-Length, -1 if none */
	long long got;	   /* body bytes of it received */
	double t_start;	   /* connect (head dribblers) or end of head (body dribblers) */
	double t_sent;	   /* keepalive: when the request went */
	double next_send;  /* slowloris: next dribble; slowread: last refill */
	double budget;	   /* slowread: bytes it may read now */
	size_t pos;	   /* bytes of the payload sent */
	unsigned hlen;
	char head[HEAD_CAP];
};

static struct {
	enum mode mode;
	struct sockaddr_in addr;
	unsigned conns;
	double rate, idle, flow, duration, interval;
	const char *path;
	int expect_status;
	long long expect_len, expect_bytes;
	unsigned warm_inflight, max_connecting;
	bool body, reconnect;
	double rate_bytes;
	int rcvbuf;
} opt = {
	.conns = 100, .rate = 1000, .idle = 0, .flow = 0, .duration = 10, .interval = 1.0,
	.path = NULL, .expect_status = 200, .expect_len = -1, .expect_bytes = -1,
	.warm_inflight = 32, .max_connecting = 256, .rate_bytes = 1 << 20, .rcvbuf = 0,
};

/* counters for the summary */
static struct {
	unsigned long long requests, ok, bad_status, bad_len, closed, connect_err, send_err;
	unsigned long long bytes, cycles, cut_status, cut_closed, cut_reset, complete;
	unsigned long long status[MAX_STATUS], lat[LAT_BUCKETS];
	double lat_max, cut_min, cut_max, cut_sum, done_min, done_max, max_open_age;
	unsigned open_at_end, inflight_at_end, connected;
} st = { .cut_min = 1e9, .done_min = 1e9 };

static int ep;
static struct conn *cs;
static char payload[16384];
static size_t payload_len, payload_head_len;
static char scratch[1 << 16];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((format(printf, 1, 2))) static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("zh_load: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void usage(void)
{
	fputs("usage: zh_load keepalive|slowloris|slowread --port P [--host 127.x.y.z]\n"
	      "  [--conns N] [--duration S] [--path P]\n"
	      "  keepalive: [--rate REQ_PER_S] [--idle S] [--flow S] [--expect-status N]\n"
	      "             [--expect-len N] [--warm-inflight N]\n"
	      "  slowloris: [--interval-ms MS] [--body] [--reconnect]\n"
	      "  slowread:  [--rate-bytes B_PER_S_PER_CONN] [--expect-bytes N] [--rcvbuf B]\n",
	      stderr);
	exit(2);
}

/* ---- connections --------------------------------------------------------------------------- */

static void conn_close(struct conn *c, enum cstate to)
{
	if (c->fd >= 0) {
		(void)epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->state = to;
}

static void resp_reset(struct conn *c)
{
	c->head_done = false;
	c->status = 0;
	c->clen = -1;
	c->got = 0;
	c->hlen = 0;
}

static bool conn_open(struct conn *c, double t)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	struct epoll_event ev;
	if (fd < 0) {
		st.connect_err++;
		return false;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	/* a small receive buffer makes a slow reader's window close quickly, so the server
	 * really has to hold the response back instead of the kernel buffering megabytes */
	if (opt.rcvbuf > 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opt.rcvbuf, sizeof opt.rcvbuf);
	if (connect(fd, (struct sockaddr *)&opt.addr, sizeof opt.addr) < 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		st.connect_err++;
		return false;
	}
	memset(c, 0, sizeof *c);
	c->fd = fd;
	c->state = S_CONNECTING;
	c->t_start = t;
	resp_reset(c);
	/* level-triggered: slowread never asks for EPOLLIN (it polls on its own budget) */
	ev.events = EPOLLOUT | (opt.mode == M_SLOWREAD ? 0u : (unsigned)EPOLLIN) | EPOLLRDHUP;
	ev.data.ptr = c;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	return true;
}

static void want_out(struct conn *c, bool out)
{
	struct epoll_event ev;
	ev.events = (out ? (unsigned)EPOLLOUT : 0u) |
		    (opt.mode == M_SLOWREAD ? 0u : (unsigned)EPOLLIN) | EPOLLRDHUP;
	ev.data.ptr = c;
	(void)epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends payload[c->pos .. upto); returns false if the connection failed. */
static bool send_upto(struct conn *c, size_t upto)
{
	while (c->pos < upto) {
		ssize_t n = send(c->fd, payload + c->pos, upto - c->pos, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN)
				return true;
			return false;
		}
		c->pos += (size_t)n;
	}
	return true;
}

/* ---- responses ----------------------------------------------------------------------------- */

static long long field_value(const char *head, const char *name)
{
	size_t nl = strlen(name);
	for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':')
			return strtoll(p + 3 + nl, NULL, 10);
	}
	return -1;
}

/* Feeds received bytes to the response parser. Returns the number of responses completed
 * (0 or 1: nothing is pipelined), or -1 on a malformed head. */
static int resp_feed(struct conn *c, const char *p, size_t n)
{
	if (!c->head_done) {
		size_t take = n;
		char *end;
		if (take > HEAD_CAP - 1 - c->hlen)
			take = HEAD_CAP - 1 - c->hlen;
		memcpy(c->head + c->hlen, p, take);
		c->hlen += (unsigned)take;
		c->head[c->hlen] = 0;
		end = strstr(c->head, "\r\n\r\n");
		if (!end)
			return c->hlen == HEAD_CAP - 1 ? -1 : 0;
		size_t head_len = (size_t)(end + 4 - c->head);
		if (strncmp(c->head, "HTTP/1.1 ", 9) != 0)
			return -1;
		c->status = atoi(c->head + 9);
		if (c->status <= 0 || c->status >= MAX_STATUS)
			return -1;
		c->head[head_len] = 0;
		c->clen = field_value(c->head, "Content-Length");
		c->head_done = true;
		/* bytes beyond the head in this read are body */
		c->got = (long long)(n - (head_len - (c->hlen - take)));
		if (c->got < 0)
			c->got = 0;
	} else {
		c->got += (long long)n;
	}
	if (c->clen >= 0 && c->got >= c->clen)
		return 1;
	return 0;
}

static void lat_add(double s)
{
	double us = s * 1e6;
	unsigned b = 0;
	while (b + 1 < LAT_BUCKETS && us >= 2.0) {
		us /= 1.189207115; /* 2^(1/4): four buckets per doubling */
		b++;
	}
	st.lat[b]++;
	if (s > st.lat_max)
		st.lat_max = s;
}

static double lat_quantile(double q)
{
	unsigned long long total = 0, acc = 0;
	for (unsigned i = 0; i < LAT_BUCKETS; i++)
		total += st.lat[i];
	if (total == 0)
		return 0;
	for (unsigned i = 0; i < LAT_BUCKETS; i++) {
		acc += st.lat[i];
		if ((double)acc >= q * (double)total) {
			double us = 2.0;
			for (unsigned k = 0; k < i; k++)
				us *= 1.189207115;
			return us / 1e6;
		}
	}
	return st.lat_max;
}

/* ---- keepalive ----------------------------------------------------------------------------- */

static void ka_send(struct conn *c, double t)
{
	c->pos = 0;
	resp_reset(c);
	c->inflight = true;
	c->t_sent = t;
	st.requests++;
	if (!send_upto(c, payload_len)) {
		st.send_err++;
		conn_close(c, S_DONE);
		return;
	}
	if (c->pos < payload_len)
		want_out(c, true);
}

static void ka_readable(struct conn *c, double t)
{
	for (;;) {
		ssize_t n = recv(c->fd, scratch, sizeof scratch, 0);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* the server closed (or reset) a keep-alive connection: always an error here */
			st.closed++;
			conn_close(c, S_DONE);
			return;
		}
		st.bytes += (unsigned long long)n;
		if (!c->inflight) {
			st.bad_len++; /* bytes nobody asked for */
			continue;
		}
		int r = resp_feed(c, scratch, (size_t)n);
		if (r < 0) {
			st.bad_status++;
			conn_close(c, S_DONE);
			return;
		}
		if (r == 1) {
			bool good = true;
			st.status[c->status]++;
			if (c->status != opt.expect_status) {
				st.bad_status++;
				good = false;
			}
			if (c->got != c->clen ||
			    (opt.expect_len >= 0 && c->clen != opt.expect_len)) {
				st.bad_len++;
				good = false;
			}
			if (good)
				st.ok++;
			lat_add(t - c->t_sent);
			c->inflight = false;
		}
	}
}

/* ---- slowloris ----------------------------------------------------------------------------- */

static void sl_end(struct conn *c, enum cut how, double t)
{
	double age = t - c->t_start;
	st.cycles++;
	if (how == CUT_STATUS)
		st.cut_status++;
	else if (how == CUT_CLOSED)
		st.cut_closed++;
	else
		st.cut_reset++;
	if (age < st.cut_min)
		st.cut_min = age;
	if (age > st.cut_max)
		st.cut_max = age;
	st.cut_sum += age;
	conn_close(c, S_DONE);
}

static void sl_readable(struct conn *c, double t)
{
	for (;;) {
		ssize_t n = recv(c->fd, scratch, sizeof scratch, 0);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			sl_end(c, c->head_done ? CUT_STATUS : CUT_RESET, t);
			return;
		}
		if (n == 0) {
			sl_end(c, c->head_done ? CUT_STATUS : CUT_CLOSED, t);
			return;
		}
		st.bytes += (unsigned long long)n;
		if (!c->head_done) {
			if (resp_feed(c, scratch, (size_t)n) < 0) {
				st.bad_status++;
				sl_end(c, CUT_CLOSED, t);
				return;
			}
			if (c->head_done)
				st.status[c->status]++;
		}
	}
}

/* One dribble step: the first step of a --body dribbler sends the whole head. */
static void sl_dribble(struct conn *c, double t)
{
	size_t upto = c->pos + 1;
	if (opt.body && !c->head_sent)
		upto = payload_head_len;
	if (upto > payload_len) {
		/* never happens with --duration below the payload's length in seconds, but a
		 * finished request is no longer an attack: stop dribbling */
		c->next_send = 1e18;
		return;
	}
	if (!send_upto(c, upto)) {
		/* the server already closed: the read side will tell how */
		st.send_err++;
		c->next_send = 1e18;
		return;
	}
	if (opt.body && !c->head_sent && c->pos == payload_head_len) {
		c->head_sent = true;
		c->t_start = t; /* the body timer starts at the end of the head */
	}
	c->next_send = t + opt.interval;
}

/* ---- slowread ------------------------------------------------------------------------------ */

static void sr_poll(struct conn *c, double t)
{
	double dt = t - c->next_send;
	c->next_send = t;
	c->budget += dt * opt.rate_bytes;
	/* at most 50 ms of rate may be saved up, so a reader never catches up in a burst */
	if (c->budget > opt.rate_bytes * 0.05)
		c->budget = opt.rate_bytes * 0.05;
	while (c->budget >= 1) {
		size_t want = sizeof scratch;
		if (want > (size_t)c->budget)
			want = (size_t)c->budget;
		ssize_t n = recv(c->fd, scratch, want, 0);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			st.closed++;
			conn_close(c, S_DONE);
			return;
		}
		c->budget -= (double)n;
		st.bytes += (unsigned long long)n;
		int r = resp_feed(c, scratch, (size_t)n);
		if (r < 0) {
			st.bad_status++;
			conn_close(c, S_DONE);
			return;
		}
		if (r == 1) {
			double d = t - c->t_start;
			st.status[c->status]++;
			if (c->status == opt.expect_status && c->got == c->clen &&
			    (opt.expect_bytes < 0 || c->got == opt.expect_bytes)) {
				st.ok++;
				if (d < st.done_min)
					st.done_min = d;
				if (d > st.done_max)
					st.done_max = d;
			} else {
				st.bad_len += c->status == opt.expect_status;
				st.bad_status += c->status != opt.expect_status;
			}
			conn_close(c, S_DONE);
			return;
		}
	}
}

/* ---- main loop ----------------------------------------------------------------------------- */

static void print_summary(double t0, double t)
{
	printf("{\"event\":\"summary\",\"mode\":\"%s\",\"conns\":%u,\"connected\":%u,"
	       "\"connect_errors\":%llu,\"send_errors\":%llu,\"elapsed_s\":%.3f,\"bytes\":%llu",
	       opt.mode == M_KEEPALIVE ? "keepalive" : opt.mode == M_SLOWLORIS ? "slowloris"
									 : "slowread",
	       opt.conns, st.connected, st.connect_err, st.send_err, t - t0, st.bytes);
	if (opt.mode == M_KEEPALIVE)
		printf(",\"requests\":%llu,\"ok\":%llu,\"bad_status\":%llu,\"bad_len\":%llu,"
		       "\"closed\":%llu,\"open_at_end\":%u,\"inflight_at_end\":%u,"
		       "\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f,\"lat_max_ms\":%.3f",
		       st.requests, st.ok, st.bad_status, st.bad_len, st.closed, st.open_at_end,
		       st.inflight_at_end,
		       lat_quantile(0.5) * 1e3, lat_quantile(0.99) * 1e3, st.lat_max * 1e3);
	if (opt.mode == M_SLOWLORIS)
		printf(",\"cycles\":%llu,\"cut_status\":%llu,\"cut_closed\":%llu,\"cut_reset\":%llu,"
		       "\"bad_status\":%llu,\"cut_min_ms\":%.1f,\"cut_max_ms\":%.1f,"
		       "\"cut_mean_ms\":%.1f,\"open_at_end\":%u,\"max_open_age_ms\":%.1f",
		       st.cycles, st.cut_status, st.cut_closed, st.cut_reset, st.bad_status,
		       st.cycles ? st.cut_min * 1e3 : 0, st.cut_max * 1e3,
		       st.cycles ? st.cut_sum / (double)st.cycles * 1e3 : 0, st.open_at_end,
		       st.max_open_age * 1e3);
	if (opt.mode == M_SLOWREAD)
		printf(",\"ok\":%llu,\"bad_status\":%llu,\"bad_len\":%llu,\"closed\":%llu,"
		       "\"incomplete\":%u,\"done_min_s\":%.3f,\"done_max_s\":%.3f",
		       st.ok, st.bad_status, st.bad_len, st.closed, st.open_at_end,
		       st.ok ? st.done_min : 0, st.done_max);
	printf(",\"statuses\":{");
	bool first = true;
	for (int i = 0; i < MAX_STATUS; i++)
		if (st.status[i]) {
			printf("%s\"%d\":%llu", first ? "" : ",", i, st.status[i]);
			first = false;
		}
	printf("}}\n");
	fflush(stdout);
}

static void build_payload(void)
{
	const char *path = opt.path;
	int n;
	if (opt.mode == M_KEEPALIVE || opt.mode == M_SLOWREAD) {
		n = snprintf(payload, sizeof payload, "GET %s HTTP/1.1\r\nHost: load\r\n\r\n",
			     path ? path : "/plaintext");
		payload_len = payload_head_len = (size_t)n;
		return;
	}
	if (opt.body) {
		/* the head goes at once; 8,000 body bytes are far more than any run dribbles, and
		 * small enough to sit in the receive buffer (no large buffer is involved) */
		n = snprintf(payload, sizeof payload,
			     "POST %s HTTP/1.1\r\nHost: load\r\nContent-Type: a/b\r\n"
			     "Content-Length: 8000\r\n\r\n",
			     path ? path : "/echo");
		payload_head_len = (size_t)n;
		memset(payload + n, 'b', 8000);
		payload_len = (size_t)n + 8000;
		return;
	}
	/* a head that never ends within a run: one header field padded to 8,000 bytes */
	n = snprintf(payload, sizeof payload, "GET %s HTTP/1.1\r\nHost: load\r\nX-Pad: ",
		     path ? path : "/plaintext");
	memset(payload + n, 'a', 8000);
	payload_len = (size_t)n + 8000;
	payload_head_len = 0;
}

static void parse_args(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int port = -1;
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "keepalive") == 0)
		opt.mode = M_KEEPALIVE;
	else if (strcmp(argv[1], "slowloris") == 0)
		opt.mode = M_SLOWLORIS;
	else if (strcmp(argv[1], "slowread") == 0)
		opt.mode = M_SLOWREAD;
	else
		usage();
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool flag = true;
		if (strcmp(a, "--body") == 0)
			opt.body = true;
		else if (strcmp(a, "--reconnect") == 0)
			opt.reconnect = true;
		else
			flag = false;
		if (flag)
			continue;
		if (!v)
			usage();
		i++;
		if (strcmp(a, "--port") == 0)
			port = atoi(v);
		else if (strcmp(a, "--host") == 0)
			host = v;
		else if (strcmp(a, "--conns") == 0)
			opt.conns = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--rate") == 0)
			opt.rate = atof(v);
		else if (strcmp(a, "--idle") == 0)
			opt.idle = atof(v);
		else if (strcmp(a, "--flow") == 0)
			opt.flow = atof(v);
		else if (strcmp(a, "--duration") == 0)
			opt.duration = atof(v);
		else if (strcmp(a, "--path") == 0)
			opt.path = v;
		else if (strcmp(a, "--expect-status") == 0)
			opt.expect_status = atoi(v);
		else if (strcmp(a, "--expect-len") == 0)
			opt.expect_len = atoll(v);
		else if (strcmp(a, "--expect-bytes") == 0)
			opt.expect_bytes = atoll(v);
		else if (strcmp(a, "--warm-inflight") == 0)
			opt.warm_inflight = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--interval-ms") == 0)
			opt.interval = atof(v) / 1000.0;
		else if (strcmp(a, "--rate-bytes") == 0)
			opt.rate_bytes = atof(v);
		else if (strcmp(a, "--rcvbuf") == 0)
			opt.rcvbuf = atoi(v);
		else
			usage();
	}
	if (port <= 0 || port > 65535 || opt.conns == 0 || opt.duration <= 0 ||
	    opt.interval <= 0 || opt.rate_bytes <= 0 || opt.expect_status <= 0 ||
	    opt.expect_status >= MAX_STATUS)
		usage();
	if (opt.warm_inflight == 0)
		opt.warm_inflight = 1;
	memset(&opt.addr, 0, sizeof opt.addr);
	opt.addr.sin_family = AF_INET;
	opt.addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &opt.addr.sin_addr) != 1)
		die("bad --host %s", host);
	/* loopback only: this is an abuse tool */
	if ((ntohl(opt.addr.sin_addr.s_addr) >> 24) != 127)
		die("--host must be in 127.0.0.0/8");
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	struct epoll_event evs[512];
	double t0, t, end, last_ka = 0, ka_due = 0, flow_at = 0;
	unsigned next_open = 0, connecting = 0, warmed = 0, rr = 0;
	bool ready = false, flowing = false;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	/* raise our own descriptor limit: 10,000 connections need more than the usual 1,024 */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.conns + 16)
		die("RLIMIT_NOFILE %llu is too low for %u connections",
		    (unsigned long long)rl.rlim_cur, opt.conns);
	build_payload();
	cs = calloc(opt.conns, sizeof *cs);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!cs || ep < 0)
		die("out of memory or epoll: %s", strerror(errno));
	for (unsigned i = 0; i < opt.conns; i++)
		cs[i].fd = -1;

	t0 = t = now();
	end = t0 + opt.duration;
	while (t < end) {
		/* open connections, a bounded number at a time so the listen backlog never
		 * overflows (an overflow costs a 1 s SYN retransmit, not an error) */
		while (next_open < opt.conns && connecting < opt.max_connecting) {
			struct conn *c = &cs[next_open++];
			if (conn_open(c, t))
				connecting++;
			else
				c->state = S_DONE;
		}
		int n = epoll_wait(ep, evs, 512, 2);
		t = now();
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			unsigned e = evs[i].events;
			if (c->state == S_CONNECTING) {
				int err = 0;
				socklen_t el = sizeof err;
				if (!(e & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
					continue;
				connecting--;
				(void)getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err || (e & (EPOLLERR | EPOLLHUP))) {
					st.connect_err++;
					conn_close(c, S_DONE);
					continue;
				}
				c->state = S_OPEN;
				st.connected++;
				want_out(c, false);
				if (opt.mode == M_SLOWLORIS) {
					/* spread the dribbles over the interval instead of a burst per
					 * tick; the first byte (or the head) goes now */
					sl_dribble(c, t);
					c->next_send = t + opt.interval * (double)(rand() % 1000) / 1000.0;
				} else if (opt.mode == M_SLOWREAD) {
					if (!send_upto(c, payload_len) || c->pos < payload_len) {
						st.send_err++;
						conn_close(c, S_DONE);
					}
					c->next_send = t;
					c->t_start = t;
				}
				continue;
			}
			if (c->state != S_OPEN)
				continue;
			if (opt.mode == M_KEEPALIVE) {
				if ((e & EPOLLOUT) && c->inflight && c->pos < payload_len) {
					if (!send_upto(c, payload_len)) {
						st.send_err++;
						conn_close(c, S_DONE);
						continue;
					}
					if (c->pos == payload_len)
						want_out(c, false);
				}
				if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					ka_readable(c, t);
			} else if (opt.mode == M_SLOWLORIS) {
				if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					sl_readable(c, t);
			}
		}

		if (opt.mode == M_KEEPALIVE) {
			if (!ready) {
				/* phase 1: one request on each connection, few at a time, so no more I/O
				 * contexts are touched than the warm-up already touched */
				unsigned inflight = 0;
				for (unsigned i = 0; i < warmed; i++)
					inflight += cs[i].state == S_OPEN && cs[i].inflight;
				while (warmed < next_open && inflight < opt.warm_inflight &&
				       cs[warmed].state != S_CONNECTING) {
					if (cs[warmed].state == S_OPEN) {
						ka_send(&cs[warmed], t);
						inflight++;
					}
					warmed++;
				}
				if (warmed == opt.conns && inflight == 0 && connecting == 0) {
					unsigned open = 0;
					for (unsigned i = 0; i < opt.conns; i++)
						open += cs[i].state == S_OPEN;
					printf("{\"event\":\"ready\",\"open\":%u,\"ok\":%llu,"
					       "\"elapsed_s\":%.3f}\n",
					       open, st.ok, t - t0);
					fflush(stdout);
					ready = true;
					flow_at = t + opt.idle;
					last_ka = flow_at;
				}
			} else if (t >= flow_at) {
				/* phase 3: requests at --rate in all, round-robin over the connections;
				 * one that still waits for its response is skipped (counted) */
				if (!flowing) {
					printf("{\"event\":\"flow\",\"elapsed_s\":%.3f}\n", t - t0);
					fflush(stdout);
					flowing = true;
					/* --flow: requests flow this long, then the run ends (--duration
					 * still bounds the whole run) */
					if (opt.flow > 0 && t + opt.flow < end)
						end = t + opt.flow;
				}
				ka_due += (t - last_ka) * opt.rate;
				last_ka = t;
				for (unsigned tries = 0; ka_due >= 1 && tries < opt.conns; tries++) {
					struct conn *c = &cs[rr];
					rr = (rr + 1) % opt.conns;
					if (c->state != S_OPEN || c->inflight)
						continue;
					ka_send(c, t);
					ka_due -= 1;
				}
				if (ka_due > opt.rate * 0.1)
					ka_due = opt.rate * 0.1; /* behind: do not burst later */
			}
		} else {
			unsigned open = 0;
			for (unsigned i = 0; i < next_open; i++) {
				struct conn *c = &cs[i];
				if (c->state == S_DONE && opt.reconnect && opt.mode == M_SLOWLORIS &&
				    connecting < opt.max_connecting) {
					if (conn_open(c, t))
						connecting++;
					else
						c->state = S_DONE;
					continue;
				}
				if (c->state != S_OPEN)
					continue;
				open++;
				if (opt.mode == M_SLOWLORIS && t >= c->next_send)
					sl_dribble(c, t);
				else if (opt.mode == M_SLOWREAD)
					sr_poll(c, t);
			}
			if (!ready && next_open == opt.conns && connecting == 0) {
				printf("{\"event\":\"ready\",\"open\":%u,\"elapsed_s\":%.3f}\n", open,
				       t - t0);
				fflush(stdout);
				ready = true;
			}
			/* slowread: everything read (or failed) ends the run early */
			if (opt.mode == M_SLOWREAD && ready && open == 0)
				break;
		}
	}
	t = now();
	for (unsigned i = 0; i < opt.conns; i++) {
		struct conn *c = &cs[i];
		if (c->state == S_OPEN || c->state == S_CONNECTING) {
			st.open_at_end++;
			st.inflight_at_end += c->state == S_OPEN && c->inflight;
			if (c->state == S_OPEN && t - c->t_start > st.max_open_age &&
			    (!opt.body || c->head_sent))
				st.max_open_age = t - c->t_start;
			conn_close(c, S_DONE);
		}
	}
	print_summary(t0, t);
	close(ep);
	free(cs);
	return 0;
}

/* async_service.c — answers that come later. Each request is handed to a backend thread
 * (standing for a slow upstream: a database, another service); the worker goes on serving
 * other connections meanwhile, and a worker timer answers 504 if the backend is late.
 *
 *   GET /quote/{symbol}?delay_ms=N&timeout_ms=T
 *        the backend takes N ms (default 100) to price the symbol: 200 {"symbol": "ACME",
 *        "price": 123.45}; unless T ms (default 1000) pass first: 504 {"error": "upstream
 *        timeout"}. 503 with Retry-After when the backend's queue is full.
 *   GET /metrics   the library's metrics, then this program's: app_upstream_total by outcome
 *                  (ok, timeout, busy) and the backend's latency, app_upstream_seconds
 *
 *   cc -o async_service async_service.c $(pkg-config --cflags --libs zerohttp)
 *   ./async_service [PORT]
 *   curl 'localhost:8080/quote/ACME?delay_ms=2000&timeout_ms=500'     # a 504 after 0.5 s
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <zerohttp.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static zh_server_t *server;
static zh_metric_t *outcomes, *latency; /* registered in main, updated from any thread */
enum { OK, TIMEOUT, BUSY };		/* the series of outcomes, in its label's order */

/* ---- the backend: threads that block, so that the workers never do ---- */

/* A job holds a copy of all it needs: the request may be gone (the deadline answered it)
 * before the backend is done. The handler allocates it; answer() frees it, whether it
 * answers or finds the request gone. */
typedef struct {
	zh_deferred_t token; /* where the answer goes: plain data, copied from the request */
	unsigned delay_ms;
	char symbol[16];
	double price; /* the backend's result */
} job_t;

static int queue[2]; /* a pipe of job_t pointers: handlers write, backend threads read */
static atomic_bool stopping;

static void answer(zh_request_t *req, zh_response_t *resp, void *arg);

static void *backend(void *unused)
{
	job_t *job;
	(void)unused;
	while (read(queue[0], &job, sizeof job) == sizeof job) {
		struct timespec t = {job->delay_ms / 1000, job->delay_ms % 1000 * 1000000L};
		if (!atomic_load(&stopping))
			nanosleep(&t, NULL); /* the slow upstream call */
		unsigned h = 0; /* the answer: a made-up price, the same for the same symbol */
		for (const char *p = job->symbol; *p; p++)
			h = h * 31 + (unsigned char)*p;
		job->price = h % 100000 / 100.0;
		zh_metric_observe(latency, 0, job->delay_ms / 1000.0);
		/* Back to the request's worker, which runs answer() there; -EAGAIN: its queue of
		 * resumptions is full for a moment. Once the server has stopped, answer() will
		 * never run: the job is ours to free. */
		int r;
		while ((r = zh_deferred_resume(&job->token, answer, job)) == -EAGAIN)
			nanosleep(&(struct timespec){0, 1000000}, NULL);
		if (r < 0)
			free(job);
	}
	return NULL; /* the pipe was closed: the program is ending */
}

/* ---- the answers: run on the request's worker, or with req and resp NULL when the request
 * has gone (answered already, or its client closed the connection) ---- */

static void answer(zh_request_t *req, zh_response_t *resp, void *arg)
{
	job_t *job = arg;
	(void)req;
	if (resp != NULL) { /* the deadline's timer is cancelled as this response ends */
		zh_metric_add(outcomes, OK, 1);
		zh_json_t *j = zh_json_begin(resp, 0);
		zh_json_obj(j);
		zh_json_key(j, "symbol", 6);
		zh_json_str(j, job->symbol, strlen(job->symbol));
		zh_json_key(j, "price", 5);
		zh_json_double(j, job->price);
		zh_json_end(j);
	}
	free(job);
}

static void answer_error(zh_response_t *resp, int status, const char *msg)
{
	zh_write_header(resp, status);
	zh_json_t *j = zh_json_begin(resp, 0);
	zh_json_obj(j);
	zh_json_key(j, "error", 5);
	zh_json_str(j, msg, strlen(msg));
	zh_json_end(j);
}

static void answer_timeout(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	if (resp != NULL) { /* NULL: the backend's answer came first */
		zh_metric_add(outcomes, TIMEOUT, 1);
		answer_error(resp, 504, "upstream timeout");
	}
}

static void answer_busy(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	if (resp != NULL) {
		zh_metric_add(outcomes, BUSY, 1);
		zh_resp_header_set(resp, "Retry-After", "1");
		answer_error(resp, 503, "backend busy");
	}
}

/* ---- the handler ---- */

/* What stays with the response, in its own 256 bytes (zh_resp_state): valid until the
 * response ends, so the timer may live there. */
typedef struct {
	zh_deferred_t token;
	zh_timer_t deadline;
} call_t;

/* The deadline's timer callback, on the worker. It may not write the response, so it
 * resumes it like the backend does (and retries in 1 ms if resumptions are queued full). */
static void on_deadline(zh_request_t *req, void *arg)
{
	call_t *c = arg;
	if (zh_deferred_resume(&c->token, answer_timeout, NULL) == -EAGAIN &&
	    zh_timer_start(req, &c->deadline, 1, on_deadline, c) < 0)
		fprintf(stderr, "async_service: a deadline was lost\n");
}

static void quote(zh_request_t *req, zh_response_t *resp, void *arg)
{
	call_t *c = zh_resp_state(resp);
	uint64_t delay = 100, timeout = 1000; /* the defaults: an absent parameter leaves them */
	zh_slice_t symbol, query = zh_req_query(req);
	job_t *job;
	(void)arg;
	if (!zh_req_param(req, "symbol", &symbol) || symbol.len >= sizeof job->symbol ||
	    zh_form_get_u64(query, "delay_ms", &delay) < 0 || delay > 60000 ||
	    zh_form_get_u64(query, "timeout_ms", &timeout) < 0 || timeout > 60000) {
		answer_error(resp, 400, "symbol: up to 15 bytes; delay_ms, timeout_ms: 0 to 60000");
		return;
	}
	if ((job = calloc(1, sizeof *job)) == NULL) {
		answer_error(resp, 503, "out of memory");
		return;
	}
	memcpy(job->symbol, symbol.ptr, symbol.len); /* the request's bytes may go first */
	job->delay_ms = (unsigned)delay;

	/* From here the response waits: the handler returns, the worker serves others, and
	 * whoever resumes the token first writes the answer. */
	if (zh_resp_defer(resp, &c->token) < 0) {
		free(job);
		answer_error(resp, 500, "cannot defer");
		return;
	}
	job->token = c->token;
	zh_timer_init(&c->deadline);
	if (zh_timer_start(req, &c->deadline, timeout, on_deadline, c) < 0 ||
	    write(queue[1], &job, sizeof job) != sizeof job) { /* the queue is full */
		free(job);
		if (zh_deferred_resume(&c->token, answer_busy, NULL) < 0)
			fprintf(stderr, "async_service: cannot answer a request\n");
	}
}

/* ---- start-up ---- */

static int add_metrics(zh_server_t *srv)
{
	static const char *const names[] = {"ok", "timeout", "busy"};
	static const double seconds[] = {0.01, 0.1, 1, 10};
	zh_metric_options_t o;
	int err = 0;
	zh_metric_options_init(&o);
	o.name = "app_upstream_total";
	o.help = "Upstream calls by outcome.";
	o.label = "outcome";
	o.values = names;
	o.nvalues = 3;
	if ((outcomes = zh_metric_new(srv, &o, &err)) == NULL)
		return err;
	zh_metric_options_init(&o);
	o.name = "app_upstream_seconds";
	o.help = "Time the upstream took.";
	o.type = ZH_METRIC_HISTOGRAM;
	o.buckets = seconds;
	o.nbuckets = 4;
	return (latency = zh_metric_new(srv, &o, &err)) == NULL ? err : 0;
}

static void on_signal(int sig)
{
	(void)sig;
	zh_server_stop(server);
}

enum { BACKENDS = 4 };

int main(int argc, char **argv)
{
	pthread_t threads[BACKENDS];
	zh_config_t cfg;
	int err = 0;

	zh_config_init(&cfg);
	cfg.port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 8080);
	if ((server = zh_server_new(&cfg, &err)) == NULL ||
	    (err = zh_server_route(server, ZH_GET, "/quote/{symbol}", 0, quote, NULL)) < 0 ||
	    (err = zh_server_route(server, ZH_GET, "/metrics", 0, zh_metrics_handler, server)) < 0 ||
	    (err = add_metrics(server)) < 0) {
		fprintf(stderr, "async_service: %s\n", strerror(-err));
		return 1;
	}
	/* A handler must never block: a full queue is a 503, not a wait */
	if (pipe(queue) < 0 || fcntl(queue[1], F_SETFL, O_NONBLOCK) < 0) {
		perror("async_service: pipe");
		return 1;
	}
	for (int i = 0; i < BACKENDS; i++)
		if ((err = pthread_create(&threads[i], NULL, backend, NULL)) != 0) {
			fprintf(stderr, "async_service: thread: %s\n", strerror(err));
			return 1;
		}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("async_service: listening on http://127.0.0.1:%u\n", zh_server_port(server));
	fflush(stdout);
	err = zh_server_run(server); /* the drain waits for deferred responses */

	/* The backends finish what they hold (their resumptions now fail: they free the jobs)
	 * and stop at the end of the pipe; only then may the server go. */
	atomic_store(&stopping, true);
	close(queue[1]);
	for (int i = 0; i < BACKENDS; i++)
		pthread_join(threads[i], NULL);
	zh_server_free(server);
	return err < 0;
}

/* json_writer.c — the JSON writer's own speed, without the network: `make bench` runs it.
 *
 * A HEAD request makes the library count body bytes without sending them (the writer
 * encodes into the worker's discard window), so timing a HEAD handler that serializes a big
 * document measures encoding alone: escaping, numbers, separators, window refills. The
 * handler times itself with the thread's CPU clock and reports MB/s of JSON produced.
 *
 *   documents: "list"    the jsonlist benchmark's objects (ints, short strings, doubles,
 *                        booleans, a nested array), 200,000 items
 *              "strings" 64-byte strings, one in four with a quote, a newline or a
 *                        multibyte character to escape or validate, 200,000 items
 *              "doubles" random doubles needing the general shortest-text algorithm
 */
#include "zerohttp.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ITEMS = 200000, ROUNDS = 7 };

static double mbps[3][ROUNDS];
static int round_no;
static double doubles[4096];

static double cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "item-<i>" without snprintf, which would cost more than the writer */
static int item_name(char *name, int i)
{
	char digits[12];
	int nd = 0, n = 5;
	memcpy(name, "item-", 5);
	do
		digits[nd++] = (char)('0' + i % 10);
	while ((i /= 10) != 0);
	while (nd)
		name[n++] = digits[--nd];
	return n;
}

static void doc_list(zh_json_t *j)
{
	char name[32];
	zh_json_arr(j);
	for (int i = 0; i < ITEMS; i++) {
		int n = item_name(name, i);
		zh_json_obj(j);
		zh_json_key(j, "id", 2);
		zh_json_u64(j, (uint64_t)i);
		zh_json_key(j, "name", 4);
		zh_json_str(j, name, (size_t)n);
		zh_json_key(j, "price", 5);
		zh_json_double(j, i * 1.25);
		zh_json_key(j, "tags", 4);
		zh_json_arr(j);
		zh_json_str(j, "alpha", 5);
		zh_json_str(j, "beta", 4);
		zh_json_end(j);
		zh_json_key(j, "active", 6);
		zh_json_bool(j, i % 2 == 0);
		zh_json_end(j);
	}
	zh_json_end(j);
}

static void doc_strings(zh_json_t *j)
{
	static const char *const kinds[4] = {
		"a plain ascii sentence of sixty-four bytes, nothing to escape!!",
		"she said \"hello\" and then\nleft, a tab\there; sixty-four bytes.",
		"caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9 \xe2\x82\xac 12, \xf0\x9f\x98\x80 fine, 64 b",
		"another plain line of text that is exactly sixty-four bytes...."};
	zh_json_arr(j);
	for (int i = 0; i < ITEMS; i++)
		zh_json_str(j, kinds[i & 3], strlen(kinds[i & 3]));
	zh_json_end(j);
}

static void doc_doubles(zh_json_t *j)
{
	zh_json_arr(j);
	for (int i = 0; i < ITEMS; i++)
		zh_json_double(j, doubles[i & 4095]);
	zh_json_end(j);
}

static void handler(zh_request_t *req, zh_response_t *resp, void *arg)
{
	int which = (int)(intptr_t)arg;
	zh_json_t *j = zh_json_begin(resp, 0);
	double t0 = cpu_seconds(), t;
	(void)req;
	if (which == 0)
		doc_list(j);
	else if (which == 1)
		doc_strings(j);
	else
		doc_doubles(j);
	t = cpu_seconds() - t0;
	mbps[which][round_no] = (double)zh_resp_body_len(resp) / t / 1e6;
	if (zh_json_error(j))
		fprintf(stderr, "json_writer: writer error %d\n", zh_json_error(j));
}

static void *serve(void *srv)
{
	(void)!zh_server_run(srv);
	return NULL;
}

static void head(uint16_t port, const char *path)
{
	char req[128], buf[4096];
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), n;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		perror("json_writer: connect");
		exit(1);
	}
	n = snprintf(req, sizeof req, "HEAD %s HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n", path);
	if (write(fd, req, (size_t)n) != n)
		exit(1);
	while (read(fd, buf, sizeof buf) > 0)
		;
	close(fd);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(void)
{
	static const char *const names[3] = {"list", "strings", "doubles"};
	zh_config_t cfg;
	zh_server_t *srv;
	pthread_t t;
	int err;
	srand(1);
	for (int i = 0; i < 4096; i++)
		doubles[i] = ((double)rand() / RAND_MAX - 0.5) * 1e6 / ((double)rand() + 1);
	zh_config_init(&cfg);
	cfg.port = 0;
	cfg.workers = 1;
	srv = zh_server_new(&cfg, &err);
	if (srv == NULL || zh_server_route(srv, ZH_HEAD, "/list", 0, handler, (void *)0) < 0 ||
	    zh_server_route(srv, ZH_HEAD, "/strings", 0, handler, (void *)1) < 0 ||
	    zh_server_route(srv, ZH_HEAD, "/doubles", 0, handler, (void *)2) < 0) {
		fprintf(stderr, "json_writer: cannot start\n");
		return 1;
	}
	pthread_create(&t, NULL, serve, srv);
	for (round_no = 0; round_no < ROUNDS; round_no++) {
		head(zh_server_port(srv), "/list");
		head(zh_server_port(srv), "/strings");
		head(zh_server_port(srv), "/doubles");
	}
	zh_server_stop(srv);
	pthread_join(t, NULL);
	zh_server_free(srv);
	printf("| JSON writer document (%d items, median of %d) | MB/s |\n|---|---:|\n", ITEMS,
	       ROUNDS);
	for (int k = 0; k < 3; k++) {
		qsort(mbps[k], ROUNDS, sizeof mbps[k][0], cmp);
		printf("| %s | %.0f |\n", names[k], mbps[k][ROUNDS / 2]);
	}
	return 0;
}

/* limits.c — --rate-limit RPS[:BURST], --max-inflight N, --limits-file FILE: one zh_limit
 * for every worker, first in the chain, so a refusal costs no other middleware's work (no
 * crypt(3)). The flags give the base; the file's lines override them and are read again on
 * SIGHUP: "rate-limit RPS[:BURST]", "max-inflight N" (0: off) and "rate-limit-ipv6-prefix N"
 * (IPv6 clients share a bucket per /N, 32..128; default 64), blank lines, # comments.
 * /healthz, /readyz and /metrics are never limited: monitoring must see an overloaded
 * server.
 */
#include "zerohttpd.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static zh_limit_t *g_limit;
static struct zhd_limits flags; /* from the command line */
static const char *limits_file;

/* "RPS" or "RPS:BURST", decimal numbers; RPS 0 turns the rate limit off. */
int zhd_parse_rate(const char *s, double *rps, double *burst)
{
	char *end;
	if (*s == '\0' || strspn(s, "0123456789.:") != strlen(s))
		return -1; /* strtod alone would take " 1", "inf" or "0x10" */
	*rps = strtod(s, &end);
	*burst = 0;
	if (end == s || (*rps != 0 && (*rps < 0.001 || *rps > 1e9)))
		return -1;
	if (*end == ':') {
		const char *b = end + 1;
		*burst = strtod(b, &end);
		if (end == b || *burst < 1)
			return -1;
	}
	return *end == '\0' ? 0 : -1;
}

/* One line of the file, comment and blanks already cut: false if it is wrong. */
static bool limits_line(char *key, struct zhd_limits *l)
{
	static const char *const keys[] = {"rate-limit", "max-inflight", "rate-limit-ipv6-prefix"};
	struct zhd_settings s; /* the flags' own setters parse the value, so both agree */
	const struct zhd_option *o = NULL;
	char *arg = key + strcspn(key, " \t");
	if (*arg != '\0') {
		*arg++ = '\0';
		arg += strspn(arg, " \t");
	}
	for (size_t i = 0; i < sizeof keys / sizeof keys[0] && o == NULL; i++)
		if (strcmp(key, keys[i]) == 0)
			o = zhd_option_find(key);
	if (o == NULL)
		return false;
	zhd_settings_init(&s);
	s.limits = *l;
	if (o->set(&s, o, arg) != NULL)
		return false;
	*l = s.limits;
	return true;
}

/* The file's settings over *l: 0, or -1 with a message that names the file and line. */
static int read_limits_file(const char *path, struct zhd_limits *l)
{
	char line[256];
	unsigned n = 0;
	bool bad = false;
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		zhd_log(ZHD_ERROR, "cannot read --limits-file %s: %s", path, strerror(errno));
		return -1;
	}
	while (!bad && fgets(line, sizeof line, f)) {
		char *key, *end;
		n++;
		bad = strchr(line, '\n') == NULL && !feof(f); /* longer than any valid line */
		line[strcspn(line, "#\r\n")] = '\0';
		for (end = line + strlen(line); end > line && (end[-1] == ' ' || end[-1] == '\t');)
			*--end = '\0';
		key = line + strspn(line, " \t");
		if (!bad && *key != '\0')
			bad = !limits_line(key, l);
	}
	if (bad)
		zhd_log(ZHD_ERROR, "%s:%u: expected \"rate-limit RPS[:BURST]\", \"max-inflight N\" "
				   "or \"rate-limit-ipv6-prefix 32..128\"", path, n);
	else if (ferror(f))
		zhd_log(ZHD_ERROR, "cannot read --limits-file %s", path);
	bad |= ferror(f) != 0;
	fclose(f);
	return bad ? -1 : 0;
}

/* The flags, then the file over them, into the limiter. 0, or -1: the limits in force
 * stay as they were. */
static int apply_limits(void)
{
	struct zhd_limits l = flags;
	char inflight[24] = "off", v6[48] = "";
	int r;
	if (limits_file && read_limits_file(limits_file, &l) < 0)
		return -1;
	if ((r = zh_limit_ipv6_prefix(g_limit, l.ipv6_prefix ? (unsigned)l.ipv6_prefix : 64)) < 0 ||
	    (r = zh_limit_set(g_limit, l.rps, l.burst, (unsigned)l.max_inflight)) < 0) {
		zhd_log(ZHD_ERROR, "bad limits: %s", strerror(-r));
		return -1;
	}
	if (l.max_inflight)
		snprintf(inflight, sizeof inflight, "%llu", l.max_inflight);
	if (l.ipv6_prefix) /* named only when not the default /64 */
		snprintf(v6, sizeof v6, " (IPv6 per /%llu)", l.ipv6_prefix);
	if (l.rps > 0)
		zhd_log(ZHD_INFO, "limits: rate-limit %g:%g per client%s, max-inflight %s", l.rps,
			l.burst ? l.burst : l.rps > 1 ? l.rps : 1, v6, inflight);
	else
		zhd_log(ZHD_INFO, "limits: rate-limit off, max-inflight %s", inflight);
	return 0;
}

void zhd_limits_rebase(const struct zhd_settings *s)
{
	if (g_limit == NULL) { /* no limiter in the chain: adding one needs a restart */
		if (s->limits_on)
			zhd_log(ZHD_WARN, "limits: none were set at start; new ones take effect "
					  "after a restart");
		return;
	}
	flags = s->limits;
	limits_file = s->limits_file;
}

int zhd_limits_check(const char *path)
{
	struct zhd_limits l = {0};
	return read_limits_file(path, &l);
}

void zhd_limits_reload(void)
{
	if (g_limit && apply_limits() < 0)
		zhd_log(ZHD_WARN, "limits not reloaded; the previous ones stay in force");
}

int zhd_limits_start(zh_server_t *srv, const struct zhd_settings *s)
{
	zh_middleware_t mw;
	int err = 0;
	if (!s->limits_on)
		return 0;
	flags = s->limits;
	limits_file = s->limits_file;
	if ((g_limit = zh_limit_new(0, &err)) == NULL ||
	    (err = zh_limit_exempt(g_limit, "/healthz")) < 0 ||
	    (err = zh_limit_exempt(g_limit, "/readyz")) < 0 ||
	    (err = zh_limit_exempt(g_limit, "/metrics")) < 0) {
		zhd_log(ZHD_ERROR, "cannot set up limits: %s", strerror(-err));
		return -1;
	}
	if (apply_limits() < 0)
		return -1;
	mw = zh_limit_middleware(g_limit);
	if ((err = zh_server_use(srv, &mw)) < 0) {
		zhd_log(ZHD_ERROR, "cannot add the limits: %s", strerror(-err));
		return -1;
	}
	return 0;
}

/* After the server is freed and the SIGHUP helper stopped: nothing calls zh_limit_set. */
void zhd_limits_free(void)
{
	zh_limit_free(g_limit);
	g_limit = NULL;
}

/* log.c — zerohttpd's own messages: one line each on stderr, with an RFC 3339 timestamp
 * (UTC, milliseconds) and a level, so that journald, a container runtime or a file keeps
 * them sortable and filterable:
 *
 *   2026-12-07T03:10:10.123Z info zerohttpd: listening on http://127.0.0.1:8080/ ...
 *
 * The library prints nothing (its errors are return values), so these are the only lines.
 * Usage errors before the server starts are plain "zerohttpd: ..." lines, as for any
 * command-line tool.
 */
#include "zerohttpd.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void zhd_log(enum zhd_level level, const char *fmt, ...)
{
	static const char *const names[] = {"info", "warn", "error"};
	char line[1024];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int k;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
	k = snprintf(line + n, sizeof line - n, ".%03ldZ %s zerohttpd: ",
		     ts.tv_nsec / 1000000, names[level]);
	n += (size_t)(k > 0 ? k : 0);
	va_start(ap, fmt);
	k = vsnprintf(line + n, sizeof line - n, fmt, ap);
	va_end(ap);
	n = k < 0 ? n : n + (size_t)k >= sizeof line - 1 ? sizeof line - 2 : n + (size_t)k;
	line[n++] = '\n';
	/* stderr gone (closed terminal): nothing else could report it */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

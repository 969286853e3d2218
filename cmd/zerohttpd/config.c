/* config.c — `zerohttpd -c FILE`: the command line's options, one per line.
 *
 *   # a comment: a line whose first non-blank character is '#'
 *   port 8080
 *   gzip                            a switch: its name alone
 *   cors-origin https://a.example   a repeatable option: one line per value
 *
 * A key is a long flag's name without "--"; its value is the rest of the line, trimmed (so
 * a path may hold spaces). The same setters as the command line's parse the values
 * (options.c), so both accept exactly the same things. The command line wins: its flags are
 * applied after the file, and a repeatable flag given there replaces the file's whole list.
 *
 * The settings' strings point into the file's text, so every text read stays allocated
 * until zhd_config_free() at exit (one per SIGHUP that re-read the file: small, and a
 * reload is rare). SIGHUP builds a second settings from the file and argv, compares them
 * option by option with the ones in force, applies the changes that can be made while
 * serving (ZHD_OPT_RELOAD: the limits) and names the others, which need a restart.
 */
#include "zerohttpd.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { CONFIG_MAX_BYTES = 1 << 20 };

struct text {
	struct text *next;
	char bytes[];
};
static struct text *texts; /* every file read, newest first */

/* What SIGHUP needs to rebuild the settings: argv, and the settings in force. */
static int g_argc;
static char **g_argv;
static struct zhd_settings g_current, g_next;

/* The whole file, NUL-terminated, kept in texts; NULL with errno set. */
static char *read_text(const char *path)
{
	FILE *f = fopen(path, "re");
	struct text *t;
	size_t n;
	if (f == NULL)
		return NULL;
	t = malloc(sizeof *t + CONFIG_MAX_BYTES + 1);
	if (t == NULL) {
		fclose(f);
		errno = ENOMEM;
		return NULL;
	}
	n = fread(t->bytes, 1, CONFIG_MAX_BYTES + 1, f);
	if (ferror(f) || n > CONFIG_MAX_BYTES) {
		int e = ferror(f) ? EIO : EFBIG;
		fclose(f);
		free(t);
		errno = e;
		return NULL;
	}
	fclose(f);
	t->bytes[n] = '\0';
	t->next = texts;
	texts = t;
	return t->bytes;
}

void zhd_config_free(void)
{
	while (texts) {
		struct text *t = texts;
		texts = t->next;
		free(t);
	}
}

/* True if argv (as parsed into cli) set option o. */
static bool given(const struct zhd_settings *cli, const struct zhd_option *o)
{
	for (size_t i = 0; i < cli->n_applied; i++)
		if (cli->applied[i].opt == o)
			return true;
	return false;
}

/* One line, comment and blanks already cut: NULL, or why it is wrong (in why[]). */
static const char *config_line(struct zhd_settings *s, const struct zhd_settings *cli, char *key,
			       char *why, size_t cap)
{
	const struct zhd_option *o;
	char *value = key + strcspn(key, " \t");
	const char *bad;
	if (*value != '\0') {
		*value++ = '\0';
		value += strspn(value, " \t");
	} else {
		value = NULL;
	}
	o = zhd_option_find(key);
	if (o == NULL || (o->flags & ZHD_OPT_CLI_ONLY)) {
		snprintf(why, cap, "unknown key '%s'%s", key,
			 o ? " (a command-line flag only)" : "");
		return why;
	}
	if (o->arg == NULL && value != NULL) {
		snprintf(why, cap, "'%s' is a switch: it takes no value", key);
		return why;
	}
	if (o->arg != NULL && value == NULL) {
		snprintf(why, cap, "'%s' needs a value (%s)", key, o->arg);
		return why;
	}
	if ((o->flags & ZHD_OPT_REPEAT) && given(cli, o))
		return NULL; /* the command line's list replaces the file's */
	if ((bad = zhd_option_apply(s, o, value)) != NULL) {
		snprintf(why, cap, "bad value '%s' for %s: %s", value ? value : "", key, bad);
		return why;
	}
	return NULL;
}

/* The file's lines into *s: 0, or -1 with "zerohttpd: FILE:LINE: why" logged. */
static int config_read(const char *path, struct zhd_settings *s, const struct zhd_settings *cli,
		       bool to_stderr)
{
	char *text = read_text(path), *line, *next, why[256];
	unsigned n = 0;
	if (text == NULL) {
		snprintf(why, sizeof why, "cannot read the config file %s: %s", path,
			 strerror(errno));
		goto bad;
	}
	for (line = text; line != NULL; line = next) {
		char *key, *end;
		const char *err;
		n++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		for (end = line + strlen(line);
		     end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r');)
			*--end = '\0';
		key = line + strspn(line, " \t");
		if (*key == '\0' || *key == '#')
			continue;
		if ((err = config_line(s, cli, key, why + 128, sizeof why - 128)) != NULL) {
			snprintf(why, 128, "%s:%u: ", path, n);
			memmove(why + strlen(why), why + 128, strlen(why + 128) + 1);
			goto bad;
		}
	}
	return 0;
bad:
	if (to_stderr)
		fprintf(stderr, "zerohttpd: %s\n", why);
	else
		zhd_log(ZHD_ERROR, "%s", why);
	return -1;
}

/* The settings from the file named in argv (if any), then argv: -1 to go on, or an exit
 * status as zhd_settings_load's. */
static int build(int argc, char **argv, struct zhd_settings *s, bool to_stderr)
{
	static struct zhd_settings cli; /* argv alone: which options it gives */
	int r;
	zhd_settings_init(&cli);
	if ((r = zhd_parse_args(argc, argv, &cli)) >= 0)
		return r;
	zhd_settings_init(s);
	if (cli.config_file && config_read(cli.config_file, s, &cli, to_stderr) < 0)
		return 1;
	return zhd_parse_args(argc, argv, s); /* argv was good: -1 */
}

/* -t: what can be checked without serving: the root and the files the options name. */
static int check_files(const struct zhd_settings *s)
{
	const struct {
		const char *flag, *path;
	} files[] = {
		{"basic-auth", s->htpasswd_file},
		{"bearer-tokens", s->tokens_file},
		{"limits-file", s->limits_file},
	};
	struct stat st;
	errno = 0;
	if (stat(s->files.root, &st) < 0 || !S_ISDIR(st.st_mode)) {
		const char *why = errno ? strerror(errno) : "not a directory";
		fprintf(stderr, "zerohttpd: root %s: %s\n", s->files.root, why);
		return 1;
	}
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		if (files[i].path && access(files[i].path, R_OK) < 0) {
			fprintf(stderr, "zerohttpd: %s %s: %s\n", files[i].flag, files[i].path,
				strerror(errno));
			return 1;
		}
	if (s->limits_file && zhd_limits_check(s->limits_file) < 0)
		return 1;
	if (s->user && getpwnam(s->user) == NULL) {
		fprintf(stderr, "zerohttpd: no such user '%s'\n", s->user);
		return 1;
	}
	if (s->group && getgrnam(s->group) == NULL) {
		fprintf(stderr, "zerohttpd: no such group '%s'\n", s->group);
		return 1;
	}
	return 0;
}

int zhd_settings_load(int argc, char **argv, struct zhd_settings *s)
{
	int r = build(argc, argv, s, true);
	if (r >= 0)
		return r;
	if (s->auth_prefix && !s->htpasswd_file && !s->tokens_file) {
		fprintf(stderr, "zerohttpd: --auth-prefix needs --basic-auth or --bearer-tokens\n"
				"Try 'zerohttpd --help'.\n");
		return 2;
	}
	if (s->check_only) {
		if ((r = check_files(s)) == 0)
			printf("zerohttpd: the configuration%s%s is good\n",
			       s->config_file ? " in " : "", s->config_file ? s->config_file : "");
		return r;
	}
	g_argc = argc;
	g_argv = argv;
	g_current = *s;
	return -1;
}

/* The value option o has in s as text: the last one set, or every one for a list. */
static void effective(const struct zhd_settings *s, const struct zhd_option *o, char *out,
		      size_t cap)
{
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < s->n_applied; i++) {
		const struct zhd_applied *a = &s->applied[i];
		const char *v = a->value ? a->value : "(on)";
		if (a->opt != o)
			continue;
		if (!(o->flags & ZHD_OPT_REPEAT))
			n = 0;
		if (n < cap)
			n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "\n" : "", v);
	}
}

void zhd_config_reload(void)
{
	char before[1024], after[1024];
	bool rebase = false;
	if (g_current.config_file == NULL)
		return;
	if (build(g_argc, g_argv, &g_next, false) >= 0) {
		zhd_log(ZHD_WARN, "config %s not reloaded; the settings in force stay",
			g_current.config_file);
		return;
	}
	for (size_t i = 0; zhd_option_at(i) != NULL; i++) {
		const struct zhd_option *o = zhd_option_at(i);
		effective(&g_current, o, before, sizeof before);
		effective(&g_next, o, after, sizeof after);
		if (strcmp(before, after) == 0)
			continue;
		if (o->flags & ZHD_OPT_RELOAD)
			rebase = true;
		else
			zhd_log(ZHD_WARN, "config %s: '%s' changed; it takes effect after a restart",
				g_current.config_file, o->name);
	}
	if (rebase)
		zhd_limits_rebase(&g_next); /* applied by zhd_limits_reload(), next */
	/* What was not applied stays as it was: the next comparison is against the new file,
	 * so a change that needs a restart is named once. */
	g_current = g_next;
	zhd_log(ZHD_INFO, "config %s reloaded", g_current.config_file);
}

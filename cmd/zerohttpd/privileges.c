/* privileges.c — --user NAME and --group NAME: zerohttpd binds as the user that started it
 * (root may bind ports below 1024), then drops to NAME before anything else is opened or
 * served: the access log, credential files and served files are then opened with NAME's
 * rights, at start-up and on every reload alike. Started as root without --user, it
 * refuses to serve unless told to (--allow-root, or ZEROHTTPD_ALLOW_ROOT=1).
 *
 * The drop happens before any thread exists (zh_server_new starts none), in the order that
 * cannot be undone: supplementary groups, then the group, then the user; and it is checked
 * (setuid(0) must fail afterwards) rather than assumed.
 */
#include "zerohttpd.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* NAME or a number: 0 with *id set, or -1 (logged). */
static int lookup_user(const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;
	errno = 0;
	pw = getpwnam(name);
	if (pw == NULL) {
		zhd_log(ZHD_ERROR, "--user %s: %s", name, errno ? strerror(errno) : "no such user");
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

static int lookup_group(const char *name, gid_t *gid)
{
	struct group *gr;
	errno = 0;
	gr = getgrnam(name);
	if (gr == NULL) {
		zhd_log(ZHD_ERROR, "--group %s: %s", name, errno ? strerror(errno) : "no such group");
		return -1;
	}
	*gid = gr->gr_gid;
	return 0;
}

/* Root without --user: refused unless told (--allow-root, ZEROHTTPD_ALLOW_ROOT=1). A root
 * server's every bug is root's: a path traversal reads /etc/shadow, a parser overflow owns
 * the machine. */
static int refuse_root(const struct zhd_settings *s)
{
	const char *env = getenv("ZEROHTTPD_ALLOW_ROOT");
	if (geteuid() != 0 || s->allow_root || (env && strcmp(env, "1") == 0))
		return 0;
	zhd_log(ZHD_ERROR, "refusing to serve as root: --user NAME drops to NAME after binding "
			   "(systemd: DynamicUser=yes); --allow-root serves as root anyway");
	return -1;
}

int zhd_drop_privileges(const struct zhd_settings *s)
{
	uid_t uid;
	gid_t gid;
	if (s->user == NULL) {
		if (s->group != NULL) {
			zhd_log(ZHD_ERROR, "--group needs --user");
			return -1;
		}
		return refuse_root(s);
	}
	if (lookup_user(s->user, &uid, &gid) < 0 || (s->group && lookup_group(s->group, &gid) < 0))
		return -1;
	if (geteuid() != 0 && geteuid() != uid) {
		zhd_log(ZHD_ERROR, "--user %s: only root can change user", s->user);
		return -1;
	}
	if (geteuid() == 0 && (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)) {
		zhd_log(ZHD_ERROR, "cannot drop to --user %s: %s", s->user, strerror(errno));
		return -1;
	}
	if (uid != 0 && (setuid(0) == 0 || getuid() != uid || geteuid() != uid ||
			 getegid() != gid)) {
		zhd_log(ZHD_ERROR, "--user %s: the drop did not hold", s->user);
		return -1;
	}
	return 0;
}

/* test_router.c — src/router.c: patterns, precedence, path parameters, registration
 * errors, virtual hosts (on the router itself, through the lookup the server uses), then
 * over sockets: zh_req_param, 405 with Allow, and the application's error handler.
 */
#define ZH_TC_CONN
#include "zh_test_client.h"

#include "internal.h"

/* ---- the router alone ------------------------------------------------------------------- */

static zh__router_t R;

static void h_none(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)resp;
	(void)arg;
}

static void r_fini(void)
{
	zh__router_free(&R);
}

TestSuite(router, .fini = r_fini, .timeout = 20);

static int add(unsigned methods, const char *pattern, unsigned flags)
{
	return zh__router_add(&R, methods, pattern, flags, h_none, NULL);
}

/* The pattern that takes method at host/path ("" host: none), NULL if none; *allow. */
static zh__match_t M;
static const char *find_h(unsigned method, const char *host, const char *path, unsigned *allow)
{
	unsigned a;
	const zh__route_t *rt = zh__router_find(&R, host, strlen(host), path, strlen(path), method,
						 allow ? allow : &a, &M);
	return rt ? rt->path : NULL;
}
static const char *find(const char *path)
{
	return find_h(ZH_GET, "", path, NULL);
}

/* The i-th capture of the last lookup, as a string (raw, undecoded). */
static const char *cap_str(const char *path, unsigned i)
{
	static char buf[256];
	cr_assert_lt(i, M.n);
	snprintf(buf, sizeof buf, "%.*s", (int)M.p[i].len, path + M.p[i].off);
	return buf;
}

#define EXPECT_ROUTE(path, want)                                                             \
	do {                                                                                 \
		const char *got_ = find(path);                                               \
		cr_expect(got_ && strcmp(got_, want) == 0, "%s: got %s, want %s", path,      \
			  got_ ? got_ : "(none)", want);                                     \
	} while (0)

Test(router, most_specific_pattern_wins)
{
	static const char *const pats[] = {"/users/new", "/users/{id}", "/users/{rest...}",
					   "/users/{id}/posts", "/b/{x}/c", "/b/lit/d", "/{$}"};
	for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++)
		cr_assert_eq(add(ZH_GET, pats[i], 0), 0, "%s", pats[i]);
	cr_assert_eq(add(ZH_GET, "/", ZH_ROUTE_PREFIX), 0);
	cr_assert_eq(add(ZH_GET, "/api", ZH_ROUTE_PREFIX), 0);
	cr_assert_eq(add(ZH_GET, "/ap", ZH_ROUTE_PREFIX), 0);
	cr_assert_eq(add(ZH_GET, "/static/", ZH_ROUTE_PREFIX), 0);
	EXPECT_ROUTE("/users/new", "/users/new");
	EXPECT_ROUTE("/users/7", "/users/{id}");
	EXPECT_ROUTE("/users/7/posts", "/users/{id}/posts");
	EXPECT_ROUTE("/users/7/x", "/users/{rest...}");
	EXPECT_ROUTE("/users/new/posts", "/users/{id}/posts"); /* backtracks past "new" */
	EXPECT_ROUTE("/users/", "/users/{rest...}");	       /* {id} takes no empty segment */
	EXPECT_ROUTE("/users", "/");
	EXPECT_ROUTE("/", "/{$}");
	EXPECT_ROUTE("/apix/1", "/api");
	EXPECT_ROUTE("/api", "/api");
	EXPECT_ROUTE("/apb", "/ap");
	EXPECT_ROUTE("/a", "/");
	EXPECT_ROUTE("/b/lit/d", "/b/lit/d");
	EXPECT_ROUTE("/b/lit/c", "/b/{x}/c"); /* the literal branch dead-ends: backtrack */
	EXPECT_ROUTE("/static/", "/static/");
	EXPECT_ROUTE("/static/css/a.css", "/static/");
	EXPECT_ROUTE("/static", "/");
}

Test(router, captures_are_the_wildcards_in_order)
{
	const char *p = "/u/42/files/a/b%2Fc/";
	cr_assert_eq(add(ZH_GET, "/u/{id}/files/{path...}", 0), 0);
	cr_assert_eq(add(ZH_GET, "/v/{a}/{b}", 0), 0);
	cr_assert_eq(add(ZH_GET, "/old/", ZH_ROUTE_PREFIX), 0);
	EXPECT_ROUTE(p, "/u/{id}/files/{path...}");
	cr_assert_eq(M.n, 2);
	cr_expect_str_eq(cap_str(p, 0), "42");
	cr_expect_str_eq(cap_str(p, 1), "a/b%2Fc/");
	EXPECT_ROUTE("/u/42/files/", "/u/{id}/files/{path...}");
	cr_expect_str_eq(cap_str("/u/42/files/", 1), "");
	cr_expect_null(find("/u/42/files"));
	EXPECT_ROUTE("/v/x/y", "/v/{a}/{b}");
	cr_expect_str_eq(cap_str("/v/x/y", 0), "x");
	cr_expect_str_eq(cap_str("/v/x/y", 1), "y");
	cr_expect_null(find("/v/x/y/z"));
	cr_expect_null(find("/v/x/"));
	EXPECT_ROUTE("/old/x", "/old/");
	cr_expect_eq(M.n, 1); /* a prefix route's tail is an anonymous capture */
}

/* RFC 3986 §6.2.2: a triplet of an unreserved character is the character; hex case does
 * not count; other triplets are not their character ("%2F" is no '/'). */
Test(router, literals_match_equivalent_spellings)
{
	cr_assert_eq(add(ZH_GET, "/users/new", 0), 0);
	cr_assert_eq(add(ZH_GET, "/users/{id}", 0), 0);
	cr_assert_eq(add(ZH_GET, "/a%2fb", 0), 0);
	cr_assert_eq(add(ZH_GET, "/%7Etilde", 0), 0);
	EXPECT_ROUTE("/%75sers/new", "/users/new");
	EXPECT_ROUTE("/users/%6E%65%77", "/users/new");
	EXPECT_ROUTE("/users/%4e%65w", "/users/{id}"); /* "New": case of the letter counts */
	EXPECT_ROUTE("/a%2Fb", "/a%2fb");
	EXPECT_ROUTE("/a%2fb", "/a%2fb");
	EXPECT_ROUTE("/~tilde", "/%7Etilde");
	cr_expect_null(find("/a/b"));
	cr_expect_null(find("/users%2Fnew"));
	/* the same pattern spelled two ways is one pattern */
	cr_expect_eq(add(ZH_GET, "/%75sers/new", 0), -EEXIST);
	cr_expect_eq(add(ZH_GET, "/a%2Fb", 0), -EEXIST);
}

/* Go 1.22: the method is part of the pattern. Of the patterns that match the path, the most
 * specific one with the method wins; 405 only when none has it, with the methods of all
 * the patterns that match (the old router stopped at the most specific path). */
Test(router, the_most_specific_pattern_with_the_method_wins)
{
	unsigned allow = 0;
	cr_assert_eq(add(ZH_GET | ZH_POST, "/x/{id}", 0), 0);
	cr_assert_eq(add(ZH_DELETE, "/x/{other}", 0), 0); /* same pattern, another name */
	cr_assert_eq(add(ZH_PUT, "/", ZH_ROUTE_PREFIX), 0);
	cr_expect_str_eq(find_h(ZH_PUT, "", "/x/1", &allow), "/"); /* "/x/{id}" has no PUT */
	cr_expect_null(find_h(ZH_PATCH, "", "/x/1", &allow));
	cr_expect_eq(allow, ZH_GET | ZH_POST | ZH_DELETE | ZH_PUT, "%x", allow);
	cr_expect_str_eq(find_h(ZH_HEAD, "", "/x/1", &allow), "/x/{id}");
	cr_expect_str_eq(find_h(ZH_DELETE, "", "/x/1", &allow), "/x/{other}");
	cr_expect_null(find_h(ZH_GET, "", "/y", &allow));
	cr_expect_eq(allow, ZH_PUT);
	cr_expect_str_eq(find_h(ZH_PUT, "", "/y", &allow), "/");
	cr_expect_null(find_h(ZH_GET, "", "/x/1/2", &allow)); /* only "/" matches */
	cr_expect_eq(allow, ZH_PUT);
	/* HEAD of its own wins over the GET route */
	cr_assert_eq(add(ZH_HEAD, "/x/{h}", 0), 0);
	cr_expect_str_eq(find_h(ZH_HEAD, "", "/x/1", &allow), "/x/{h}");
	/* literal-only patterns (the whole-path table) fall back the same way */
	cr_assert_eq(add(ZH_POST, "/x/lit", 0), 0);
	cr_expect_str_eq(find_h(ZH_GET, "", "/x/lit", &allow), "/x/{id}");
	cr_expect_str_eq(find_h(ZH_POST, "", "/x/lit", &allow), "/x/lit");
	cr_expect_str_eq(find_h(ZH_PUT, "", "/x/lit", &allow), "/");
	cr_expect_null(find_h(ZH_PATCH, "", "/x/lit", &allow));
	cr_expect_eq(allow, ZH_GET | ZH_HEAD | ZH_POST | ZH_DELETE | ZH_PUT, "%x", allow);
}

/* Patterns that overlap with neither more specific conflict only when they share a method:
 * a GitHub-style API (bench/router/routes.txt has these pairs) registers, and each method
 * goes where Go sends it. */
Test(router, methods_part_overlapping_patterns)
{
	unsigned allow = 0;
	const char *p = "/repos/a/b/issues/comments/comments";
	cr_assert_eq(add(ZH_GET, "/repos/{owner}/{repo}/issues/{number}/comments", 0), 0);
	cr_assert_eq(add(ZH_POST, "/repos/{owner}/{repo}/issues/{number}/comments", 0), 0);
	cr_assert_eq(add(ZH_GET, "/repos/{owner}/{repo}/issues/comments", 0), 0);
	cr_assert_eq(add(ZH_PATCH, "/repos/{owner}/{repo}/issues/comments/{comment_id}", 0), 0);
	cr_expect_eq(add(ZH_GET | ZH_PUT, "/repos/{owner}/{repo}/issues/comments/{c}", 0), -EEXIST,
		     "GET overlaps the GET route with neither more specific");
	cr_expect_eq(add(ZH_PUT, "/repos/{owner}/{repo}/issues/comments/{c}", 0), 0);
	cr_expect_str_eq(find_h(ZH_GET, "", p, &allow),
			 "/repos/{owner}/{repo}/issues/{number}/comments");
	cr_expect_eq(M.n, 3);
	cr_expect_str_eq(cap_str(p, 2), "comments");
	cr_expect_str_eq(find_h(ZH_POST, "", p, &allow),
			 "/repos/{owner}/{repo}/issues/{number}/comments");
	cr_expect_str_eq(find_h(ZH_PATCH, "", p, &allow),
			 "/repos/{owner}/{repo}/issues/comments/{comment_id}");
	cr_expect_eq(M.n, 3);
	cr_expect_str_eq(cap_str(p, 0), "a");
	cr_expect_str_eq(cap_str(p, 2), "comments");
	cr_expect_str_eq(find_h(ZH_PUT, "", p, &allow),
			 "/repos/{owner}/{repo}/issues/comments/{c}");
	cr_expect_null(find_h(ZH_DELETE, "", p, &allow));
	cr_expect_eq(allow, ZH_GET | ZH_POST | ZH_PATCH | ZH_PUT, "%x", allow);
	cr_expect_eq(M.n, 0, "a miss leaves no captures");
	cr_expect_null(find_h(ZH_PATCH, "", "/repos/a/b/issues/7/comments", &allow));
	cr_expect_eq(allow, ZH_GET | ZH_POST);
	cr_expect_str_eq(find_h(ZH_GET, "", "/repos/a/b/issues/comments", &allow),
			 "/repos/{owner}/{repo}/issues/comments");
	/* the same for the pairs of the old conflict test, literals and tails */
	cr_assert_eq(add(ZH_GET, "/c/{a}/x", 0), 0);
	cr_expect_eq(add(ZH_GET, "/c/x/{b}", 0), -EEXIST);
	cr_expect_eq(add(ZH_POST, "/c/x/{b}", 0), 0);
	cr_expect_str_eq(find_h(ZH_GET, "", "/c/x/x", &allow), "/c/{a}/x");
	cr_expect_str_eq(find_h(ZH_POST, "", "/c/x/x", &allow), "/c/x/{b}");
	cr_assert_eq(add(ZH_GET, "/api", ZH_ROUTE_PREFIX), 0);
	cr_expect_eq(add(ZH_DELETE, "/{id}/{r...}", 0), 0);
	cr_expect_str_eq(find_h(ZH_DELETE, "", "/api/1", &allow), "/{id}/{r...}");
	cr_expect_str_eq(find_h(ZH_GET, "", "/api/1", &allow), "/api");
	cr_expect_str_eq(find_h(ZH_HEAD, "", "/api/1", &allow), "/api");
	cr_expect_null(find_h(ZH_POST, "", "/api/1", &allow));
	cr_expect_eq(allow, ZH_GET | ZH_DELETE);
}

/* A GET route answers HEAD (zerohttp's rule, and Go's): for HEAD, the most specific of the
 * patterns with HEAD or GET, the HEAD route first on one pattern. A GET and a HEAD route
 * that overlap with neither more specific conflict (a HEAD request would have two). */
Test(router, get_answers_head_where_get_goes)
{
	unsigned allow = 0;
	cr_assert_eq(add(ZH_GET | ZH_HEAD, "/", ZH_ROUTE_PREFIX), 0); /* a static root */
	cr_assert_eq(add(ZH_GET, "/users/{id}", 0), 0);		      /* Go refuses this pair */
	cr_expect_str_eq(find_h(ZH_HEAD, "", "/users/1", &allow), "/users/{id}");
	cr_expect_str_eq(find_h(ZH_HEAD, "", "/other", &allow), "/");
	cr_assert_eq(add(ZH_GET, "/a/{x}", 0), 0);
	cr_assert_eq(add(ZH_HEAD, "/a/b", 0), 0);
	cr_expect_str_eq(find_h(ZH_HEAD, "", "/a/b", &allow), "/a/b");
	cr_expect_str_eq(find_h(ZH_HEAD, "", "/a/c", &allow), "/a/{x}");
	cr_expect_str_eq(find_h(ZH_GET, "", "/a/b", &allow), "/a/{x}");
	cr_expect_eq(add(ZH_HEAD, "/{y}/q", 0), -EEXIST); /* "/a/q": "/a/{x}" is GET */
	cr_assert_eq(add(ZH_HEAD, "/k/{x}/z", 0), 0);
	cr_expect_eq(add(ZH_GET, "/k/w/{y}", 0), -EEXIST); /* "/k/w/z" */
	cr_expect_eq(add(ZH_POST, "/k/w/{y}", 0), 0);
	cr_expect_str_eq(find_h(ZH_HEAD, "", "/k/w/z", &allow), "/k/{x}/z");
	cr_assert_eq(add(ZH_HEAD, "/h/{x}", 0), 0);
	cr_assert_eq(add(ZH_GET, "/h/{y}", 0), 0); /* one pattern: HEAD's route, GET's route */
	cr_expect_str_eq(find_h(ZH_HEAD, "", "/h/1", &allow), "/h/{x}");
	cr_expect_str_eq(find_h(ZH_GET, "", "/h/1", &allow), "/h/{y}");
	cr_expect_null(find_h(ZH_PUT, "", "/h/1", &allow));
	cr_expect_eq(allow, ZH_GET | ZH_HEAD);
}

Test(router, registration_errors)
{
	static const char *const malformed[] = {
		"", "x", "/{", "/{}", "/{x", "/x}", "/{x}y", "/y{x}", "/{1x}", "/{x-y}",
		"/{x}/{x}", "/{x}/{x...}", "/{x...}/y", "/{$}/y", "/a{$}", "/{...}", "/a b",
		"/a?b", "/a#b", "/a%zz", "/a%4", "/a\"b", "/a\x01", "exa mple.com/", "h:80/x",
		"h_x/"};
	char many[512] = "/w";
	size_t n = 2;
	for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++)
		cr_expect_eq(add(ZH_GET, malformed[i], 0), -EINVAL, "\"%s\"", malformed[i]);
	cr_expect_eq(add(ZH_GET, "/{x}", ZH_ROUTE_PREFIX), -EINVAL);
	cr_expect_eq(add(ZH_GET, "/a/{x...}", ZH_ROUTE_PREFIX), -EINVAL);
	cr_expect_eq(add(ZH_GET, "/a/{$}", ZH_ROUTE_PREFIX), -EINVAL);
	cr_expect_eq(add(0, "/a", 0), -EINVAL);
	cr_expect_eq(zh__router_add(&R, ZH_GET, "/a", 0, NULL, NULL), -EINVAL);
	/* 16 wildcards are allowed, 17 are not */
	for (int i = 0; i < 16; i++)
		n += (size_t)snprintf(many + n, sizeof many - n, "/{p%d}", i);
	cr_expect_eq(add(ZH_GET, many, 0), 0);
	snprintf(many + n, sizeof many - n, "/{p16}");
	cr_expect_eq(add(ZH_GET, many, 0), -EINVAL);
	/* nothing malformed was registered as a literal */
	cr_expect_null(find("/{"));
	cr_expect_null(find("/{x}y"));

	/* repeats and conflicts */
	cr_assert_eq(add(ZH_GET, "/dup", 0), 0);
	cr_expect_eq(add(ZH_GET, "/dup", 0), -EEXIST);
	cr_expect_eq(add(ZH_GET | ZH_PUT, "/dup", 0), -EEXIST); /* GET again */
	cr_expect_eq(add(ZH_POST, "/dup", 0), 0);
	cr_assert_eq(add(ZH_GET, "/u/{id}", 0), 0);
	cr_expect_eq(add(ZH_GET, "/u/{uid}", 0), -EEXIST);
	cr_expect_eq(add(ZH_POST, "/u/{uid}", 0), 0);
	cr_expect_eq(add(ZH_GET, "/u/x", 0), 0);		  /* a strict subset of "/u/{id}" */
	cr_expect_eq(add(ZH_GET, "/{a}/x", 0), -EEXIST);  /* both take "/u/x" */
	cr_assert_eq(add(ZH_GET, "/c/{a}/x", 0), 0);
	cr_expect_eq(add(ZH_GET, "/c/x/{b}", 0), -EEXIST); /* both take "/c/x/x" */
	cr_expect_eq(add(ZH_PUT, "/c/x/{b}", 0), 0);	    /* no method in common */
	cr_expect_eq(add(ZH_PUT | ZH_GET, "/c/q/{b}", 0), -EEXIST); /* GET in common */
	cr_expect_eq(add(ZH_GET, "/c/y/x", 0), 0);	    /* a strict subset: no conflict */
	cr_assert_eq(add(ZH_GET, "/api", ZH_ROUTE_PREFIX), 0);
	cr_expect_eq(add(ZH_GET, "/{id}", 0), -EEXIST);	  /* both take "/api" */
	cr_expect_eq(add(ZH_GET, "/{id}/{r...}", 0), -EEXIST); /* both take "/api/1" */
	cr_expect_eq(add(ZH_GET, "/api/{r...}", 0), 0);	  /* inside the prefix */
	cr_expect_eq(add(ZH_GET, "/api", ZH_ROUTE_PREFIX), -EEXIST);
	cr_expect_eq(add(ZH_GET, "/ap", ZH_ROUTE_PREFIX), 0);
	cr_expect_eq(add(ZH_GET, "/z/{a}/{b...}", 0), 0);
	cr_expect_eq(add(ZH_GET, "/z/{a...}", 0), 0);
	cr_expect_eq(add(ZH_GET, "/z/q/{c}", 0), 0);
	cr_expect_eq(add(ZH_GET, "/z/{d}/w", 0), -EEXIST); /* "/z/q/w" */
	cr_expect_eq(add(ZH_GET, "/{$}", 0), 0);
	cr_expect_eq(add(ZH_GET, "/", 0), -EEXIST);	     /* "/{$}" is "/" */
	cr_expect_eq(add(ZH_GET, "/y/{$}", 0), 0);
	cr_expect_eq(add(ZH_GET, "/y/", 0), -EEXIST);
	/* hosts: never in conflict with host-less patterns, nor with other hosts */
	cr_expect_eq(add(ZH_GET, "h.example/x/{b}", 0), 0);
	cr_expect_eq(add(ZH_GET, "g.example/x/{b}", 0), 0);
	cr_expect_eq(add(ZH_GET, "H.EXAMPLE/x/{c}", 0), -EEXIST);
}

Test(router, thousands_of_routes)
{
	char p[64], q[64];
	for (int i = 0; i < 3000; i++) {
		snprintf(p, sizeof p, "/r%d/%s/{id}/s%d", i % 97, i % 2 ? "a" : "b", i);
		cr_assert_eq(add(ZH_GET, p, 0), 0, "%s", p);
	}
	for (int i = 0; i < 3000; i++) {
		snprintf(p, sizeof p, "/r%d/%s/{id}/s%d", i % 97, i % 2 ? "a" : "b", i);
		snprintf(q, sizeof q, "/r%d/%s/%d/s%d", i % 97, i % 2 ? "a" : "b", i * 7, i);
		EXPECT_ROUTE(q, p);
	}
	cr_expect_null(find("/r1/a/1/s2"));
}

/* A file of the repository: __FILE__ is tests/test_router.c, relative to the directory
 * make runs the tests from (the repository's) or absolute. */
static FILE *repo_open(const char *rel)
{
	char path[4096];
	const char *f = __FILE__, *t = strstr(f, "tests/test_router.c");
	snprintf(path, sizeof path, "%.*s%s", (int)(t ? t - f : 0), f, rel);
	return fopen(path, "r");
}

static unsigned method_named(const char *s)
{
	static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS",
					    "PATCH", "TRACE"};
	for (unsigned i = 0; i < 8; i++)
		if (strcmp(s, names[i]) == 0)
			return 1u << i;
	return 0;
}

/* Splits "METHOD REST\n" in place: the method's bit, *rest. 0 if malformed. */
static unsigned split_line(char *line, char **rest)
{
	char *sp = strchr(line, ' ');
	line[strcspn(line, "\r\n")] = '\0';
	if (sp == NULL)
		return 0;
	*sp = '\0';
	*rest = sp + 1;
	return method_named(line);
}

/* The benchmark's table (bench/router/: 1,000 routes in the style of a REST and a GitHub-
 * like API, 5,000 lookups) against Go 1.22's answers in lookups.expect, which
 * mux_bench_test.go checks ServeMux gives: every route registers, and every lookup goes
 * to the same route, or is a 404 or a 405 alike. */
Test(router, the_bench_table_agrees_with_go_servemux)
{
	FILE *rf = repo_open("bench/router/routes.txt"), *lf = repo_open("bench/router/lookups.txt"),
	     *ef = repo_open("bench/router/lookups.expect");
	char line[4096], want[64], *rest;
	unsigned no = 0, n = 0, agree = 0;
	cr_assert(rf && lf && ef, "bench/router/ table not found from %s", __FILE__);
	while (fgets(line, sizeof line, rf)) {
		unsigned m = split_line(line, &rest);
		no++;
		cr_assert_neq(m, 0, "routes.txt:%u", no);
		cr_assert_eq(add(m, rest, 0), 0, "routes.txt:%u %s refused", no, rest);
	}
	cr_assert_eq(R.nroutes, 1000);
	while (fgets(line, sizeof line, lf)) {
		unsigned m = split_line(line, &rest), allow = 0, route = 0;
		int status = 0;
		const char *got;
		n++;
		cr_assert(m && fgets(want, sizeof want, ef), "lookups.txt:%u", n);
		cr_assert_geq(sscanf(want, "%d %u", &status, &route), 1, "lookups.expect:%u", n);
		got = find_h(m, "", rest, &allow);
		if (status == 200)
			cr_assert(route >= 1 && route <= R.nroutes, "lookups.expect:%u", n);
		if (status == 200 ? got == R.routes[route - 1].path
				  : got == NULL && (allow != 0) == (status == 405))
			agree++;
		else
			cr_expect_fail("lookups.txt:%u %s: got %s (allow %x), Go: %s", n, rest,
				       got ? got : "none", allow,
				       status == 200 ? R.routes[route - 1].path : want);
	}
	cr_expect_eq(n, 5000);
	cr_expect_eq(agree, n, "%u of %u lookups agree", agree, n);
	fclose(rf);
	fclose(lf);
	fclose(ef);
}

Test(router, host_patterns_win_for_their_host)
{
	unsigned allow = 0;
	cr_assert_eq(add(ZH_GET, "/", ZH_ROUTE_PREFIX), 0);
	cr_assert_eq(add(ZH_GET, "/users/{id}", 0), 0);
	cr_assert_eq(add(ZH_GET, "Example.com/", ZH_ROUTE_PREFIX), 0);
	cr_assert_eq(add(ZH_POST, "api.example.com/users/{id}", 0), 0);
	cr_expect_str_eq(find_h(ZH_GET, "example.com", "/users/1", NULL), "Example.com/");
	cr_expect_str_eq(find_h(ZH_GET, "EXAMPLE.COM:8080", "/x", NULL), "Example.com/");
	cr_expect_str_eq(find_h(ZH_GET, "example.com.", "/x", NULL), "Example.com/");
	cr_expect_str_eq(find_h(ZH_GET, "other.com", "/users/1", NULL), "/users/{id}");
	cr_expect_str_eq(find_h(ZH_GET, "", "/users/1", NULL), "/users/{id}");
	cr_expect_str_eq(find_h(ZH_GET, "[::1]:80", "/users/1", NULL), "/users/{id}");
	cr_expect_str_eq(find_h(ZH_GET, "api.example.com", "/x", NULL), "/"); /* falls back */
	cr_expect_str_eq(find_h(ZH_POST, "api.example.com", "/users/2", NULL),
			 "api.example.com/users/{id}");
	/* the host's pattern matches the path without the method: the host-less ones are
	 * tried (Go's order); 405 lists the methods of both */
	cr_expect_str_eq(find_h(ZH_GET, "api.example.com", "/users/2", &allow), "/users/{id}");
	cr_expect_null(find_h(ZH_DELETE, "api.example.com", "/users/2", &allow));
	cr_expect_eq(allow, ZH_POST | ZH_GET, "%x", allow);
	cr_expect_null(find_h(ZH_DELETE, "other.example", "/users/2", &allow));
	cr_expect_eq(allow, ZH_GET, "%x", allow);
	cr_expect_str_eq(find_h(ZH_GET, "example.com.evil", "/users/1", NULL), "/users/{id}");
}

/* ---- over sockets ---------------------------------------------------------------------------- */

static zh_server_t *srv;
static pthread_t runner;
static int err_mode;	   /* what the error handler does, see h_error */
static int err_calls;	   /* how often it ran */
static int err_refusals;   /* its suspension calls refused with -EINVAL */

/* Echoes route, params and their presence: "route|id|path|missing?" */
static void h_echo(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char out[512];
	zh_slice_t id = {"-", 1}, path = {"-", 1}, none;
	const char *route = zh_req_route(req);
	int n;
	(void)arg;
	(void)zh_req_param(req, "id", &id);
	(void)zh_req_param(req, "path", &path);
	n = snprintf(out, sizeof out, "%s|%.*s|%.*s|%d", route ? route : "(null)", (int)id.len,
		     id.ptr, (int)path.len, path.ptr, zh_req_param(req, "nope", &none));
	(void)zh_reply(resp, 200, "text/plain", out, (size_t)n);
}

/* The decoded {id} by reference: it must live until the response has left. */
static void h_ref(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t id;
	(void)arg;
	if (zh_req_param(req, "id", &id))
		(void)zh_write_ref(resp, id.ptr, id.len, NULL, NULL);
}

static int p_never(zh_response_t *resp, void *arg)
{
	(void)resp;
	(void)arg;
	return 0;
}

enum { E_JSON, E_NOTHING, E_TWICE, E_OTHER_STATUS, E_KEEPALIVE, E_SUSPEND, E_BIG,
       E_UNFINISHED };

static void h_error(zh_request_t *req, zh_response_t *resp, int status, void *arg)
{
	static zh_deferred_t token;
	char body[256];
	int n;
	(void)arg;
	err_calls++;
	n = snprintf(body, sizeof body, "{\"error\":%d,\"parsed\":%d,\"route\":\"%s\"}", status,
		     zh_req_parsed(req), zh_req_route(req) ? zh_req_route(req) : "");
	switch (err_mode) {
	case E_JSON:
		(void)zh_reply(resp, status, "application/json", body, (size_t)n);
		break;
	case E_NOTHING:
		break;
	case E_TWICE:
		(void)zh_reply(resp, status, "application/json", body, (size_t)n);
		(void)zh_reply(resp, status, "application/json", body, (size_t)n);
		(void)zh_write(resp, "\n", 1);
		break;
	case E_OTHER_STATUS:
		(void)zh_reply(resp, 200, "application/json", body, (size_t)n);
		break;
	case E_KEEPALIVE:
		(void)zh_resp_header_set(resp, "Content-Type", "application/json");
		(void)zh_resp_header_set(resp, "Connection", "keep-alive");
		(void)zh_write(resp, body, (size_t)n);
		break;
	case E_SUSPEND:
		err_refusals += zh_resp_defer(resp, &token) == -EINVAL;
		err_refusals += zh_resp_produce(resp, p_never, NULL) == -EINVAL;
		(void)zh_resp_header_set(resp, "Content-Type", "application/json");
		(void)zh_write(resp, body, (size_t)n);
		break;
	case E_UNFINISHED: { /* a JSON document left open: a broken answer */
		zh_json_t *j = zh_json_begin(resp, 0);
		zh_json_obj(j);
		zh_json_key(j, "error", 5);
		zh_json_i64(j, status);
		break;
	}
	case E_BIG: {
		/* more than the send area: the head leaves early, chunked */
		static char big[100000];
		memset(big, 'x', sizeof big);
		(void)zh_resp_header_set(resp, "Content-Type", "application/octet-stream");
		(void)zh_write(resp, big, sizeof big);
		break;
	}
	}
}

static void s_init(void)
{
	zh_config_t cfg;
	int err = 0;
	zh_tc_config(&cfg);
	cfg.max_body = 1024;
	cfg.max_headers = 10;
	err_mode = E_JSON;
	err_calls = err_refusals = 0;
	srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/users/{id}", 0, h_echo, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/users/new", 0, h_echo, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET | ZH_POST, "/files/{id}/{path...}", 0, h_echo,
				     NULL),
		     0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "v.example/users/{id}", 0, h_echo, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_POST, "/up", 0, h_echo, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/ref/{id}", 0, h_ref, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/{x}/{$", 0, h_echo, NULL), -EINVAL);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/{x}/new", 0, h_echo, NULL), -EEXIST);
	/* other methods: no conflict (Go 1.22), see methods_choose_among_matching_patterns */
	cr_assert_eq(zh_server_route(srv, ZH_PATCH, "/{x}/new", 0, h_echo, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_DELETE, "/users/{rest...}", 0, h_echo, NULL), 0);
	cr_assert_eq(zh_server_set_error_handler(srv, h_error, NULL), 0);
	cr_assert_eq(pthread_create(&runner, NULL, zh_tc_run, srv), 0);
}

static void s_fini(void)
{
	zh_server_stop(srv);
	pthread_join(runner, NULL);
	cr_expect_eq(zh_server_route(srv, ZH_GET, "/late", 0, h_echo, NULL), 0,
		     "after run returned, registration works again");
	zh_server_free(srv);
	free_owned();
}

TestSuite(served, .init = s_init, .fini = s_fini, .timeout = 30);

static uint16_t port(void)
{
	return zh_server_port(srv);
}

static void send_str(conn_t *c, const char *s)
{
	send_all(c, s, strlen(s));
}

/* Sends raw on a connection of its own; the first response in *r. */
static void exchange(conn_t *c, const char *raw, resp_t *r)
{
	zh_tc_dial(c, port(), 5, 0);
	send_all(c, raw, strlen(raw));
	read_response(c, r, false);
}

Test(served, params_are_decoded_and_route_is_the_pattern)
{
	resp_t r;
	zh_tc_get(port(), "/users/42", NULL, &r);
	cr_expect_str_eq((char *)r.body, "/users/{id}|42|-|0");
	zh_tc_get(port(), "/users/new", NULL, &r);
	cr_expect_str_eq((char *)r.body, "/users/new|-|-|0");
	zh_tc_get(port(), "/users/a%20b%2Fc", NULL, &r);
	cr_expect_str_eq((char *)r.body, "/users/{id}|a b/c|-|0");
	zh_tc_get(port(), "/files/%41/a%2Fb/c%20d/", NULL, &r);
	cr_expect_str_eq((char *)r.body, "/files/{id}/{path...}|A|a/b/c d/|0");
	zh_tc_get(port(), "/files/7/", NULL, &r);
	cr_expect_str_eq((char *)r.body, "/files/{id}/{path...}|7||0");
	resp_free(&r);
	/* a malformed triplet stays as sent (the parser lets it through or refuses it) */
	zh_tc_get(port(), "/users/%zz", NULL, &r);
	cr_expect(r.status == 400 || strcmp((char *)r.body, "/users/{id}|%zz|-|0") == 0,
		  "%d %s", r.status, r.body);
}

/* Pipelined requests answered in one writev: the first one's decoded parameter, queued by
 * reference, is not overwritten by the second one's. */
Test(served, decoded_params_live_until_the_response_has_left)
{
	resp_t r;
	conn_t c;
	char req[4096];
	size_t n = 0;
	zh_tc_dial(&c, port(), 5, 0);
	for (int i = 0; i < 20; i++)
		n += (size_t)snprintf(req + n, sizeof req - n,
				      "GET /ref/%%41%d%%20%c HTTP/1.1\r\nHost: t\r\n\r\n", i,
				      'a' + i);
	send_all(&c, req, n);
	for (int i = 0; i < 20; i++) {
		char want[32];
		snprintf(want, sizeof want, "A%d %c", i, 'a' + i);
		read_response(&c, &r, false);
		cr_expect_str_eq((char *)r.body, want);
	}
	hang_up(&c);
}

Test(served, host_routes_over_the_wire)
{
	resp_t r;
	{
		conn_t c;
		exchange(&c, "GET /users/1 HTTP/1.1\r\nHost: V.Example:8080\r\n"
			     "Connection: close\r\n\r\n", &r);
		cr_expect_str_eq((char *)r.body, "v.example/users/{id}|1|-|0");
		hang_up(&c);
		exchange(&c, "GET /users/1 HTTP/1.1\r\nHost: w.example\r\n"
			     "Connection: close\r\n\r\n", &r);
		cr_expect_str_eq((char *)r.body, "/users/{id}|1|-|0");
		hang_up(&c);
	}
}

Test(served, not_found_and_method_not_allowed_answer_json)
{
	resp_t r;
	char v[128];
	conn_t c;
	zh_tc_dial(&c, port(), 5, 0);
	send_str(&c, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(&c, &r, false);
	cr_expect_eq(r.status, 404);
	cr_expect(field(&r, "Content-Type", v, sizeof v) == 1 && !strcmp(v, "application/json"));
	cr_expect_str_eq((char *)r.body, "{\"error\":404,\"parsed\":1,\"route\":\"\"}");
	/* the connection stays usable: 404 and 405 leave the framing sound */
	send_str(&c, "DELETE /files/1/x HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(&c, &r, false);
	cr_expect_eq(r.status, 405);
	cr_expect(field(&r, "Allow", v, sizeof v) == 1);
	cr_expect_str_eq(v, "GET, HEAD, POST, OPTIONS");
	cr_expect_str_eq((char *)r.body, "{\"error\":405,\"parsed\":1,\"route\":\"\"}");
	send_str(&c, "GET /users/9 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	read_response(&c, &r, false);
	cr_expect_eq(r.status, 200);
	expect_eof(&c);
	hang_up(&c);
	cr_expect_eq(err_calls, 2);
}

/* Over the wire, Go 1.22's rule: the most specific pattern that has the method, whatever
 * less specific or overlapping pattern another method has; 405 lists them all. */
Test(served, methods_choose_among_matching_patterns)
{
	resp_t r;
	char v[128];
	conn_t c;
	zh_tc_dial(&c, port(), 5, 0);
	send_str(&c, "PATCH /users/new HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
	read_response(&c, &r, false);
	cr_expect_eq(r.status, 200);
	cr_expect_str_eq((char *)r.body, "/{x}/new|-|-|0");
	send_str(&c, "GET /users/new HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(&c, &r, false);
	cr_expect_str_eq((char *)r.body, "/users/new|-|-|0");
	send_str(&c, "DELETE /users/new HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(&c, &r, false);
	cr_expect_eq(r.status, 200);
	cr_expect_str_eq((char *)r.body, "/users/{rest...}|-|-|0");
	send_str(&c, "PUT /users/new HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
	read_response(&c, &r, false);
	cr_expect_eq(r.status, 405);
	cr_expect(field(&r, "Allow", v, sizeof v) == 1);
	cr_expect_str_eq(v, "GET, HEAD, DELETE, OPTIONS, PATCH");
	cr_expect_str_eq((char *)r.body, "{\"error\":405,\"parsed\":1,\"route\":\"\"}");
	send_str(&c, "HEAD /users/7 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	read_response(&c, &r, true);
	cr_expect_eq(r.status, 200, "HEAD goes where GET goes, not to DELETE's tail");
	expect_eof(&c);
	hang_up(&c);
}

Test(served, too_large_and_header_errors_answer_json_and_close)
{
	resp_t r;
	conn_t c;
	char v[64];
	/* 413: the route is known (zh_req_route works), the body is not read: close */
	exchange(&c, "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", &r);
	cr_expect_eq(r.status, 413);
	cr_expect_str_eq((char *)r.body, "{\"error\":413,\"parsed\":1,\"route\":\"/up\"}");
	cr_expect(field(&r, "Connection", v, sizeof v) == 1 && !strcmp(v, "close"));
	expect_eof(&c);
	hang_up(&c);
	/* 431: more than max_headers fields; no request view */
	{
		char req[1024];
		size_t n = (size_t)snprintf(req, sizeof req, "GET /users/1 HTTP/1.1\r\nHost: t\r\n");
		for (int i = 0; i < 12; i++)
			n += (size_t)snprintf(req + n, sizeof req - n, "X-H%d: v\r\n", i);
		snprintf(req + n, sizeof req - n, "\r\n");
		exchange(&c, req, &r);
	}
	cr_expect_eq(r.status, 431);
	cr_expect_str_eq((char *)r.body, "{\"error\":431,\"parsed\":0,\"route\":\"\"}");
	expect_eof(&c);
	hang_up(&c);
	/* 400 for a head the parser refuses; what follows is never read as a request */
	exchange(&c, "GET /users/1 HTTP/1.1\r\nHost: t\r\nBad Field: x\r\n\r\n"
		     "GET /users/2 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
	cr_expect_eq(r.status, 400);
	cr_expect_str_eq((char *)r.body, "{\"error\":400,\"parsed\":0,\"route\":\"\"}");
	expect_eof(&c);
	hang_up(&c);
}

/* A handler that writes nothing, or another status, gets the library's answer. */
Test(served, an_error_handler_that_answers_nothing_or_wrongly_is_replaced)
{
	resp_t r;
	char v[64];
	err_mode = E_NOTHING;
	zh_tc_get(port(), "/nope", NULL, &r);
	cr_expect_eq(r.status, 404);
	cr_expect_str_eq((char *)r.body, "Not Found\n");
	err_mode = E_OTHER_STATUS;
	zh_tc_get(port(), "/nope", NULL, &r);
	cr_expect_eq(r.status, 404);
	cr_expect_str_eq((char *)r.body, "Not Found\n");
	cr_expect(field(&r, "Content-Type", v, sizeof v) == 1);
	cr_expect_str_eq(v, "text/plain; charset=utf-8");
	err_mode = E_UNFINISHED; /* the 404 stays a 404, not the 500 of a broken document */
	zh_tc_get(port(), "/nope", NULL, &r);
	cr_expect_eq(r.status, 404);
	cr_expect_str_eq((char *)r.body, "Not Found\n");
	cr_expect_eq(err_calls, 3);
}

/* Writing twice, trying to keep the connection after a framing error, suspending, or
 * writing more than the send area: each response stays framed and the stream sound. */
Test(served, a_misbehaving_error_handler_cannot_corrupt_the_stream)
{
	resp_t r;
	conn_t c;
	char v[64];
	err_mode = E_TWICE; /* the second zh_reply is refused; the write goes on the first */
	zh_tc_dial(&c, port(), 5, 0);
	send_str(&c, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /users/3 HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(&c, &r, false);
	cr_expect_eq(r.status, 404);
	cr_expect_str_eq((char *)r.body, "{\"error\":404,\"parsed\":1,\"route\":\"\"}\n");
	read_response(&c, &r, false);
	cr_expect_eq(r.status, 200);
	cr_expect_str_eq((char *)r.body, "/users/{id}|3|-|0");
	hang_up(&c);

	/* Connection: keep-alive is refused (a failed response: the library's answer), and
	 * a 413 with its body unread closes whatever the handler does */
	err_mode = E_KEEPALIVE;
	exchange(&c, "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", &r);
	cr_expect_eq(r.status, 413);
	cr_expect(field(&r, "Connection", v, sizeof v) == 1 && !strcmp(v, "close"));
	cr_expect_str_eq((char *)r.body, "Content Too Large\n");
	expect_eof(&c);
	hang_up(&c);

	/* a 404 of a parsed request: deferring or producing would leave it open */
	err_mode = E_SUSPEND;
	zh_tc_dial(&c, port(), 5, 0);
	send_str(&c, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /users/5 HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(&c, &r, false);
	cr_expect_eq(r.status, 404);
	cr_expect_str_eq((char *)r.body, "{\"error\":404,\"parsed\":1,\"route\":\"\"}");
	read_response(&c, &r, false);
	cr_expect_str_eq((char *)r.body, "/users/{id}|5|-|0");
	hang_up(&c);
	cr_expect_eq(err_refusals, 2);

	err_mode = E_BIG; /* chunked, then the connection goes on */
	zh_tc_dial(&c, port(), 5, 0);
	send_str(&c, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /users/4 HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(&c, &r, false);
	cr_expect_eq(r.status, 404);
	cr_expect_eq(r.body_len, 100000u);
	read_response(&c, &r, false);
	cr_expect_str_eq((char *)r.body, "/users/{id}|4|-|0");
	hang_up(&c);
}

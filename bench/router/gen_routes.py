#!/usr/bin/env python3
"""Write the router benchmark's table: routes.txt, lookups.txt and lookups.expect.

Deterministic (a fixed seed and Python's standard library only), so the committed files
can be checked with `gen_routes.py --check` and both benchmarks, zerohttp's
(bench/router_lookup.c) and Go's ServeMux (mux_bench_test.go), read exactly the same
table.

routes.txt     1,000 lines `METHOD PATTERN` in the style of Go 1.22's ServeMux patterns:
               literal segments, `{name}` for one segment, `{name...}` for the rest of the
               path (only as the last segment). Every line has exactly one method; no pattern
               ends in `/` and none uses `{$}` or a host, so the subtree and trailing-slash
               rules of ServeMux never come into play. No two routes conflict under Go 1.22's
               rule (same method, some path matched by both, neither more specific).
lookups.txt    5,000 lines `METHOD PATH`: clean paths (no `.`/`..`, `//`, trailing `/` or
               percent-escapes), every route hit at least once, about 5 % paths that no
               route matches (404) and about 5 % paths that match only with another method
               (405). No GET lookup ever meets a HEAD route and no HEAD lookup is made, so the
               "GET also matches HEAD" rule does not matter either.
lookups.expect one line per lookup, same order: `200 N` (N = the 1-based line in routes.txt of
               the most specific matching route), `404` or `405`. Computed here by an
               independent matcher; the Go test checks ServeMux agrees with it line by line.

Usage: gen_routes.py [--out DIR] [--check]   (DIR defaults to this script's directory;
--check writes to a temporary directory and fails if the committed files differ).
"""
import argparse
import filecmp
import os
import random
import sys
import tempfile

SEED = 13  # issue 13
N_ROUTES = 1000
N_LOOKUPS = 5000
MISS_SHARE = 0.05      # 404
MISMATCH_SHARE = 0.05  # 405

RESOURCES = [
    "users", "orders", "products", "invoices", "customers", "accounts", "projects",
    "teams", "tickets", "comments", "payments", "shipments", "warehouses", "suppliers",
    "categories", "reviews", "carts", "coupons", "events", "reports",
]
SUBRESOURCES = [
    "items", "notes", "history", "tags", "members", "attachments", "settings", "labels",
    "links", "audits",
]
STATIC_WORDS = [
    "about", "pricing", "contact", "careers", "press", "legal", "privacy", "terms",
    "security", "status", "blog", "help", "guides", "partners", "customers", "features",
    "enterprise", "download", "changelog", "community",
]
STATIC_SUB = [
    "overview", "faq", "team", "history", "jobs", "europe", "americas", "asia", "archive",
    "latest", "install", "upgrade", "billing", "accounts", "api", "cli", "sdk", "webhooks",
    "limits", "regions",
]

LIT, ONE, REST = 0, 1, 2  # segment kinds


def parse_pattern(pattern):
    """`/a/{id}/{p...}` -> [(LIT,'a'), (ONE,'id'), (REST,'p')]."""
    assert pattern.startswith("/") and not pattern.endswith("/"), pattern
    segs = []
    parts = pattern[1:].split("/")
    for i, part in enumerate(parts):
        if part.startswith("{") and part.endswith("...}"):
            assert i == len(parts) - 1, pattern
            segs.append((REST, part[1:-4]))
        elif part.startswith("{") and part.endswith("}"):
            segs.append((ONE, part[1:-1]))
        else:
            assert part and "{" not in part and "}" not in part, pattern
            segs.append((LIT, part))
    names = [v for k, v in segs if k != LIT]
    assert len(names) == len(set(names)), pattern  # ServeMux refuses duplicate names
    return segs


def covers(b, a):
    """True if every path that pattern a matches is also matched by pattern b."""
    for i in range(len(a) + 1):
        if i == len(a):
            return i == len(b)
        if i < len(b) and b[i][0] == REST:
            return True
        if a[i][0] == REST or i == len(b):
            return False
        if b[i][0] == ONE:
            continue
        if a[i][0] != LIT or a[i][1] != b[i][1]:
            return False
    return False


def overlap(a, b):
    """True if some path is matched by both patterns."""
    for i in range(max(len(a), len(b)) + 1):
        if i == len(a) or i == len(b):
            return len(a) == len(b)
        if a[i][0] == REST or b[i][0] == REST:
            return True
        if a[i][0] == LIT and b[i][0] == LIT and a[i][1] != b[i][1]:
            return False
    return False


def conflicts(routes):
    """Pairs that Go 1.22's ServeMux would refuse: same method, overlapping paths,
    neither more specific (which includes duplicates)."""
    bad = []
    by_method = {}
    for idx, (method, _, segs) in enumerate(routes):
        by_method.setdefault(method, []).append((idx, segs))
    for items in by_method.values():
        for x in range(len(items)):
            for y in range(x + 1, len(items)):
                (i, a), (j, b) = items[x], items[y]
                if not overlap(a, b):
                    continue
                ab, ba = covers(b, a), covers(a, b)
                if ab == ba:  # neither more specific, or the same pattern twice
                    bad.append((i, j))
    return bad


def matches(segs, path_segs):
    for i in range(len(path_segs) + 1):
        if i == len(path_segs):
            return i == len(segs)
        if i == len(segs):
            return False
        kind, val = segs[i]
        if kind == REST:
            return True
        if kind == LIT and val != path_segs[i]:
            return False
    return False


def resolve(routes, method, path):
    """What ServeMux answers: ('200', route index), ('404',) or ('405',)."""
    path_segs = path[1:].split("/")
    hits = [i for i, (m, _, segs) in enumerate(routes) if matches(segs, path_segs)]
    same = [i for i in hits if routes[i][0] == method]
    if same:
        best = [i for i in same if all(covers(routes[j][2], routes[i][2]) for j in same)]
        assert len(best) == 1, (method, path, best)
        return ("200", best[0])
    return ("405",) if hits else ("404",)


def redirects(routes, path):
    """ServeMux answers a path with no route by a redirect to path + '/' when that would
    match (a `{x...}` right after the path); such lookups are left out of the table."""
    path_segs = path[1:].split("/") + [""]
    return any(matches(segs, path_segs) for _, _, segs in routes)


def build_routes():
    out = []

    def add(method, pattern):
        out.append((method, pattern))

    # REST API: /api/v{1..3}/<resource>[/{id}[/<sub>[/{sid}]]], plus a static /search
    # beside {id} (the literal is more specific than the wildcard).
    for v in (1, 2, 3):
        for r_i, res in enumerate(RESOURCES):
            base = "/api/v%d/%s" % (v, res)
            add("GET", base)
            add("POST", base)
            add("GET", base + "/search")
            add("GET", base + "/{id}")
            add("PUT", base + "/{id}")
            add("DELETE", base + "/{id}")
            if v == 3:
                add("PATCH", base + "/{id}")
            for s in range(2):
                sub = SUBRESOURCES[(r_i * 3 + v + s * 5) % len(SUBRESOURCES)]
                add("GET", "%s/{id}/%s" % (base, sub))
                add("POST", "%s/{id}/%s" % (base, sub))
                add("GET", "%s/{id}/%s/{sid}" % (base, sub))
    # A hosting-style API with parameters before literals, and literals beside them.
    for pre in ("repos", "mirrors"):
        b = "/%s/{owner}/{repo}" % pre
        for m, p in [
            ("GET", b), ("PATCH", b), ("DELETE", b),
            ("GET", b + "/issues"), ("POST", b + "/issues"),
            ("GET", b + "/issues/{number}"), ("PATCH", b + "/issues/{number}"),
            ("GET", b + "/issues/comments"), ("PATCH", b + "/issues/comments/{comment_id}"),
            ("GET", b + "/issues/{number}/comments"), ("POST", b + "/issues/{number}/comments"),
            ("GET", b + "/pulls"), ("POST", b + "/pulls"), ("GET", b + "/pulls/{number}"),
            ("GET", b + "/pulls/{number}/files"), ("PUT", b + "/pulls/{number}/merge"),
            ("GET", b + "/branches"), ("GET", b + "/branches/{branch}"),
            ("GET", b + "/commits"), ("GET", b + "/commits/{sha}"),
            ("GET", b + "/contents/{path...}"), ("PUT", b + "/contents/{path...}"),
            ("GET", b + "/releases/latest"), ("GET", b + "/releases/{release_id}"),
        ]:
            add(m, p)
    for m, p in [
        ("GET", "/orgs/{org}"), ("GET", "/orgs/{org}/members"),
        ("GET", "/orgs/{org}/members/{username}"), ("PUT", "/orgs/{org}/members/{username}"),
        ("DELETE", "/orgs/{org}/members/{username}"), ("GET", "/orgs/{org}/repos"),
        ("GET", "/admin/users/{id}"), ("POST", "/admin/users/{id}/ban"),
        ("POST", "/admin/users/{id}/unban"), ("GET", "/admin/stats"),
        ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
        ("POST", "/login"), ("POST", "/logout"), ("GET", "/login"),
    ]:
        add(m, p)
    # Catch-alls, some under literal siblings (the literal wins where both match).
    for m, p in [
        ("GET", "/static/{path...}"), ("GET", "/assets/{file...}"),
        ("GET", "/downloads/{file...}"), ("GET", "/docs/{page...}"),
        ("GET", "/files/{owner}/{path...}"), ("POST", "/upload/{path...}"),
        ("GET", "/static/favicon.ico"), ("GET", "/static/css/site.css"),
    ]:
        add(m, p)
    # Static pages fill the table up to N_ROUTES: /<word>, /<word>/<sub>, /docs/<w>/<sub>.
    for w in STATIC_WORDS:
        add("GET", "/" + w)
    for w in STATIC_WORDS:
        for s in STATIC_SUB[:5]:
            add("GET", "/%s/%s" % (w, s))
    for w in STATIC_WORDS:
        for s in STATIC_SUB:
            if len(out) < N_ROUTES:
                add("GET", "/docs/%s/%s" % (w, s))
    assert len(out) == N_ROUTES, len(out)
    return [(m, p, parse_pattern(p)) for m, p in out]


def value_for(rng, name):
    if name in ("id", "sid", "number", "release_id", "comment_id"):
        return str(rng.randrange(1, 10 ** rng.randrange(1, 8)))
    if name == "sha":
        return "%012x" % rng.getrandbits(48)
    words = ["alice", "bob", "zerohttp", "libfoo", "main", "dev", "acme", "v2", "site-a"]
    return rng.choice(words) + ("-%d" % rng.randrange(100) if rng.random() < 0.5 else "")


def concrete_path(rng, segs):
    parts = []
    for kind, val in segs:
        if kind == LIT:
            parts.append(val)
        elif kind == ONE:
            parts.append(value_for(rng, val))
        else:
            depth = rng.randrange(1, 4)
            tail = [rng.choice(["css", "js", "img", "v1", "en", "guide", "x"]) for _ in range(depth - 1)]
            tail.append(rng.choice(["app", "main", "logo", "index", "readme"]) +
                        rng.choice([".css", ".js", ".png", ".html", ".md", ""]))
            parts.extend(tail)
    return "/" + "/".join(parts)


def miss_path(rng, routes):
    kind = rng.randrange(5)
    if kind == 0:  # unknown first segment
        return "/%s/%d" % (rng.choice(["wp-admin", "nope", "cgi-bin", "api2", "x"]), rng.randrange(1000))
    if kind == 1:  # unknown API version
        return "/api/v%d/%s/%d" % (rng.randrange(4, 9), rng.choice(RESOURCES), rng.randrange(1000))
    if kind == 2:  # unknown sub-resource
        return "/api/v%d/%s/%d/%s" % (rng.randrange(1, 4), rng.choice(RESOURCES),
                                      rng.randrange(1000), rng.choice(["bogus", "unknown", "zz"]))
    if kind == 3:  # one segment too many below a parameter route
        _, _, segs = rng.choice(routes)
        return concrete_path(rng, segs) + "/extra"
    return "/%s/%s/%s" % (rng.choice(STATIC_WORDS), rng.choice(STATIC_SUB), "deeper")


def build_lookups(rng, routes):
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    hits, misses, mismatches = [], [], []
    order = list(range(len(routes)))
    rng.shuffle(order)
    n_miss = int(N_LOOKUPS * MISS_SHARE)
    n_mismatch = int(N_LOOKUPS * MISMATCH_SHARE)
    n_hit = N_LOOKUPS - n_miss - n_mismatch
    while len(hits) < n_hit:
        i = order[len(hits)] if len(hits) < len(order) else rng.randrange(len(routes))
        method, _, segs = routes[i]
        path = concrete_path(rng, segs)
        res = resolve(routes, method, path)
        if res[0] == "200" and (len(hits) >= len(order) or res[1] == i):
            hits.append((method, path, res))
    while len(misses) < n_miss:
        path = miss_path(rng, routes)
        method = rng.choice(methods)
        res = resolve(routes, method, path)
        if res[0] == "404" and not redirects(routes, path):
            misses.append((method, path, res))
    while len(mismatches) < n_mismatch:
        _, _, segs = routes[rng.randrange(len(routes))]
        path = concrete_path(rng, segs)
        method = rng.choice(methods)
        res = resolve(routes, method, path)
        if res[0] == "405":
            mismatches.append((method, path, res))
    lookups = hits + misses + mismatches
    rng.shuffle(lookups)
    return lookups


def write(outdir):
    rng = random.Random(SEED)
    routes = build_routes()
    bad = conflicts(routes)
    if bad:
        for i, j in bad[:10]:
            print("conflict: %s %s <-> %s %s" % (routes[i][0], routes[i][1], routes[j][0], routes[j][1]),
                  file=sys.stderr)
        sys.exit(1)
    lookups = build_lookups(rng, routes)
    assert {r[1] for _, _, r in lookups if r[0] == "200"} == set(range(len(routes)))
    with open(os.path.join(outdir, "routes.txt"), "w", newline="\n") as f:
        for m, p, _ in routes:
            f.write("%s %s\n" % (m, p))
    with open(os.path.join(outdir, "lookups.txt"), "w", newline="\n") as f:
        for m, p, _ in lookups:
            f.write("%s %s\n" % (m, p))
    with open(os.path.join(outdir, "lookups.expect"), "w", newline="\n") as f:
        for _, _, r in lookups:
            f.write("200 %d\n" % (r[1] + 1) if r[0] == "200" else r[0] + "\n")


FILES = ("routes.txt", "lookups.txt", "lookups.expect")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=here, help="directory to write into (default: %(default)s)")
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temporary directory and compare with --out")
    args = ap.parse_args()
    if not args.check:
        write(args.out)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        write(tmp)
        _, diff, err = filecmp.cmpfiles(args.out, tmp, FILES, shallow=False)
        if diff or err:
            print("gen_routes.py --check: %s differ from the generator's output"
                  % ", ".join(diff + err), file=sys.stderr)
            return 1
    print("gen_routes.py --check: %s match the generator" % ", ".join(FILES))
    return 0


if __name__ == "__main__":
    sys.exit(main())

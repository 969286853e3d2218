/* middleware.c — chains of before/commit/done hooks (see zerohttp.h).
 *
 * The server keeps up to 64 middleware structs; the global chain and each route's chain
 * are small arrays of indexes into them, so a route table entry stays a few bytes bigger
 * and running an empty chain costs one comparison. A before hook answers on a response
 * begun just for it; when the chain passes, that response is dropped again (its queue
 * slots popped), so the handler's response starts exactly as it would without middleware.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

static int add(zh_server_t *srv, const zh_middleware_t *mw)
{
	if (srv->running)
		return -EBUSY;
	if (mw == NULL || (!mw->before && !mw->commit && !mw->done))
		return -EINVAL;
	if (srv->nmw == ZH__MW_MAX)
		return -ENOSPC;
	srv->mw[srv->nmw] = *mw;
	return (int)srv->nmw++;
}

int zh_server_use(zh_server_t *srv, const zh_middleware_t *mw)
{
	int i;
	if (srv->nglobal_mw == ZH__GLOBAL_MW_MAX)
		return -ENOSPC;
	if ((i = add(srv, mw)) < 0)
		return i;
	srv->global_mw[srv->nglobal_mw++] = (uint8_t)i;
	return 0;
}

int zh_route_use(zh_server_t *srv, const char *path, const zh_middleware_t *mw)
{
	size_t len = path ? strlen(path) : 0;
	unsigned found = 0;
	int i;
	for (unsigned r = 0; r < srv->router.nroutes; r++) {
		const zh__route_t *rt = &srv->router.routes[r];
		if (rt->len == len && memcmp(rt->path, path, len) == 0) {
			if (rt->nmw == ZH__ROUTE_MW_MAX)
				return -ENOSPC;
			found++;
		}
	}
	if (found == 0)
		return -ENOENT;
	if ((i = add(srv, mw)) < 0)
		return i;
	for (unsigned r = 0; r < srv->router.nroutes; r++) {
		zh__route_t *rt = &srv->router.routes[r];
		if (rt->len == len && memcmp(rt->path, path, len) == 0)
			rt->mw[rt->nmw++] = (uint8_t)i;
	}
	return 0;
}

/* The request's slots start empty; the middleware ones are cleared only when there is
 * middleware to use them. */
void zh__req_slots_reset(zh_request_t *req, bool mw)
{
	req->user = NULL;
	req->mw_cur = ZH__MW_NONE;
	if (mw)
		memset(req->mw_slot, 0, sizeof req->mw_slot);
}

/* idx's chain owns the slots from base on: position i's is req->mw_slot[base + i]. */
static int run_before(zh__ctx_t *ctx, const uint8_t *idx, unsigned n, unsigned base)
{
	zh_server_t *srv = ctx->w->srv;
	uint16_t mark = ctx->iov_n;
	zh_response_t *resp = &ctx->resp;
	bool any = false;
	for (unsigned i = 0; i < n; i++)
		any |= srv->mw[idx[i]].before != NULL;
	if (!any)
		return ZH_MW_NEXT;
	zh__resp_begin(ctx, ctx->req.h.method_bit == ZH_HEAD);
	for (unsigned i = 0; i < n; i++) {
		const zh_middleware_t *mw = &srv->mw[idx[i]];
		int r;
		if (!mw->before)
			continue;
		ctx->req.mw_cur = (uint8_t)(base + i);
		r = mw->before(&ctx->req, resp, mw->arg);
		ctx->req.mw_cur = ZH__MW_NONE;
		/* a header the hook failed to set fails resp (sticky): that is an answer too */
		if (r == ZH_MW_ANSWERED || resp->committed || resp->nhdr || resp->body_len ||
		    resp->error)
			return ZH_MW_ANSWERED; /* resp is the answer; the caller finishes it */
	}
	ctx->iov_n = mark; /* nobody answered: the handler's response starts afresh */
	return ZH_MW_NEXT;
}

int zh__mw_before_global_chain(zh__ctx_t *ctx)
{
	const zh_server_t *srv = ctx->w->srv;
	return srv->nglobal_mw ? run_before(ctx, srv->global_mw, srv->nglobal_mw, 0) : ZH_MW_NEXT;
}

int zh__mw_before_route_chain(zh__ctx_t *ctx)
{
	const zh__route_t *rt = ctx->route;
	return rt && rt->nmw ? run_before(ctx, rt->mw, rt->nmw, ZH__GLOBAL_MW_MAX) : ZH_MW_NEXT;
}

/* Every chain's commit hooks fit a fresh response (checked here at build time), so a
 * failure would be a broken invariant: the response fails (a 500) rather than go out
 * without a hook it was meant to pass through. */
_Static_assert(ZH__HOOKS_MAX >= ZH__GLOBAL_MW_MAX + ZH__ROUTE_MW_MAX,
	       "a response must hold the commit hooks of both chains");
static void add_hooks(zh__ctx_t *ctx, const uint8_t *idx, unsigned n, unsigned base)
{
	const zh_server_t *srv = ctx->w->srv;
	for (unsigned i = 0; i < n; i++) {
		const zh_middleware_t *mw = &srv->mw[idx[i]];
		if (!mw->commit)
			continue;
		ctx->req.mw_cur = (uint8_t)(base + i); /* the hook is tagged with its slot */
		if (zh_resp_on_commit(&ctx->resp, mw->commit, mw->arg) < 0)
			ctx->resp.error = true;
	}
	ctx->req.mw_cur = ZH__MW_NONE;
}

void zh__mw_add_commit_hooks_chains(zh__ctx_t *ctx)
{
	const zh_server_t *srv = ctx->w->srv;
	add_hooks(ctx, srv->global_mw, srv->nglobal_mw, 0);
	if (ctx->route)
		add_hooks(ctx, ctx->route->mw, ctx->route->nmw, ZH__GLOBAL_MW_MAX);
}

static void run_done(zh__ctx_t *ctx, const uint8_t *idx, unsigned n, unsigned base)
{
	const zh_server_t *srv = ctx->w->srv;
	for (unsigned i = 0; i < n; i++) {
		const zh_middleware_t *mw = &srv->mw[idx[i]];
		if (mw->done) {
			ctx->req.mw_cur = (uint8_t)(base + i);
			mw->done(&ctx->req, &ctx->resp, mw->arg);
		}
	}
	ctx->req.mw_cur = ZH__MW_NONE;
}

void zh__mw_done_chains(zh__ctx_t *ctx)
{
	const zh_server_t *srv = ctx->w->srv;
	run_done(ctx, srv->global_mw, srv->nglobal_mw, 0);
	if (ctx->route)
		run_done(ctx, ctx->route->mw, ctx->route->nmw, ZH__GLOBAL_MW_MAX);
}

/* ---- published slots (zh_req_published) ----------------------------------------------------- */

static void *find_published(const zh_request_t *req, const uint8_t *idx, unsigned n,
			    unsigned base, const void *key)
{
	const zh_server_t *srv = req->ctx->w->srv;
	for (unsigned i = 0; i < n; i++)
		if (srv->mw[idx[i]].key == key && req->mw_slot[base + i] != NULL)
			return req->mw_slot[base + i];
	return NULL;
}

void *zh_req_published(const zh_request_t *req, const void *key)
{
	const zh_server_t *srv = req->ctx->w->srv;
	const zh__route_t *rt = req->ctx->route;
	void *p;
	if (key == NULL || srv->nmw == 0) /* without middleware the slots are never cleared */
		return NULL;
	p = find_published(req, srv->global_mw, srv->nglobal_mw, 0, key);
	if (p == NULL && rt)
		p = find_published(req, rt->mw, rt->nmw, ZH__GLOBAL_MW_MAX, key);
	return p;
}

static const char identity_key = 'u';
const void *zh_identity_key(void) { return &identity_key; }

int zh_req_auth_user(const zh_request_t *req, zh_slice_t *out)
{
	const zh_slice_t *name = zh_req_published(req, &identity_key);
	if (name == NULL)
		return 0;
	*out = *name;
	return 1;
}

/* ---- the extension interface's view of the core (ext.h) ------------------------------------ */

zh__worker_t *zh__ext_worker(const zh_request_t *req) { return req->ctx->w; }
unsigned zh__ext_worker_id(const zh__worker_t *w) { return w->id; }
const zh_server_t *zh__ext_worker_server(const zh__worker_t *w) { return w->srv; }
uint64_t zh__ext_now_ms(const zh__worker_t *w) { return w->now_ms; }
time_t zh__ext_date_sec(const zh__worker_t *w) { return w->date_sec; }
bool zh__ext_draining(const zh__worker_t *w) { return w->draining; }
zh_stats_t *zh__ext_stats(zh__worker_t *w) { return &w->stats; }
uint64_t zh__ext_started_us(const zh_request_t *req) { return req->ctx->started_us; }
bool zh__ext_in_hooks(const zh_response_t *resp) { return resp->in_hooks; }

unsigned zh_server_workers(const zh_server_t *srv) { return srv->nworkers; }
unsigned zh_req_worker(const zh_request_t *req) { return req->ctx->w->id; }
const zh_config_t *zh__ext_server_config(const zh_server_t *srv) { return &srv->cfg; }
time_t zh__ext_server_start(const zh_server_t *srv) { return srv->start_time; }
bool zh__ext_server_stopping(const zh_server_t *srv) { return srv->stopping; }

/* demo_routes.h — zerohttpd's --demo routes (examples/demo_routes.c lists them). */
#ifndef DEMO_ROUTES_H
#define DEMO_ROUTES_H

#include "zerohttp.h"

/* Adds the demo routes to srv (before zh_server_run). 0 or zh_server_route's error. */
int demo_routes_add(zh_server_t *srv);
/* Before zh_server_run: fills the /stream and /json/list64k bodies and starts the /delay
 * timer thread. 0 or a negative errno. */
int demo_routes_start(void);
/* After zh_server_run returned, before zh_server_free: no /delay resumption may still be on
 * its way to the server. Joins the timer thread. Harmless if demo_routes_start() was not
 * called or failed. */
void demo_routes_stop(void);

#endif

# zerohttp — one plain Makefile. Warnings and sanitizer flags live here and only here.
#   make            build/libzerohttp{,-gzip,-protobuf,-auth}.{a,so}, build/zerohttpd and the
#                   pkg-config modules zerohttp{,-gzip,-protobuf,-auth}.pc (see "Libraries")
#   make run        build, then serve www/ and the demo routes on 127.0.0.1:8080
#   make test       unit tests (Criterion; tests/test_<x>.c tests src/<x>.c, the parser and the
#                   JSON writer also in scalar builds), install-check (the core links only
#                   libc/pthread), integration tests with 'N passed, M failed', zero-alloc test
#   make test-uring the integration tests with every server on the io_uring backend
#   make asan       the same tests against an ASan+UBSan build
#   make asan-uring the integration tests of the ASan+UBSan build on io_uring (CI), and
#   make test-uring-measures  the ones sanitizer builds skip (allocations, RSS, load) (CI)
#   make ubsan      the same tests against a UBSan-only build (malloc shim still on)
#   make memcheck   the integration tests with every server under valgrind memcheck
#                   (ZH_IO=uring on io_uring; ZH_TESTS="PATTERN..." a part of them, as in CI)
#   make fuzz       each libFuzzer target for FUZZ_SECONDS (default 60) under ASan+UBSan
#   make soak       the long load tests (10k connections, slowloris, slow readers, and the
#                   throughput ratios make test leaves out) and a SOAK_MINUTES (default 10)
#                   mixed-load soak
#   make bench      wrk against /plaintext and /json (c=64, and pipelined depth 16); the JSON
#                   reader against jansson (make bench-json-read)
#   make static     build/static/zerohttpd, linked statically (the container image's)
#   make test-deploy three zerohttpd behind HAProxy (rolling restart, SIGKILL under load), the
#                   Kubernetes manifests, the container image (tests/deploy/; about a minute)
#   make fresh-check as root: `make run` and `make test` from a clean clone of HEAD in a
#                   fresh Debian 12 minbase chroot with only gcc make libc6-dev git
#                   ca-certificates (scripts/fresh-check.sh; about 6 minutes, not in CI)
#   make install PREFIX=/usr/local   header, libraries, pkg-config modules, zerohttpd, zerohttpd(8)
#   make install-check               install to a scratch prefix, build examples/ against it
#                                    (hello.c must load libc only; hello_gzip.c, hello_tls.c
#                                    their feature library and its dependency)
#   make examples-installed          the same for the example services (build/examples/)

CC      ?= gcc
# the demo, the tests and the benchmarks run zerohttpd as whoever runs make, root in CI:
# zerohttpd refuses root without --user unless told (README, "Privileges")
export ZEROHTTPD_ALLOW_ROOT = 1
PREFIX  ?= /usr/local
BUILD   ?= build
SANITIZE ?=
OPT     ?= -O2

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
	   -Wformat=2 -Wvla
CFLAGS  += -std=c11 $(OPT) -g $(WARN) $(if $(WERROR),-Werror) -D_GNU_SOURCE -pthread -Iinclude -Isrc \
	   -fvisibility=hidden $(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all)
LDFLAGS += -pthread $(if $(SANITIZE),-fsanitize=$(SANITIZE))
# protobuf-c (zh_send_protobuf): compile flags for src/protobuf.c and zerohttpd, the library
# wherever libzerohttp is linked; proto/demo.proto is compiled by protoc-c into $(BUILD)/gen
PB_CFLAGS = $(shell pkg-config --cflags libprotobuf-c 2>/dev/null)
# the feature libraries' link dependencies: protobuf-c (zh_send_protobuf), zlib (gzip
# middleware), crypt(3) for the auth middleware's Basic check (libxcrypt: crypt_rn,
# crypt_checksalt). The core needs none of them: see "Libraries" below.
protobuf_LIBS = $(shell pkg-config --libs libprotobuf-c 2>/dev/null || echo -lprotobuf-c)
gzip_LIBS     = -lz
auth_LIBS     = -lcrypt
h2_LIBS       = $(shell pkg-config --libs libnghttp2 2>/dev/null || echo -lnghttp2)
tls_LIBS      = $(shell pkg-config --libs libssl libcrypto 2>/dev/null || echo -lssl -lcrypto)
# liburing (src/loop_uring.c, --io uring), linked statically: libzerohttp.so carries it
# hidden inside, so that a program using the core still loads only libc and pthread
URING_LIBS = -Wl,-Bstatic -luring -Wl,-Bdynamic
# what an in-tree program that links every feature (zerohttpd, the tests) adds after $(LIB_A)
PB_LIBS   = $(protobuf_LIBS) $(gzip_LIBS) $(auth_LIBS) $(h2_LIBS) $(tls_LIBS) $(URING_LIBS)

# Libraries. The core (libzerohttp) needs only libc and pthread; each feature with a
# dependency of its own is a library of its own, so that a program that does not use it
# neither links nor loads its dependency (static archives alone would do that, but a shared
# library carries DT_NEEDED for everything its objects reference):
#   libzerohttp-gzip      src/mw_gzip.c    zlib
#   libzerohttp-protobuf  src/protobuf.c   protobuf-c
#   libzerohttp-auth      src/mw_auth.c    crypt
#   libzerohttp-h2        src/h2*.c        nghttp2 (HTTP/2: a protocol behind the seam, so
#                         it sees internal.h; the core calls it through zh__h2_hooks_t)
#   libzerohttp-tls       src/transport_tls.c src/tls_*.c   OpenSSL 3 (libssl, libcrypto):
#                         the TLS transport, plugged into the core's transport seam by a
#                         listener's zh_tls_t (the core never calls it by name)
# Each has a pkg-config module of the same name that Requires zerohttp.
FEATURES     := gzip protobuf auth h2 tls
h2_SRCS      := src/h2.c src/h2_stream.c src/h2_mem.c
gzip_SRCS    := src/mw_gzip.c
protobuf_SRCS := src/protobuf.c
auth_SRCS    := src/mw_auth.c
tls_SRCS     := src/transport_tls.c src/tls_config.c src/tls_alloc.c src/tls_metrics.c
FEATURE_SRCS := $(foreach f,$(FEATURES),$($(f)_SRCS))
CORE_SRCS := src/pool.c src/parse.c src/http_util.c src/response.c src/body.c src/conn.c src/conn_evict.c src/conn_mux.c src/upgrade.c src/loop.c src/server.c \
	   src/router.c src/request.c \
	   src/static.c src/static_cache.c src/json.c src/json_read.c src/dtoa.c src/metrics.c src/middleware.c \
	   src/accesslog.c src/mw_limit.c src/mw_cors.c \
	   src/transport_plain.c src/loop_uring.c src/http1.c src/stream.c src/timer.c src/proxy.c src/upstream.c src/upstream_setup.c src/upstream_health.c src/upstream_tunnel.c src/upstream_request.c src/upstream_parse.c src/app_metrics.c \
	   src/slice.c src/query.c src/multipart.c src/cookie.c
SRCS    := $(CORE_SRCS) $(FEATURE_SRCS)
OBJS    := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
PICOBJS := $(SRCS:src/%.c=$(BUILD)/pic/%.o)
HDRS    := include/zerohttp.h src/internal.h src/ext.h src/static_int.h src/dtoa.h src/ext_exports.h \
	   src/proto_exports.h src/h2_int.h src/tls_int.h src/upstream_int.h
VERSION := $(shell sed -n 's/^#define ZH_VERSION "\(.*\)"/\1/p' include/zerohttp.h)

# ASan replaces malloc, so the malloc-counting shim and zerohttpd's own wrapper stay out of
# its builds; UBSan alone leaves malloc alone and keeps both
ASAN    := $(findstring address,$(SANITIZE))
NO_HEAP_COUNT := $(if $(ASAN),-DZH_NO_HEAP_COUNT)

CORE_A  := $(BUILD)/libzerohttp.a
CORE_SO := $(BUILD)/libzerohttp.so
FEATURE_A  := $(FEATURES:%=$(BUILD)/libzerohttp-%.a)
FEATURE_SO := $(FEATURES:%=$(BUILD)/libzerohttp-%.so)
# every archive, features first (they call the core): what in-tree programs link, with $(PB_LIBS)
LIB_A   := $(FEATURE_A) $(CORE_A)
LIB_SO  := $(CORE_SO) $(FEATURE_SO)
PC_FILES := zerohttp.pc $(FEATURES:%=zerohttp-%.pc)
DAEMON  := $(BUILD)/zerohttpd

UNIT_TESTS := $(BUILD)/tests/test_parse $(BUILD)/tests/test_parse_scalar \
	      $(BUILD)/tests/test_pool $(BUILD)/tests/test_server $(BUILD)/tests/test_dtoa \
	      $(BUILD)/tests/test_json $(BUILD)/tests/test_json_scalar $(BUILD)/tests/test_limit $(BUILD)/tests/test_middleware \
	      $(BUILD)/tests/test_compose $(BUILD)/tests/test_gzip $(BUILD)/tests/test_conn \
	      $(BUILD)/tests/test_ext $(BUILD)/tests/test_timer $(BUILD)/tests/test_proxy $(BUILD)/tests/test_upstream $(BUILD)/tests/test_app_metrics \
	      $(BUILD)/tests/test_transport $(BUILD)/tests/test_proto \
	      $(BUILD)/tests/test_slice $(BUILD)/tests/test_query $(BUILD)/tests/test_multipart \
	      $(BUILD)/tests/test_cookie $(BUILD)/tests/test_uring $(BUILD)/tests/test_h2_mem \
	      $(BUILD)/tests/test_router $(BUILD)/tests/test_listeners \
	      $(BUILD)/tests/test_json_read $(BUILD)/tests/test_json_read_scalar $(BUILD)/tests/test_upgrade
SHIM    := $(BUILD)/tests/malloc_count.so

.PHONY: all run test test-uring test-uring-measures asan-uring unit integration install-check examples-installed asan ubsan memcheck fuzz fuzz-replay soak bench \
	bench-json-read static test-deploy deps-deploy \
	install clean deps fresh-check
all: $(LIB_A) $(LIB_SO) $(DAEMON) $(PC_FILES)

deps:
	@scripts/deps.sh
deps-deploy:
	@scripts/deps.sh deploy

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@
# src/ext_exports.h, forced in first, gives default visibility to the few internals the
# feature libraries call in libzerohttp.so (hidden symbols cannot be linked across .so files)
$(BUILD)/pic/%.o: src/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fPIC -include src/ext_exports.h -c $< -o $@
$(BUILD)/obj/protobuf.o $(BUILD)/pic/protobuf.o: CFLAGS += $(PB_CFLAGS)
$(BUILD)/gen/demo.pb-c.c: proto/demo.proto
	@mkdir -p $(@D)
	protoc-c --c_out=$(@D) --proto_path=proto $<

$(CORE_A): $(CORE_SRCS:src/%.c=$(BUILD)/obj/%.o)
	$(AR) rcs $@ $^
# --no-undefined: a core internal a feature calls but cannot see is a link error (not under
# a sanitizer: clang leaves its runtime's symbols for the executable to bring)
SO_NO_UNDEF := $(if $(SANITIZE),,-Wl,--no-undefined)
$(CORE_SO): $(CORE_SRCS:src/%.c=$(BUILD)/pic/%.o)
	$(CC) -shared -Wl,-soname,libzerohttp.so.0 $(SO_NO_UNDEF) $(LDFLAGS) -o $@ $^ \
		-Wl,--exclude-libs,liburing.a $(URING_LIBS)
# one archive and one shared library per feature; the .so needs libzerohttp.so.0 and its
# own dependency
define feature_lib
$(BUILD)/libzerohttp-$(1).a: $$($(1)_SRCS:src/%.c=$$(BUILD)/obj/%.o)
	$$(AR) rcs $$@ $$^
$(BUILD)/libzerohttp-$(1).so: $$($(1)_SRCS:src/%.c=$$(BUILD)/pic/%.o) $$(CORE_SO)
	$$(CC) -shared -Wl,-soname,libzerohttp-$(1).so.0 $$(SO_NO_UNDEF) $$(LDFLAGS) -o $$@ \
		$$(filter %.o,$$^) $$(CORE_SO) $$($(1)_LIBS)
endef
$(foreach f,$(filter-out tls,$(FEATURES)),$(eval $(call feature_lib,$(f))))
$(BUILD)/libzerohttp-tls.a: $(tls_SRCS:src/%.c=$(BUILD)/obj/%.o)
	$(AR) rcs $@ $^
# libzerohttp-tls calls nothing in libzerohttp (the core reaches it through a listener's
# zh_tls_t), so it does not need libzerohttp.so: zerohttpd dlopens it, and only it, when a
# --listen-tls is given, and plain-only runs never map OpenSSL (whose relocated data alone
# is ~450 KiB of anonymous memory). --no-undefined holds it to that. The .so.0 link lets
# the in-tree zerohttpd find it by soname. Never -static (make static's LDFLAGS): a static
# zerohttpd serves plain HTTP and HTTP/2 only, it cannot load this library.
$(BUILD)/libzerohttp-tls.so: $(tls_SRCS:src/%.c=$(BUILD)/pic/%.o)
	$(CC) -shared -Wl,-soname,libzerohttp-tls.so.0 $(SO_NO_UNDEF) $(filter-out -static,$(LDFLAGS)) \
		-o $@ $^ $(tls_LIBS)
	ln -sf libzerohttp-tls.so $(BUILD)/libzerohttp-tls.so.0
# zerohttpd: the product (cmd/zerohttpd/) plus the --demo routes (examples/demo_routes.c).
# TLS comes from libzerohttp-tls.so, dlopened at start-up when a TLS listener is asked for
# (cmd/zerohttpd/tls.c), found next to the binary or in ../lib by path
DAEMON_SRCS := $(wildcard cmd/zerohttpd/*.c) examples/demo_routes.c
DAEMON_A    := $(filter-out $(BUILD)/libzerohttp-tls.a,$(LIB_A))
$(DAEMON): $(DAEMON_SRCS) cmd/zerohttpd/zerohttpd.h examples/demo_routes.h \
	  $(BUILD)/gen/demo.pb-c.c $(DAEMON_A) $(BUILD)/libzerohttp-tls.so include/zerohttp.h
	$(CC) $(CFLAGS) $(PB_CFLAGS) -I$(BUILD)/gen -Icmd/zerohttpd -Iexamples $(NO_HEAP_COUNT) \
		-o $@ $(DAEMON_SRCS) $(BUILD)/gen/demo.pb-c.c $(DAEMON_A) \
		$(protobuf_LIBS) $(gzip_LIBS) $(auth_LIBS) $(h2_LIBS) $(URING_LIBS) -ldl $(LDFLAGS)

# pkg-config modules for PREFIX (`make install` writes them again for the prefix it installs
# to): zerohttp, the core, and one per feature library; a feature's module Requires zerohttp
# and brings its own dependency (for a static link too: Requires.private, Libs.private)
PC_DESC_zerohttp          = zero-allocation, zero-copy HTTP/1.1 server library (core)
PC_BODY_zerohttp          = Libs: -L$${libdir} -lzerohttp -pthread\nLibs.private: -luring\nCflags: -I$${includedir}\n
PC_DESC_zerohttp-gzip     = zerohttp gzip middleware (zh_gzip_*, zlib)
PC_BODY_zerohttp-gzip     = Requires: zerohttp\nRequires.private: zlib\nLibs: -L$${libdir} -lzerohttp-gzip\n
PC_DESC_zerohttp-protobuf = zerohttp protobuf responses (zh_send_protobuf, protobuf-c)
PC_BODY_zerohttp-protobuf = Requires: zerohttp libprotobuf-c\nLibs: -L$${libdir} -lzerohttp-protobuf\n
PC_DESC_zerohttp-auth     = zerohttp auth middleware (zh_auth_*, crypt)
PC_BODY_zerohttp-auth     = Requires: zerohttp\nLibs: -L$${libdir} -lzerohttp-auth\nLibs.private: -lcrypt\n
PC_DESC_zerohttp-h2       = zerohttp HTTP/2 (zh_http2_enable, nghttp2)
PC_BODY_zerohttp-h2       = Requires: zerohttp\nRequires.private: libnghttp2\nLibs: -L$${libdir} -lzerohttp-h2\n
PC_DESC_zerohttp-tls      = zerohttp TLS listeners (zh_tls_*, OpenSSL 3)
PC_BODY_zerohttp-tls      = Requires: zerohttp\nRequires.private: libssl libcrypto\nLibs: -L$${libdir} -lzerohttp-tls\n
# $(call pc_text,module,prefix): the shell command printing that module's .pc file
pc_text = printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: $(1)\nDescription: $(PC_DESC_$(1))\nVersion: $(VERSION)\n$(PC_BODY_$(1))' '$(2)'
$(PC_FILES): %.pc: Makefile include/zerohttp.h
	@$(call pc_text,$*,$(PREFIX)) > $@

run: deps all
	$(DAEMON) --address 127.0.0.1 --port 8080 --root www --demo

# ---- tests ------------------------------------------------------------------------------
CRIT_CFLAGS = $(shell pkg-config --cflags criterion 2>/dev/null)
CRIT_LIBS   = $(shell pkg-config --libs criterion 2>/dev/null || echo -lcriterion)

$(BUILD)/tests/test_parse: tests/test_parse.c src/parse.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Wno-missing-prototypes $(CRIT_CFLAGS) -o $@ tests/test_parse.c src/parse.c $(CRIT_LIBS) $(LDFLAGS)
$(BUILD)/tests/test_parse_scalar: tests/test_parse.c src/parse.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DZH_NO_SIMD -Wno-missing-prototypes $(CRIT_CFLAGS) -o $@ tests/test_parse.c src/parse.c $(CRIT_LIBS) $(LDFLAGS)
# the JSON writer's scalar fallbacks (test_json.c includes src/json.c; this build has no SSE2)
$(BUILD)/tests/test_json_scalar: tests/test_json.c src/json.c $(LIB_A) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DZH_NO_SIMD -Wno-missing-prototypes $(CRIT_CFLAGS) -o $@ $< $(LIB_A) $(PB_LIBS) $(CRIT_LIBS) $(LDFLAGS)
$(BUILD)/tests/test_json: src/json.c
# the JSON reader, also with its scalar string scan (test_json_read.c includes src/json_read.c)
$(BUILD)/tests/test_json_read_scalar: tests/test_json_read.c src/json_read.c $(LIB_A) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DZH_NO_SIMD -Wno-missing-prototypes $(CRIT_CFLAGS) -o $@ $< $(LIB_A) $(PB_LIBS) $(CRIT_LIBS) $(LDFLAGS)
$(BUILD)/tests/test_json_read: src/json_read.c
$(BUILD)/tests/%: tests/%.c $(LIB_A) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Wno-missing-prototypes $(CRIT_CFLAGS) -o $@ $< $(LIB_A) $(PB_LIBS) $(CRIT_LIBS) $(LDFLAGS)
# the shared raw-socket client and response reader of the in-process server tests
$(addprefix $(BUILD)/tests/,test_server test_middleware test_compose test_gzip test_conn \
	  test_ext test_timer test_proxy test_app_metrics test_router test_listeners test_uring \
	  test_upgrade): \
	tests/zh_test_client.h
$(SHIM): tests/malloc_count.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -O2 -g -Wall -Wextra -D_GNU_SOURCE -fPIC -shared -o $@ $< -ldl

unit: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t --jobs 2 --timeout 60; done

# test-only server whose routes answer zh_json documents (tests/integration/test_19_json.py)
$(BUILD)/tests/json_server: tests/json_server.c cmd/zerohttpd/heap_count.c $(LIB_A) \
	  include/zerohttp.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(NO_HEAP_COUNT) -o $@ $< cmd/zerohttpd/heap_count.c \
		$(LIB_A) $(PB_LIBS) $(LDFLAGS)

# test-only server whose routes use the "Reading requests" calls (test_33_reading.py)
$(BUILD)/tests/reading_server: tests/reading_server.c $(LIB_A) include/zerohttp.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_A) $(PB_LIBS) $(LDFLAGS)

integration: $(DAEMON) $(SHIM) $(BUILD)/tests/json_server $(BUILD)/tests/zh_load \
	  $(BUILD)/tests/reading_server examples-installed
	ZH_IO=$(or $(ZH_IO),epoll) ZH_BIN=$(DAEMON) ZH_JSON_SERVER=$(BUILD)/tests/json_server ZH_LOAD=$(BUILD)/tests/zh_load \
		ZH_READING_SERVER=$(BUILD)/tests/reading_server ZH_EXAMPLES=$(BUILD)/examples \
		ZH_SHIM=$(if $(ASAN),,$(SHIM)) ZH_SANITIZE=$(SANITIZE) python3 tests/integration/run.py \
		$(ZH_TEST_ARGS)

# make install into a scratch prefix, then build the README's examples with pkg-config:
# examples/hello.c with `zerohttp` must load libc (and pthread, ld.so, the vDSO) and nothing
# else but libzerohttp (ldd, which follows the libraries' own DT_NEEDED too), and
# examples/hello_gzip.c with `zerohttp-gzip` must build, link and load libzerohttp-gzip and zlib
install-check: all
	@set -e; d=$$(mktemp -d); trap 'rm -rf $$d' EXIT; \
	$(MAKE) --no-print-directory -s install PREFIX=$$d >/dev/null; \
	export PKG_CONFIG_PATH=$$d/lib/pkgconfig; \
	for ex in hello:zerohttp hello_gzip:zerohttp-gzip hello_tls:zerohttp-tls; do \
		$(CC) -std=c11 -Wall -Wextra -Werror -o $$d/$${ex%%:*} examples/$${ex%%:*}.c \
			$$(pkg-config --cflags --libs $${ex#*:}) -Wl,-rpath,$$d/lib; done; \
	test -x $$d/bin/zerohttpd && test -f $$d/lib/libzerohttp.a && \
		test -f $$d/share/man/man8/zerohttpd.8; \
	ldd $$d/hello > $$d/hello.ldd; cat $$d/hello.ldd; \
	if grep -v -E '^\s*(linux-vdso\.so|/lib[^ ]*/ld-linux[^ ]*\.so|(libzerohttp|libc|libpthread)\.so)' \
		$$d/hello.ldd; then echo "install-check: examples/hello loads more than libc/pthread"; exit 1; fi; \
	grep -q "libzerohttp.so.0 => $$d/lib/" $$d/hello.ldd; \
	ldd $$d/hello_gzip > $$d/hello_gzip.ldd; \
	grep -q "libzerohttp-gzip.so.0 => $$d/lib/" $$d/hello_gzip.ldd && grep -q 'libz\.so' $$d/hello_gzip.ldd; \
	ldd $$d/hello_tls > $$d/hello_tls.ldd; \
	grep -q "libzerohttp-tls.so.0 => $$d/lib/" $$d/hello_tls.ldd && grep -q 'libssl\.so' $$d/hello_tls.ldd; \
	echo "install-check: installed to a scratch prefix; examples/hello.c (zerohttp) loads only libc/pthread, examples/hello_gzip.c built with zerohttp-gzip, examples/hello_tls.c with zerohttp-tls (libssl)"

# The example services of examples/, built as their users build them: `make install` into a
# scratch prefix ($(BUILD)/examples/prefix), then cc with `pkg-config --cflags --libs` of
# the modules each one names (name:module,module). tests/integration/test_48_examples.py
# runs the programs left in $(BUILD)/examples/. A sanitizer build's library needs its
# runtime in the program too, hence -fsanitize.
EXAMPLES := rest_api:zerohttp file_site:zerohttp-gzip,zerohttp-auth async_service:zerohttp
examples-installed: all
	@set -e; d=$(abspath $(BUILD))/examples; rm -rf $$d; mkdir -p $$d; \
	$(MAKE) --no-print-directory -s install PREFIX=$$d/prefix >/dev/null; \
	export PKG_CONFIG_PATH=$$d/prefix/lib/pkgconfig; \
	for ex in $(EXAMPLES); do name=$${ex%%:*}; mods=$$(echo $${ex#*:} | tr , ' '); \
		$(CC) -std=c11 -O2 -g -Wall -Wextra -Werror $(if $(SANITIZE),-fsanitize=$(SANITIZE)) \
			-o $$d/$$name examples/$$name.c $$(pkg-config --cflags --libs $$mods) \
			-Wl,-rpath,$$d/prefix/lib; \
		echo "examples-installed: $$d/$$name (pkg-config $$mods)"; done

test: deps all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory install-check
	@$(MAKE) --no-print-directory integration

# the integration suite again with every server on io_uring (harness.py: ZH_IO); CI runs it
# after make test (about 5 minutes more, so not part of make test)
test-uring: deps all
	@$(MAKE) --no-print-directory ZH_IO=uring integration

# ZH_TESTS="PATTERN...": only the integration tests whose module.Class.method holds one
ZH_TEST_ARGS = $(foreach k,$(ZH_TESTS),-k $(k))
# the tests that sanitizer builds skip (malloc counts, RSS and load measures)
SANITIZER_SKIPPED := ZeroAlloc test_27_load test_memory HeapAllocationCounter \
		     AppMetrics.test_updates_allocate
# CI runs the integration suite three times: make test (epoll), make asan (epoll) and make
# asan-uring (io_uring), then the tests the sanitizers skip on io_uring
test-uring-measures: deps all
	@$(MAKE) --no-print-directory ZH_IO=uring ZH_TESTS="$(SANITIZER_SKIPPED)" integration

asan:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=address,undefined OPT=-O1 all unit integration

asan-uring:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=address,undefined OPT=-O1 ZH_IO=uring \
		all integration

ubsan:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory BUILD=build/ubsan SANITIZE=undefined OPT=-O1 all unit integration

# ---- hardening: memcheck, fuzzing, soak (issue 6) ----------------------------------------
memcheck: deps all $(BUILD)/tests/json_server
	@ZH_IO=$(or $(ZH_IO),epoll) scripts/memcheck.sh $(DAEMON) $(BUILD)/tests/json_server \
		$(ZH_TEST_ARGS)

# (fuzz section)
# libFuzzer targets of tests/fuzz/ (clang, ASan+UBSan): each runs FUZZ_SECONDS on a scratch
# copy of its seed corpus (tests/fuzz/corpus/<target>, never written to), FUZZ_JOBS at once.
# `make fuzz-replay` (or FUZZ_SECONDS=0) only replays the seeds: a few seconds.
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 2
FUZZ_TARGETS := parse chunked path range json forwarded form multipart cookie router h2 tls json_read upstream
FUZZ_CFLAGS  := -std=c11 -O1 -g $(WARN) -Wno-missing-prototypes -D_GNU_SOURCE -pthread -Iinclude \
		-Isrc -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
# path and range include static.c (its static functions) and link the rest of the library
FUZZ_LIBOBJS := $(patsubst src/%.c,$(BUILD)/fuzz/obj/%.o,$(filter-out src/static.c,$(SRCS)))
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)

$(BUILD)/fuzz/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(PB_CFLAGS) -c $< -o $@
$(BUILD)/fuzz/fuzz_parse $(BUILD)/fuzz/fuzz_chunked: $(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c \
	  tests/fuzz/parse_scalar.c tests/fuzz/fuzz_common.h src/parse.c $(HDRS)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< tests/fuzz/parse_scalar.c src/parse.c
$(BUILD)/fuzz/fuzz_path $(BUILD)/fuzz/fuzz_range: $(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c \
	  tests/fuzz/fuzz_common.h src/static.c $(FUZZ_LIBOBJS)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIBOBJS) $(PB_LIBS)
# h2: a server in the fuzzer's process, HTTP/2 frames over loopback (the whole library)
$(BUILD)/fuzz/fuzz_h2: tests/fuzz/fuzz_h2.c tests/fuzz/fuzz_common.h $(FUZZ_LIBOBJS) \
	  $(BUILD)/fuzz/obj/static.o
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIBOBJS) $(BUILD)/fuzz/obj/static.o \
		$(PB_LIBS)
# the request readers (query.c, multipart.c, cookie.c) through the public API: the whole
# library linked, static.c included
$(BUILD)/fuzz/fuzz_form $(BUILD)/fuzz/fuzz_multipart $(BUILD)/fuzz/fuzz_cookie: \
	  $(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(FUZZ_LIBOBJS) \
	  $(BUILD)/fuzz/obj/static.o
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIBOBJS) $(BUILD)/fuzz/obj/static.o \
		$(PB_LIBS)
# the Forwarded / X-Forwarded-For parser (proxy.c) with the rest of the library
$(BUILD)/fuzz/fuzz_forwarded: tests/fuzz/fuzz_forwarded.c tests/fuzz/fuzz_common.h $(FUZZ_LIBOBJS)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIBOBJS) $(PB_LIBS)
# the reverse proxy's upstream response parser and chunked decoder (upstream_parse.c)
$(BUILD)/fuzz/fuzz_upstream: tests/fuzz/fuzz_upstream.c tests/fuzz/fuzz_common.h $(FUZZ_LIBOBJS)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIBOBJS) $(PB_LIBS)
# the router through zh__router_find, the server's own lookup (router.o among the objects)
$(BUILD)/fuzz/fuzz_router: tests/fuzz/fuzz_router.c tests/fuzz/fuzz_common.h $(FUZZ_LIBOBJS)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIBOBJS) $(PB_LIBS)
# the TLS front: the library's objects (tls_config.c's SSL_CTX setup and callbacks) and OpenSSL
$(BUILD)/fuzz/fuzz_tls: tests/fuzz/fuzz_tls.c tests/fuzz/fuzz_common.h $(FUZZ_LIBOBJS)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIBOBJS) $(PB_LIBS)
$(BUILD)/fuzz/fuzz_json: tests/fuzz/fuzz_json.c tests/fuzz/fuzz_common.h src/json.c src/dtoa.c \
	  $(HDRS)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< src/dtoa.c -lm

# the JSON reader as the library has it (json_read.o), against a reference parser inside
# and against jansson (libjansson-dev, from scripts/deps.sh)
$(BUILD)/fuzz/fuzz_json_read: tests/fuzz/fuzz_json_read.c tests/fuzz/fuzz_common.h \
	  $(FUZZ_LIBOBJS) $(BUILD)/fuzz/obj/static.o
	clang $(FUZZ_CFLAGS) $(shell pkg-config --cflags jansson) -fsanitize=fuzzer -o $@ $< \
		$(FUZZ_LIBOBJS) $(BUILD)/fuzz/obj/static.o $(PB_LIBS) $(shell pkg-config --libs jansson)

fuzz: deps
	@tests/fuzz/run.sh deps
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@tests/fuzz/run.sh run $(BUILD)/fuzz $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_TARGETS)
fuzz-replay:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=0

# (load section)
# zh_load: the epoll load/abuse client of tests/integration/test_27_load.py (keep-alive
# connections, slowloris dribblers, slow readers); no library code, so no sanitizer flags
$(BUILD)/tests/zh_load: tests/load/zh_load.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -O2 -g $(WARN) $(if $(WERROR),-Werror) -D_GNU_SOURCE -o $@ $<

# (soak section)
# make soak: the long tests, one after the other (never in parallel: they measure RSS and
# fds). First the full-size load tests of test_27 (10,000 keep-alive connections for 60 s,
# 1,500 slowloris dribblers of heads and of bodies, 200 readers of 100 MiB at 1 MiB/s:
# about 4 minutes; only here do the slowloris tests also assert that wrk keeps >= 80% of
# its clean throughput, a ratio too noisy for make test on a shared machine), then tests/soak/soak.py: SOAK_MINUTES of mixed load (wrk + abrupt
# clients) that fails unless RSS stays within 1 MiB and fds at 0 growth after warm-up,
# with no unexpected status; it prints its figures and one FAIL line per failed criterion.
SOAK_MINUTES ?= 10
soak: deps all $(BUILD)/tests/zh_load
	ZH_LONG=1 ZH_BIN=$(DAEMON) ZH_LOAD=$(BUILD)/tests/zh_load \
		python3 tests/integration/run.py -k test_27
	python3 tests/soak/soak.py --bin $(DAEMON) --minutes $(SOAK_MINUTES)

bench: deps all $(BUILD)/bench/json_writer $(BUILD)/bench/router_bench
	bench/run.sh $(DAEMON)
	taskset -c 0 $(BUILD)/bench/json_writer
	taskset -c 0 $(BUILD)/bench/router_bench $(ROUTER_BENCH_FILES)
	@$(MAKE) --no-print-directory bench-json-read
# the router's lookups (bench/router_lookup.c): the route table and the paths, one
# "METHOD PATTERN" / "METHOD PATH" a line, are generated into bench/router/ (1,000 routes)
# with the answer Go's ServeMux gives to each lookup, which the bench checks first
ROUTER_BENCH_FILES ?= bench/router/routes.txt bench/router/lookups.txt bench/router/lookups.expect
$(BUILD)/bench/router_bench: bench/router_lookup.c $(LIB_A) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_A) $(PB_LIBS) $(LDFLAGS)
# the JSON reader against jansson (libjansson-dev, from scripts/deps.sh; built without it,
# the bench measures zerohttp alone and says so) on bench/json_read/gen_docs.py's documents,
# pinned to one CPU
JANSSON := $(shell pkg-config --exists jansson 2>/dev/null && echo yes)
$(BUILD)/bench/json_read: bench/json_read/bench.c $(LIB_A) include/zerohttp.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(if $(JANSSON),-DZH_BENCH_JANSSON $(shell pkg-config --cflags jansson)) \
		-o $@ $< $(LIB_A) $(PB_LIBS) $(if $(JANSSON),$(shell pkg-config --libs jansson)) $(LDFLAGS)
bench-json-read: $(BUILD)/bench/json_read
	@python3 bench/json_read/gen_docs.py $(BUILD)/bench/json_read_docs
	taskset -c 0 $(BUILD)/bench/json_read $(BUILD)/bench/json_read_docs/jsonlist.json \
		$(BUILD)/bench/json_read_docs/twitter.json
$(BUILD)/bench/json_writer: bench/json_writer.c $(LIB_A) include/zerohttp.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_A) $(PB_LIBS) $(LDFLAGS)

# zerohttpd linked statically (glibc, zlib, protobuf-c and libcrypt from their archives) in
# build/static/, for the FROM scratch image of deploy/container/Containerfile. Without the
# heap counter (ZH_NO_HEAP_COUNT: it forwards malloc with dlsym(RTLD_NEXT), which a static
# libc's own malloc clashes with): zerohttp_heap_allocations_total stays 0. --user/--group
# cannot look names up in an image without NSS: run the image as a numeric user instead.
static:
	@mkdir -p build/static
	@$(MAKE) --no-print-directory BUILD=build/static LDFLAGS="-static -pthread" \
		URING_LIBS=-luring NO_HEAP_COUNT=-DZH_NO_HEAP_COUNT build/static/zerohttpd >build/static/make.log 2>&1 \
		|| { cat build/static/make.log; exit 1; }

# Many instances and their packaging (tests/deploy/, see README "Deploy"): three instances
# behind HAProxy through a rolling restart and a SIGKILL under wrk load, the Kubernetes
# manifests against what zerohttpd does, and the container image built and run with podman.
# About a minute.
test-deploy: deps-deploy all static
	ZH_BIN=$(DAEMON) ZH_STATIC_BIN=build/static/zerohttpd /usr/bin/python3 tests/deploy/run.py

# the README's two commands on a fresh Debian 12 (debootstrap chroot); see the script's header
fresh-check:
	@scripts/fresh-check.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/zerohttp.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	set -e; for so in $(notdir $(LIB_SO)); do \
		install -m 755 $(BUILD)/$$so $(DESTDIR)$(PREFIX)/lib/$$so.$(VERSION); \
		ln -sf $$so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$$so.0; \
		ln -sf $$so.0 $(DESTDIR)$(PREFIX)/lib/$$so; done
	$(foreach m,$(PC_FILES:.pc=),$(call pc_text,$(m),$(PREFIX)) \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/$(m).pc;)
	install -m 755 $(DAEMON) $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 644 docs/zerohttpd.8 $(DESTDIR)$(PREFIX)/share/man/man8/

clean:
	rm -rf build $(PC_FILES)

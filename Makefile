# zerohttp — one plain Makefile. Warnings and sanitizer flags live here and only here.
#   make            build/libzerohttp.a, build/libzerohttp.so, build/zerohttpd, zerohttp.pc
#   make run        build, then serve the demo routes on 127.0.0.1:8080
#   make test       unit tests (Criterion), integration tests, zero-allocation test
#   make asan       the same tests against an ASan+UBSan build
#   make ubsan      the same tests against a UBSan-only build (malloc shim still on)
#   make memcheck   the integration tests with every server under valgrind memcheck
#   make fuzz       each libFuzzer target for FUZZ_SECONDS (default 60) under ASan+UBSan
#   make soak       the long load tests (10k connections, slowloris, slow readers) and a
#                   SOAK_MINUTES (default 10) mixed-load soak
#   make bench      wrk against /plaintext and /json (c=64, and pipelined depth 16)
#   make fresh-check as root: `make run` and `make test` from a clean clone of HEAD in a
#                   fresh Debian 12 minbase chroot with only gcc make libc6-dev git
#                   ca-certificates (scripts/fresh-check.sh; about 6 minutes, not in CI)
#   make install PREFIX=/usr/local

CC      ?= gcc
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
# the library's link dependencies: protobuf-c (zh_send_protobuf) and zlib (gzip middleware)
PB_LIBS   = $(shell pkg-config --libs libprotobuf-c 2>/dev/null || echo -lprotobuf-c) -lz
# and crypt(3) for the auth middleware's Basic check (libxcrypt: crypt_rn, crypt_checksalt)
PB_LIBS  += -lcrypt

SRCS    := src/pool.c src/parse.c src/response.c src/body.c src/conn.c src/loop.c src/server.c \
	   src/static.c src/protobuf.c src/json.c src/dtoa.c src/metrics.c src/middleware.c src/mw_gzip.c \
	   src/accesslog.c src/mw_limit.c src/mw_cors.c src/mw_auth.c \
	   src/transport_plain.c src/http1.c src/stream.c
OBJS    := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
PICOBJS := $(SRCS:src/%.c=$(BUILD)/pic/%.o)
HDRS    := include/zerohttp.h src/internal.h src/ext.h src/dtoa.h
VERSION := $(shell sed -n 's/^#define ZH_VERSION "\(.*\)"/\1/p' include/zerohttp.h)

# ASan replaces malloc, so the malloc-counting shim and zerohttpd's own wrapper stay out of
# its builds; UBSan alone leaves malloc alone and keeps both
ASAN    := $(findstring address,$(SANITIZE))
NO_HEAP_COUNT := $(if $(ASAN),-DZH_NO_HEAP_COUNT)

LIB_A   := $(BUILD)/libzerohttp.a
LIB_SO  := $(BUILD)/libzerohttp.so
DAEMON  := $(BUILD)/zerohttpd

UNIT_TESTS := $(BUILD)/tests/test_parse $(BUILD)/tests/test_parse_scalar \
	      $(BUILD)/tests/test_pool $(BUILD)/tests/test_server $(BUILD)/tests/test_dtoa \
	      $(BUILD)/tests/test_json $(BUILD)/tests/test_limit $(BUILD)/tests/test_middleware \
	      $(BUILD)/tests/test_compose $(BUILD)/tests/test_review5 $(BUILD)/tests/test_ext \
	      $(BUILD)/tests/test_transport $(BUILD)/tests/test_proto
SHIM    := $(BUILD)/tests/malloc_count.so

.PHONY: all run test unit integration install-check asan ubsan memcheck fuzz fuzz-replay soak bench \
	install clean deps fresh-check
all: $(LIB_A) $(LIB_SO) $(DAEMON) zerohttp.pc

deps:
	@scripts/deps.sh

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/pic/%.o: src/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fPIC -c $< -o $@
$(BUILD)/obj/protobuf.o $(BUILD)/pic/protobuf.o: CFLAGS += $(PB_CFLAGS)
$(BUILD)/gen/demo.pb-c.c: proto/demo.proto
	@mkdir -p $(@D)
	protoc-c --c_out=$(@D) --proto_path=proto $<

$(LIB_A): $(OBJS)
	$(AR) rcs $@ $^
$(LIB_SO): $(PICOBJS)
	$(CC) -shared -Wl,-soname,libzerohttp.so.0 $(LDFLAGS) -o $@ $^ $(PB_LIBS)
$(DAEMON): cmd/zerohttpd/main.c cmd/zerohttpd/heap_count.c $(BUILD)/gen/demo.pb-c.c $(LIB_A) \
	  include/zerohttp.h
	$(CC) $(CFLAGS) $(PB_CFLAGS) -I$(BUILD)/gen -DZH_DEFAULT_ROOT='"$(CURDIR)/www"' \
		$(NO_HEAP_COUNT) -o $@ $< \
		cmd/zerohttpd/heap_count.c $(BUILD)/gen/demo.pb-c.c $(LIB_A) $(PB_LIBS) $(LDFLAGS)

# pkg-config file for PREFIX; `make install` writes it again for the prefix it installs to
PC_TEXT = 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: zerohttp\nDescription: zero-allocation, zero-copy HTTP/1.1 server library\nVersion: %s\nRequires.private: libprotobuf-c zlib\nLibs: -L$${libdir} -lzerohttp -pthread\nLibs.private: -lcrypt\nCflags: -I$${includedir}\n'
zerohttp.pc: Makefile include/zerohttp.h
	@printf $(PC_TEXT) '$(PREFIX)' '$(VERSION)' > $@

run: deps all
	$(DAEMON) --address 127.0.0.1 --port 8080 --root www

# ---- tests ------------------------------------------------------------------------------
CRIT_CFLAGS = $(shell pkg-config --cflags criterion 2>/dev/null)
CRIT_LIBS   = $(shell pkg-config --libs criterion 2>/dev/null || echo -lcriterion)

$(BUILD)/tests/test_parse: tests/test_parse.c src/parse.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Wno-missing-prototypes $(CRIT_CFLAGS) -o $@ tests/test_parse.c src/parse.c $(CRIT_LIBS) $(LDFLAGS)
$(BUILD)/tests/test_parse_scalar: tests/test_parse.c src/parse.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DZH_NO_SIMD -Wno-missing-prototypes $(CRIT_CFLAGS) -o $@ tests/test_parse.c src/parse.c $(CRIT_LIBS) $(LDFLAGS)
$(BUILD)/tests/%: tests/%.c $(LIB_A) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Wno-missing-prototypes $(CRIT_CFLAGS) -o $@ $< $(LIB_A) $(PB_LIBS) $(CRIT_LIBS) $(LDFLAGS)
# the shared raw-socket client of these four
$(addprefix $(BUILD)/tests/,test_server test_middleware test_compose test_review5 test_ext): \
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

integration: $(DAEMON) $(SHIM) $(BUILD)/tests/json_server $(BUILD)/tests/zh_load
	ZH_BIN=$(DAEMON) ZH_JSON_SERVER=$(BUILD)/tests/json_server ZH_LOAD=$(BUILD)/tests/zh_load \
		ZH_SHIM=$(if $(ASAN),,$(SHIM)) ZH_SANITIZE=$(SANITIZE) python3 tests/integration/run.py

# make install into a scratch prefix, then build the README's example with pkg-config
install-check: all
	@set -e; d=$$(mktemp -d); trap 'rm -rf $$d' EXIT; \
	$(MAKE) --no-print-directory -s install PREFIX=$$d >/dev/null; \
	PKG_CONFIG_PATH=$$d/lib/pkgconfig $(CC) -std=c11 -Wall -Wextra -Werror -o $$d/hello \
		examples/hello.c $$(PKG_CONFIG_PATH=$$d/lib/pkgconfig pkg-config --cflags --libs zerohttp) \
		-Wl,-rpath,$$d/lib; \
	test -x $$d/bin/zerohttpd && test -f $$d/lib/libzerohttp.a && test -x $$d/hello; \
	echo "install-check: installed to a scratch prefix; examples/hello.c built with pkg-config"

test: deps all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory install-check
	@$(MAKE) --no-print-directory integration

asan:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=address,undefined OPT=-O1 all unit integration

ubsan:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory BUILD=build/ubsan SANITIZE=undefined OPT=-O1 all unit integration

# ---- hardening: memcheck, fuzzing, soak (issue 6) ----------------------------------------
memcheck: deps all $(BUILD)/tests/json_server
	@scripts/memcheck.sh $(DAEMON) $(BUILD)/tests/json_server

# (fuzz section)
# libFuzzer targets of tests/fuzz/ (clang, ASan+UBSan): each runs FUZZ_SECONDS on a scratch
# copy of its seed corpus (tests/fuzz/corpus/<target>, never written to), FUZZ_JOBS at once.
# `make fuzz-replay` (or FUZZ_SECONDS=0) only replays the seeds: a few seconds.
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 2
FUZZ_TARGETS := parse chunked path range json
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
$(BUILD)/fuzz/fuzz_json: tests/fuzz/fuzz_json.c tests/fuzz/fuzz_common.h src/json.c src/dtoa.c \
	  $(HDRS)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< src/dtoa.c -lm

fuzz:
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
# about 4 minutes), then tests/soak/soak.py: SOAK_MINUTES of mixed load (wrk + abrupt
# clients) that fails unless RSS stays within 1 MiB and fds at 0 growth after warm-up,
# with no unexpected status; it prints its figures and one FAIL line per failed criterion.
SOAK_MINUTES ?= 10
soak: deps all $(BUILD)/tests/zh_load
	ZH_LONG=1 ZH_BIN=$(DAEMON) ZH_LOAD=$(BUILD)/tests/zh_load \
		python3 tests/integration/run.py -k test_27
	python3 tests/soak/soak.py --bin $(DAEMON) --minutes $(SOAK_MINUTES)

bench: deps all $(BUILD)/bench/json_writer
	bench/run.sh $(DAEMON)
	taskset -c 0 $(BUILD)/bench/json_writer
$(BUILD)/bench/json_writer: bench/json_writer.c $(LIB_A) include/zerohttp.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_A) $(PB_LIBS) $(LDFLAGS)

# the README's two commands on a fresh Debian 12 (debootstrap chroot); see the script's header
fresh-check:
	@scripts/fresh-check.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/zerohttp.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/libzerohttp.so.$(VERSION)
	ln -sf libzerohttp.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libzerohttp.so.0
	ln -sf libzerohttp.so.0 $(DESTDIR)$(PREFIX)/lib/libzerohttp.so
	printf $(PC_TEXT) '$(PREFIX)' '$(VERSION)' > $(DESTDIR)$(PREFIX)/lib/pkgconfig/zerohttp.pc
	install -m 755 $(DAEMON) $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build zerohttp.pc

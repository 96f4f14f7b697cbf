# vhdkit — plain GNU make.  `make` builds everything into build/.
#   make test    install what is missing, build (plain, ASan+UBSan, TSan), run the suite
#   make run     install what is missing, build, start vhdkitd in the
#                foreground on ./var/ and print how to call it
#   make demo    a short run of the vhdkit CLI
#   make install install the library, header, pkg-config file, CLI and man
#                page under $(DESTDIR)$(PREFIX) (default /usr/local)
#   make fuzz    build libFuzzer targets and run each for FUZZ_SECONDS
#   make bench   run the benchmarks in bench/ (long)
#   make soak    run the change-tracking model test for a million steps,
#                the VHD Set model test for SET_SOAK_STEPS (default 20000)
#                the threaded stress test for STRESS_SOAK_SECONDS, and the
#                power-loss test with MTCRASH_SOAK_RUNS threaded runs and its
#                whole fault sweep

CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Wshadow -Wvla -Werror -Wno-unused-parameter -Wno-format-truncation
CPPFLAGS += -D_GNU_SOURCE -Iinclude -Icommon -Ilib
ALLCFLAGS = -std=c11 -fPIC -pthread $(WARN) $(CFLAGS) $(EXTRA_CFLAGS)
LDLIBS   += -pthread

VERSION := $(shell sed -n 's/^\#define VHDKIT_VERSION_STRING "\(.*\)"/\1/p' include/vhdkit.h)
SONAME  := libvhdkit.so.0
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

B ?= build

COMMON_SRC := $(wildcard common/*.c)
LIB_SRC    := $(wildcard lib/*.c lib/*/*.c) $(COMMON_SRC)
CLI_SRC    := $(wildcard cli/*.c)
UNIT_SRC   := $(wildcard tests/unit/test-*.c)
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz-*.c)
# Fuzz targets of vhdkitd's decoders: they link the daemon without its
# HTTP server and main (tests/fuzz/daemon-stub.h stands in).
DFUZZ_SRC  := $(wildcard tests/fuzz/fuzz-daemon-*.c)
HELPER_SRC := $(wildcard tests/helpers/*.c)
DAEMON_SRC := $(wildcard daemon/*.c)
DAEMON_PKGS := libmicrohttpd jansson libsystemd libxml-2.0 libcrypt gnutls
# The CLI calls vhdkitd with --connect (cli/remote.c), through libcurl
# loaded with dlopen when it is needed: compiled against its headers,
# not linked (see load_curl).
CLI_PKGS   := libcurl jansson
CLI_LINK_PKGS := jansson

LIB_OBJ  := $(LIB_SRC:%.c=$(B)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(B)/obj/%.o)
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(B)/obj/%.o)
DAEMON_CORE_OBJ := $(filter-out $(B)/obj/daemon/http.o $(B)/obj/daemon/main.o,$(DAEMON_OBJ))
SIM_OBJ  := $(B)/obj/tests/sim/io-sim.o
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
HELPER_BIN := $(HELPER_SRC:tests/helpers/%.c=$(B)/tests/%)
# Benchmark programs that a test runs too (the others are built by their
# bench/*.sh).
BENCH_BIN := $(B)/bench/children
TEST_CPPFLAGS := -Itests/unit -Itests/sim

.PHONY: sweep all deps test run demo asan tsan install fuzz bench soak clean
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/fuzz-%.c=$(B)/tests/fuzz-%-replay)
all: $(B)/libvhdkit.a $(B)/$(SONAME) $(B)/libvhdkit.so $(B)/vhdkit.pc $(B)/vhdkit $(B)/vhdkitd \
     $(B)/tests/vhdkit-sim $(UNIT_BIN) $(HELPER_BIN) $(FUZZ_REPLAY) $(BENCH_BIN)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(TEST_CPPFLAGS) $(EXTRA_CPPFLAGS) $(ALLCFLAGS) -MMD -MP -c $< -o $@

$(B)/libvhdkit.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The shared library exports only vhdkit_* (lib/libvhdkit.map).
$(B)/$(SONAME): $(LIB_OBJ) lib/libvhdkit.map
	$(CC) -shared $(ALLCFLAGS) $(LDFLAGS) -Wl,-soname,$(SONAME) \
	  -Wl,--version-script=lib/libvhdkit.map -o $@ $(LIB_OBJ) $(LDLIBS)

$(B)/libvhdkit.so: $(B)/$(SONAME)
	ln -sf $(SONAME) $@

$(B)/vhdkit.pc: vhdkit.pc.in include/vhdkit.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

$(CLI_OBJ): EXTRA_CPPFLAGS = $(shell pkg-config --cflags $(CLI_PKGS))
$(B)/vhdkit: $(CLI_OBJ) $(B)/libvhdkit.a
	$(CC) $(ALLCFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJ) $(B)/libvhdkit.a $(shell pkg-config --libs $(CLI_LINK_PKGS)) -ldl $(LDLIBS)

# The service (daemon/, docs/vhdkitd.8.md).
$(DAEMON_OBJ): EXTRA_CPPFLAGS = $(shell pkg-config --cflags $(DAEMON_PKGS))
$(B)/vhdkitd: $(DAEMON_OBJ) $(B)/libvhdkit.a
	$(CC) $(ALLCFLAGS) $(LDFLAGS) -o $@ $(DAEMON_OBJ) $(B)/libvhdkit.a $(shell pkg-config --libs $(DAEMON_PKGS)) $(LDLIBS)

# The CLI with the io simulator (tests/sim, docs/IO-SIM.md) linked in,
# for the shell tests that set VHDKIT_SIM.  Not installed.
$(B)/tests/vhdkit-sim: $(CLI_OBJ) $(SIM_OBJ) $(B)/libvhdkit.a
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJ) $(SIM_OBJ) $(B)/libvhdkit.a $(shell pkg-config --libs $(CLI_LINK_PKGS)) -ldl $(LDLIBS)

# Unit tests and helpers link the static library and the simulator.
$(B)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(SIM_OBJ) $(B)/libvhdkit.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(TEST_CPPFLAGS) $(ALLCFLAGS) $(LDFLAGS) -o $@ $< $(SIM_OBJ) $(B)/libvhdkit.a $(LDLIBS)

# Helpers that shell tests drive (not tests themselves).
$(B)/tests/%: tests/helpers/%.c $(SIM_OBJ) $(B)/libvhdkit.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(TEST_CPPFLAGS) $(ALLCFLAGS) $(LDFLAGS) -o $@ $< $(SIM_OBJ) $(B)/libvhdkit.a $(LDLIBS)

# Benchmark programs see the public header only, as a user's program does.
$(B)/bench/%: bench/%.c include/vhdkit.h $(B)/libvhdkit.a
	@mkdir -p $(dir $@)
	$(CC) -D_GNU_SOURCE -Iinclude $(ALLCFLAGS) $(LDFLAGS) -o $@ $< $(B)/libvhdkit.a $(LDLIBS)

deps:
	@scripts/install-deps.sh

asan:
	$(MAKE) B=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" LDFLAGS="-fsanitize=address,undefined" all

# ThreadSanitizer: the threaded tests run against this build.
tsan:
	$(MAKE) B=build-tsan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=thread" LDFLAGS="-fsanitize=thread" all

NPROC := $(shell nproc 2>/dev/null || echo 2)
test: deps
	$(MAKE) -j$(NPROC) all
	$(MAKE) -j$(NPROC) asan
	$(MAKE) -j$(NPROC) tsan
	tests/run.sh --build build --asan-build build-asan --tsan-build build-tsan

run: deps
	$(MAKE) -j$(NPROC) all
	scripts/run-daemon.sh

demo: all
	scripts/demo.sh

install: $(B)/$(SONAME) $(B)/libvhdkit.a $(B)/vhdkit $(B)/vhdkitd
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	  $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0755 $(B)/$(SONAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libvhdkit.so
	install -m 0644 $(B)/libvhdkit.a $(DESTDIR)$(LIBDIR)/libvhdkit.a
	install -m 0644 include/vhdkit.h $(DESTDIR)$(INCLUDEDIR)/vhdkit.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' vhdkit.pc.in \
	    > $(DESTDIR)$(PKGCONFIGDIR)/vhdkit.pc
	install -m 0755 $(B)/vhdkit $(DESTDIR)$(BINDIR)/vhdkit
	go-md2man -in docs/vhdkit.1.md -out $(DESTDIR)$(MANDIR)/man1/vhdkit.1
	install -m 0755 $(B)/vhdkitd $(DESTDIR)$(BINDIR)/vhdkitd
	go-md2man -in docs/vhdkitd.8.md -out $(DESTDIR)$(MANDIR)/man8/vhdkitd.8
	sed -e 's|@BINDIR@|$(BINDIR)|g' scripts/vhdkitd.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/vhdkitd.service

# libFuzzer targets: each tests/fuzz/fuzz-NAME.c runs for FUZZ_SECONDS
# (default 30 minutes each) from its seeds; crashers land in
# build-fuzz/crashers-NAME/.  `make test` replays seeds and known crashers
# through $(B)/tests/fuzz-NAME-replay without libFuzzer.
FUZZ_SECONDS ?= 1800
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/fuzz-%.c=%)
fuzz:
	$(MAKE) B=build-fuzz CC=clang WARN="-Wall -Wextra -Wno-unused-parameter -Werror" \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined" \
	  build-fuzz/libvhdkit.a
	$(MAKE) B=build-fuzz CC=clang WARN="-Wall -Wextra -Wno-unused-parameter -Werror" \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined" \
	  $(DAEMON_CORE_OBJ:$(B)/%=build-fuzz/%)
	for n in $(filter-out daemon-%,$(FUZZ_NAMES)); do \
	  clang $(CPPFLAGS) -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined \
	    tests/fuzz/fuzz-$$n.c build-fuzz/libvhdkit.a -pthread -o build-fuzz/fuzz-$$n || exit 1; \
	done
	for n in $(filter daemon-%,$(FUZZ_NAMES)); do \
	  clang $(CPPFLAGS) -Idaemon $(shell pkg-config --cflags $(DAEMON_PKGS)) -std=c11 -O1 -g \
	    -fsanitize=fuzzer,address,undefined tests/fuzz/fuzz-$$n.c $(DAEMON_CORE_OBJ:$(B)/%=build-fuzz/%) \
	    build-fuzz/libvhdkit.a $(shell pkg-config --libs $(DAEMON_PKGS)) -pthread -o build-fuzz/fuzz-$$n || exit 1; \
	done
	scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_NAMES)

$(B)/tests/fuzz-%-replay: tests/fuzz/fuzz-%.c tests/fuzz/replay-main.c $(B)/libvhdkit.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) $(LDFLAGS) -o $@ $< tests/fuzz/replay-main.c $(B)/libvhdkit.a $(LDLIBS)

$(B)/tests/fuzz-daemon-%-replay: tests/fuzz/fuzz-daemon-%.c tests/fuzz/daemon-stub.h tests/fuzz/replay-main.c \
                                 $(DAEMON_CORE_OBJ) $(B)/libvhdkit.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Idaemon $(shell pkg-config --cflags $(DAEMON_PKGS)) $(ALLCFLAGS) $(LDFLAGS) -o $@ $< \
	  tests/fuzz/replay-main.c $(DAEMON_CORE_OBJ) $(B)/libvhdkit.a $(shell pkg-config --libs $(DAEMON_PKGS)) $(LDLIBS)

bench: all
	bench/run.sh
	bench/rct.sh
	bench/set.sh
	bench/threads.sh
	bench/children.sh
	bench/daemon.sh

# The model tests with many more steps (hours on 2 cores; make test
# runs a few thousand), and the threaded stress test for longer.
SOAK_STEPS ?= 1000000
SET_SOAK_STEPS ?= 20000
STRESS_SOAK_SECONDS ?= 1800
MTCRASH_SOAK_RUNS ?= 400
soak: all
	VHDKIT_RCT_MODEL_STEPS=$(SOAK_STEPS) $(B)/tests/test-rct-model
	VHDKIT_SET_MODEL_STEPS=$(SET_SOAK_STEPS) $(B)/tests/test-set-model
	VHDKIT_STRESS_SECONDS=$(STRESS_SOAK_SECONDS) $(B)/tests/test-stress
	VHDKIT_MTCRASH_RUNS=$(MTCRASH_SOAK_RUNS) VHDKIT_MTCRASH_FULL=1 $(B)/tests/test-mt-crash
	VHDKIT_LOAD_SECONDS=300 tests/run.sh --build $(B) daemon/test-daemon-load
	$(MAKE) sweep

# Every crash and fault sweep at every point; make test visits at most
# eight points of each (tests/lib.sh, sweep_points).
SWEEP_TESTS := crash/ rct/test-rct-crash rct/test-rct-merge set/test-set-crash
sweep: all
	VHDKIT_SWEEP=full VHDKIT_TEST_TIMEOUT=5400 tests/run.sh --build $(B) $(SWEEP_TESTS)

clean:
	rm -rf build build-asan build-tsan build-fuzz build-dev

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

# vhdkit — plain GNU make.  `make` builds everything into build/.
#   make test   install what is missing, build (plain and ASan+UBSan), run the suite
#   make run    install what is missing, build, run the demonstration
#   make fuzz   build libFuzzer targets and run each for FUZZ_SECONDS
#   make bench  run the benchmarks in bench/ (long)
#   make soak   run the change-tracking model test for a million steps and
#               the VHD Set model test for SET_SOAK_STEPS (default 20000)

CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Wshadow -Wvla -Werror -Wno-unused-parameter -Wno-format-truncation
CPPFLAGS += -D_GNU_SOURCE -Iinclude -Icommon -Ilib
ALLCFLAGS = -std=c11 -fPIC -pthread $(WARN) $(CFLAGS) $(EXTRA_CFLAGS)
LDLIBS   += -pthread

B ?= build

COMMON_SRC := $(wildcard common/*.c)
LIB_SRC    := $(wildcard lib/*.c lib/*/*.c) $(COMMON_SRC)
CLI_SRC    := $(wildcard cli/*.c)
UNIT_SRC   := $(wildcard tests/unit/test-*.c)
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz-*.c)
HELPER_SRC := $(wildcard tests/helpers/*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(B)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(B)/obj/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
HELPER_BIN := $(HELPER_SRC:tests/helpers/%.c=$(B)/tests/%)

.PHONY: all deps test run asan fuzz bench soak clean
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/fuzz-%.c=$(B)/tests/fuzz-%-replay)
all: $(B)/libvhdkit.a $(B)/libvhdkit.so $(B)/vhdkit $(UNIT_BIN) $(HELPER_BIN) $(FUZZ_REPLAY)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) -MMD -MP -c $< -o $@

$(B)/libvhdkit.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/libvhdkit.so: $(LIB_OBJ)
	$(CC) -shared $(ALLCFLAGS) $(LDFLAGS) -Wl,-soname,libvhdkit.so.0 -o $@ $^ $(LDLIBS)

$(B)/vhdkit: $(CLI_OBJ) $(B)/libvhdkit.a
	$(CC) $(ALLCFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJ) $(B)/libvhdkit.a $(LDLIBS)

$(B)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(B)/libvhdkit.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(B)/libvhdkit.a $(LDLIBS)

# Helpers that shell tests drive (not tests themselves).
$(B)/tests/%: tests/helpers/%.c $(B)/libvhdkit.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) $(LDFLAGS) -o $@ $< $(B)/libvhdkit.a $(LDLIBS)

deps:
	@scripts/install-deps.sh

asan:
	$(MAKE) B=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" LDFLAGS="-fsanitize=address,undefined" all

NPROC := $(shell nproc 2>/dev/null || echo 2)
test: deps
	$(MAKE) -j$(NPROC) all
	$(MAKE) -j$(NPROC) asan
	tests/run.sh --build build --asan-build build-asan

run: deps
	$(MAKE) -j$(NPROC) all
	scripts/demo.sh

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
	for n in $(FUZZ_NAMES); do \
	  clang $(CPPFLAGS) -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined \
	    tests/fuzz/fuzz-$$n.c build-fuzz/libvhdkit.a -pthread -o build-fuzz/fuzz-$$n || exit 1; \
	done
	scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_NAMES)

$(B)/tests/fuzz-%-replay: tests/fuzz/fuzz-%.c tests/fuzz/replay-main.c $(B)/libvhdkit.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) $(LDFLAGS) -o $@ $< tests/fuzz/replay-main.c $(B)/libvhdkit.a $(LDLIBS)

bench: all
	bench/run.sh
	bench/rct.sh
	bench/set.sh

# The change-tracking model test with a million steps (hours on 2 cores;
# make test runs a few thousand).
SOAK_STEPS ?= 1000000
SET_SOAK_STEPS ?= 20000
soak: all
	VHDKIT_RCT_MODEL_STEPS=$(SOAK_STEPS) $(B)/tests/test-rct-model
	VHDKIT_SET_MODEL_STEPS=$(SET_SOAK_STEPS) $(B)/tests/test-set-model

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

# expertcache top-level build.  `make` builds libexpertcache and the CLI into
# build/; `make test` installs what is missing, builds and runs every test;
# `make run` generates code with the bundled model.
#
#   make SAN=1        ASan+UBSan build (into build/san)
#   make V=1          show commands

SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	    -fno-sanitize-recover=undefined
OPT := -O1
else
BUILD ?= build
SANFLAGS :=
OPT := -O2
endif

CC ?= cc
CLANG ?= $(shell command -v clang 2>/dev/null)
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
PYTHON ?= build/venv/bin/python

CFLAGS_COMMON := $(OPT) -g -std=gnu11 -Wall -Wextra -Wno-unused-parameter \
	-Wshadow -Wstrict-prototypes -fPIC -pthread \
	-Iuserspace/include -Iuserspace/lib $(SANFLAGS)
CFLAGS += $(CFLAGS_COMMON)
LDLIBS := -ljansson -lpcre2-8 -luring -lnuma -lm -lpthread
LDFLAGS += $(SANFLAGS) -pthread

ISA_AVX2 := -mavx2 -mfma -mf16c
ISA_AVX512 := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRCS := $(sort $(wildcard userspace/lib/*.c userspace/lib/*/*.c))
CLI_SRCS := $(sort $(wildcard userspace/cli/*.c))
TEST_SRCS := $(sort $(wildcard tests/unit/test_*.c))
TOOL_SRCS := $(sort $(wildcard tests/tools/*.c))
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tests/tools/%)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)

LIB := $(BUILD)/libexpertcache.a
CLI := $(BUILD)/expertcache

.PHONY: all lib cli tests fuzz deps venv test test-unit test-ref test-fuzz \
	run clean format help

all: $(LIB) $(CLI) $(TEST_BINS) $(TOOL_BINS)

lib: $(LIB)
cli: $(CLI)
tests: $(TEST_BINS)

$(BUILD)/obj/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(ISA_AVX2) -MMD -MP -c $< -o $@

$(BUILD)/obj/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(ISA_AVX512) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(CLI): $(CLI_OBJS) $(LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(CLI_OBJS) $(LIB) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/ec_test.h $(LIB)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(LIB) $(LDLIBS)

# Helper programs the script tests drive (e.g. dequantise a GGUF tensor).
$(BUILD)/tests/tools/%: tests/tools/%.c $(LIB)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# libFuzzer targets: clang only, always with ASan/UBSan, into build/fuzz.
FUZZ_CFLAGS := -O1 -g -std=gnu11 -fsanitize=fuzzer,address,undefined \
	-Iuserspace/include -Iuserspace/lib -pthread
FUZZ_LIB_SRCS := $(filter-out userspace/lib/cpu/%,$(LIB_SRCS))
fuzz: $(FUZZ_BINS)
build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRCS)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB_SRCS) $(LDLIBS)

deps:
	$(Q)bash tools/install-deps.sh

venv:
	$(Q)bash tools/setup-venv.sh

# The README's test command: install, build (plain and sanitized), run all.
test: deps venv
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory SAN=1 all
	$(Q)$(MAKE) --no-print-directory fuzz
	$(Q)bash tests/run-tests.sh

format:
	clang-format -i $(LIB_SRCS) $(CLI_SRCS) $(TEST_SRCS) userspace/include/*.h

clean:
	rm -rf build/obj build/san build/tests build/fuzz $(LIB) $(CLI)

help:
	@sed -n '1,8p' Makefile

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d)

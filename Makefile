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
LDLIBS := -ljansson -lpcre2-8 -licuuc -luring -lnuma -lm -lpthread
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

$(BUILD)/tests/%: tests/unit/%.c tests/unit/ec_test.h tests/unit/cpu_test_util.h $(LIB)
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
FUZZ_LIB_SRCS := $(filter-out userspace/lib/cpu/% userspace/lib/cuda/%,$(LIB_SRCS))
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

# The README's first command: install, build, generate with the bundled model
# (fixed prompt and seed, so the output is the same every time).
RUN_PROMPT ?= models/demo-prompt.py
RUN_ARGS ?= -n 120 --temp 0.6 --top-p 0.9 --seed 1 --repeat-penalty 1.1
run: deps
	$(Q)$(MAKE) --no-print-directory $(CLI)
	$(Q)$(CLI) run -f $(RUN_PROMPT) $(RUN_ARGS) --stats-json build/run-stats.json
	$(Q)echo "stats: {$$(grep -oE '"(prompt_tokens|generated_tokens|prompt_tok_per_s|decode_tok_per_s|peak_rss_bytes|backend)":[^,}]*' build/run-stats.json | paste -sd, | sed 's/,/, /g')} (all fields: build/run-stats.json)"

format:
	clang-format -i $(LIB_SRCS) $(CLI_SRCS) $(TEST_SRCS) userspace/include/*.h

clean:
	rm -rf build/obj build/san build/tests build/fuzz build/emu $(LIB) $(CLI)

help:
	@sed -n '1,8p' Makefile

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d)

# ---- kernel module expertcache.ko (docs/MODULE.md) --------------------------
# make module | install-module | test-module (boots the module under QEMU)
-include tests/module/module.mk

# ---- CUDA backend libexpertcache_cuda.so (docs/CUDA.md) ---------------------
# make cuda | test-gpu (on an NVIDIA GPU); `all` builds it when nvcc exists,
# and always builds the kernels against the CPU emulation (make emu,
# kernels/emu/README.md) for tests/gpu/test_cuda_emu.sh
-include kernels/cuda.mk

# ---- BPF: USDT probe consumers and block/io_uring latency (docs/BPF.md) ----
# bpf/*.bpf.c -> build/bpf/*.skel.h (clang -target bpf, bpftool gen skeleton)
# and the loaders in bpf/*.c, linked into the CLI with libbpf.  Optional:
# without clang, bpftool or libbpf-dev the loaders build as stubs and
# `expertcache trace` says what to install.  vmlinux.h comes from the
# running kernel's BTF, else bpf/vmlinux_min.h (the few types we use).
EC_BPF_OUT := build/bpf
EC_BPFTOOL := $(shell command -v bpftool 2>/dev/null || ls /usr/sbin/bpftool 2>/dev/null)
EC_BPF_LOADERS := bpf/bpf_env.c bpf/expert_traffic.c bpf/tier_latency.c
EC_BPF_LOADER_OBJS := $(EC_BPF_LOADERS:%.c=$(BUILD)/obj/%.o)
EC_BPF_ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
EC_BPF_CFLAGS := -target bpf -g -O2 -mcpu=v3 -Wall -D__TARGET_ARCH_$(EC_BPF_ARCH) \
	-I$(EC_BPF_OUT) -Ibpf -I/usr/include/$(shell $(CC) -dumpmachine)
ifneq ($(and $(CLANG),$(EC_BPFTOOL),$(wildcard /usr/include/bpf/libbpf.h)),)
$(EC_BPF_OUT)/vmlinux.h:
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
	$(Q)if [ -r /sys/kernel/btf/vmlinux ]; then \
		$(EC_BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c >$@.tmp; \
	else cp bpf/vmlinux_min.h $@.tmp; fi && mv $@.tmp $@

$(EC_BPF_OUT)/%.bpf.o: bpf/%.bpf.c bpf/%.h $(EC_BPF_OUT)/vmlinux.h
	@echo "  BPF     $<"
	$(Q)$(CLANG) $(EC_BPF_CFLAGS) -c $< -o $@

$(EC_BPF_OUT)/%.skel.h: $(EC_BPF_OUT)/%.bpf.o
	@echo "  SKEL    $@"
	$(Q)$(EC_BPFTOOL) gen skeleton $< >$@.tmp && mv $@.tmp $@

.SECONDARY: $(EC_BPF_OUT)/expert_traffic.bpf.o $(EC_BPF_OUT)/tier_latency.bpf.o
$(EC_BPF_LOADER_OBJS): CFLAGS += -DEC_HAVE_BPF -I$(EC_BPF_OUT)
$(BUILD)/obj/bpf/expert_traffic.o: $(EC_BPF_OUT)/expert_traffic.skel.h
$(BUILD)/obj/bpf/tier_latency.o: $(EC_BPF_OUT)/tier_latency.skel.h
LDLIBS += -lbpf -lelf
endif
$(EC_BPF_LOADER_OBJS): CFLAGS += -Ibpf
$(CLI_OBJS): CFLAGS += -Ibpf
$(CLI): $(EC_BPF_LOADER_OBJS)
CLI_OBJS += $(EC_BPF_LOADER_OBJS)
LDLIBS += -lz
-include $(EC_BPF_LOADER_OBJS:.o=.d)

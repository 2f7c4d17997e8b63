# CUDA backend build, included by the top-level Makefile (docs/CUDA.md).
#
#   build/libexpertcache_cuda.so   kernels/*.cu, cudart static, cuBLAS;
#                                  dlopen()ed by userspace/lib/cuda/loader.c
#   build/tests/gpu/*              tests/gpu/*.c (plain C: CPU references
#                                  always, GPU checks when a device exists)
#
#   make cuda                      the shared object and the GPU tests
#   make test-gpu                  build, then run tests/gpu on this machine
#   make CUDA_ARCHS=90 cuda        machine code for fewer GPUs (faster build)
#   make emu                       the same kernels built with g++ against
#                                  the CPU emulation (kernels/emu), into
#                                  build/emu/libexpertcache_cuda.so
#                                  (SAN=1: build/san/emu/...)
#
# `make all` builds the shared object only when nvcc exists, so machines
# without CUDA build and test everything else unchanged; it always builds
# the emulated one, which tests/gpu/test_cuda_emu.sh runs the GPU tests on.

CUDA_ARCHS ?= 80 86 89 90
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_SO := build/libexpertcache_cuda.so
CUDA_SRCS := $(sort $(wildcard kernels/*.cu))
CUDA_OBJS := $(CUDA_SRCS:kernels/%.cu=build/cuda/%.o)
CUDA_HDRS := $(wildcard kernels/*.cuh) userspace/lib/cuda/cuda_plugin.h \
	userspace/include/ec_backend.h userspace/include/ec_backend_cuda.h \
	userspace/include/ec_infer.h userspace/include/ec_model.h \
	userspace/include/ec_tensor.h userspace/include/ec_policy.h
# machine code for each arch, plus PTX of the newest for later GPUs
NVCC_GENCODE := $(foreach a,$(CUDA_ARCHS),-gencode=arch=compute_$(a),code=sm_$(a)) \
	-gencode=arch=compute_$(lastword $(CUDA_ARCHS)),code=compute_$(lastword $(CUDA_ARCHS))
NVCC_FLAGS := -O3 -std=c++17 -lineinfo $(NVCC_GENCODE) \
	-Xcompiler -fPIC,-fvisibility=hidden,-Wall \
	-Iuserspace/include -Iuserspace/lib

# a change of CUDA_ARCHS rebuilds everything: the stamp holds the last set
CUDA_STAMP := build/cuda/archs
ifneq ($(NVCC),)
$(shell mkdir -p build/cuda; [ "$$(cat $(CUDA_STAMP) 2>/dev/null)" = \
	"$(strip $(CUDA_ARCHS))" ] || echo "$(strip $(CUDA_ARCHS))" \
	>$(CUDA_STAMP))
endif

GPU_TEST_SRCS := $(sort $(wildcard tests/gpu/*.c))
GPU_TEST_BINS := $(GPU_TEST_SRCS:tests/gpu/%.c=$(BUILD)/tests/gpu/%)

.PHONY: cuda test-gpu emu

ifneq ($(NVCC),)
all: $(CUDA_SO)
endif
all: $(GPU_TEST_BINS)

ifeq ($(NVCC),)
cuda:
	@echo "make cuda: nvcc not found (set NVCC=/path/to/nvcc)"; exit 1
else
cuda: $(CUDA_SO) $(GPU_TEST_BINS) build/cuda/emu_selftest
endif

build/cuda/%.o: kernels/%.cu $(CUDA_HDRS) $(CUDA_STAMP)
	@mkdir -p $(dir $@)
	@echo "  NVCC    $<"
	$(Q)$(NVCC) $(NVCC_FLAGS) -c $< -o $@

$(CUDA_SO): $(CUDA_OBJS) $(CUDA_STAMP)
	@echo "  NVLD    $@"
	$(Q)$(NVCC) -shared -cudart static $(NVCC_GENCODE) -o $@ $(CUDA_OBJS) \
		-L$(CUDA_HOME)/lib64 -lcublas \
		-Xlinker -rpath,$(CUDA_HOME)/lib64

# the emulation's self-test for a real GPU: it must pass there too
build/cuda/emu_selftest: kernels/emu/test/selftest.cu $(CUDA_STAMP)
	@mkdir -p $(dir $@)
	@echo "  NVCC    $<"
	$(Q)$(NVCC) -O2 -std=c++17 $(NVCC_GENCODE) -o $@ $< \
		-L$(CUDA_HOME)/lib64 -lcublas -Xlinker -rpath,$(CUDA_HOME)/lib64

$(BUILD)/tests/gpu/%: tests/gpu/%.c tests/gpu/gpu_test.h \
		tests/unit/ec_test.h $(LIB)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -Itests/unit -Itests/gpu -o $@ $< $(LIB) $(LDLIBS)

test-gpu: cuda
	$(Q)bash tests/gpu/run-gpu.sh

# ---- the CPU emulation (kernels/emu/README.md) -----------------------------
# kernels/*.cu compiled by the host C++ compiler against kernels/emu/include
# (cuda_runtime.h, cublas_v2.h, ...) and linked with the emulated runtime.
EMU_DIR := $(BUILD)/emu
EMU_SO := $(EMU_DIR)/libexpertcache_cuda.so
EMU_RT_SRCS := $(sort $(wildcard kernels/emu/*.cc))
EMU_OBJS := $(CUDA_SRCS:kernels/%.cu=$(EMU_DIR)/kernels/%.o) \
	$(EMU_RT_SRCS:kernels/emu/%.cc=$(EMU_DIR)/rt/%.o)
ifeq ($(shell uname -m),x86_64)
EMU_OBJS += $(EMU_DIR)/rt/fiber_x86_64.o
endif
# -ffp-contract=off: no fused multiply-adds, so results do not depend on
# the host's FMA support.  -O2 even under SAN=1: the emulation runs every
# GPU thread, and the sanitizers check optimised code as well.
EMU_CXXFLAGS := -O2 -g -std=c++17 -fPIC -fvisibility=hidden -pthread \
	-Wall -Wno-unknown-pragmas -ffp-contract=off \
	-Ikernels/emu/include -Iuserspace/include -Iuserspace/lib $(SANFLAGS)

EMU_RT_OBJS := $(filter $(EMU_DIR)/rt/%,$(EMU_OBJS))
EMU_SELFTEST := $(EMU_DIR)/emu_selftest

all: $(EMU_SO) $(EMU_SELFTEST)
emu: $(EMU_SO) $(EMU_SELFTEST) $(GPU_TEST_BINS)

# g++'s flow analysis warns on arrays of per-token values that the kernels
# fill and read under the same `t < n` test (nvcc never showed it them).
$(EMU_DIR)/kernels/%.o: kernels/%.cu
	@mkdir -p $(dir $@)
	@echo "  EMUCXX  $<"
	$(Q)$(CXX) $(EMU_CXXFLAGS) -Wno-maybe-uninitialized -MMD -MP -x c++ \
		-c $< -o $@

# The scheduler and fibers are the hot loop: optimised and uninstrumented
# even under SAN=1, telling ASan about stack switches instead.
EMU_FAST := $(EMU_DIR)/rt/sched.o $(EMU_DIR)/rt/fiber.o
ifneq ($(SANFLAGS),)
$(EMU_FAST): EMU_CXXFLAGS += -fno-sanitize=all -DEC_EMU_ASAN
endif

$(EMU_DIR)/rt/%.o: kernels/emu/%.cc
	@mkdir -p $(dir $@)
	@echo "  EMUCXX  $<"
	$(Q)$(CXX) $(EMU_CXXFLAGS) -Wextra -Wno-unused-parameter -MMD -MP \
		-c $< -o $@

$(EMU_DIR)/rt/%.o: kernels/emu/%.S
	@mkdir -p $(dir $@)
	@echo "  AS      $<"
	$(Q)$(CC) -c $< -o $@

# What the emulation promises, checked here and (built by nvcc) on a GPU
$(EMU_DIR)/selftest.o: kernels/emu/test/selftest.cu
	@mkdir -p $(dir $@)
	@echo "  EMUCXX  $<"
	$(Q)$(CXX) $(EMU_CXXFLAGS) -MMD -MP -x c++ -c $< -o $@

$(EMU_SELFTEST): $(EMU_DIR)/selftest.o $(EMU_RT_OBJS)
	@echo "  EMULD   $@"
	$(Q)$(CXX) -o $@ $^ $(SANFLAGS) -pthread -ldl

$(EMU_SO): $(EMU_OBJS)
	@echo "  EMULD   $@"
	$(Q)$(CXX) -shared -o $@ $(EMU_OBJS) $(SANFLAGS) -pthread -ldl \
		-Wl,-z,defs

-include $(EMU_OBJS:.o=.d) $(EMU_DIR)/selftest.d

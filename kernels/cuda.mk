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
#
# `make all` builds the shared object only when nvcc exists, so machines
# without CUDA build and test everything else unchanged.

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

.PHONY: cuda test-gpu

ifneq ($(NVCC),)
all: $(CUDA_SO)
endif
all: $(GPU_TEST_BINS)

ifeq ($(NVCC),)
cuda:
	@echo "make cuda: nvcc not found (set NVCC=/path/to/nvcc)"; exit 1
else
cuda: $(CUDA_SO) $(GPU_TEST_BINS)
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

$(BUILD)/tests/gpu/%: tests/gpu/%.c tests/gpu/gpu_test.h \
		tests/unit/ec_test.h $(LIB)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -Itests/unit -Itests/gpu -o $@ $< $(LIB) $(LDLIBS)

test-gpu: cuda
	$(Q)bash tests/gpu/run-gpu.sh

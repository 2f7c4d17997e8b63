/* SPDX-License-Identifier: MIT */
/*
 * <cuda_runtime.h> of the CPU emulation (kernels/emu/README.md): the
 * runtime API, device code built-ins and EC_LAUNCH, so the kernels build
 * unchanged with the host C++ compiler.
 */
#ifndef EC_EMU_CUDA_RUNTIME_H
#define EC_EMU_CUDA_RUNTIME_H

#include "cuda_runtime_api.h"
#include "ec_emu_launch.h"
#include "ec_emu_device.h"

#endif

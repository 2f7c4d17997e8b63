/* SPDX-License-Identifier: MIT */
/* Writing float32 arrays as NumPy .npy files (format version 1.0). */
#ifndef EC_NPY_H
#define EC_NPY_H

#include <stdint.h>

/* Write data (rows, cols) float32 C-order to path.  0 or -errno. */
int ec_npy_write_f32(const char *path, const float *data, uint64_t rows,
		     uint64_t cols);

#endif

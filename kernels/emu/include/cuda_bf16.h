/* SPDX-License-Identifier: MIT */
/*
 * __nv_bfloat16 and __nv_bfloat162 for the CPU emulation: the high 16 bits
 * of a float, conversions rounded to nearest even as on the GPU.
 */
#ifndef EC_EMU_CUDA_BF16_H
#define EC_EMU_CUDA_BF16_H

#include <stdint.h>
#include <string.h>

#include "cuda_fp16.h"

static inline unsigned short ec_emu_f32_to_bf16(float f)
{
	uint32_t x;

	memcpy(&x, &f, 4);
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return 0x7fff;				/* NaN */
	return (unsigned short)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

static inline float ec_emu_bf16_to_f32(unsigned short b)
{
	uint32_t x = (uint32_t)b << 16;
	float f;

	memcpy(&f, &x, 4);
	return f;
}

struct __nv_bfloat16_raw {
	unsigned short x;
};

struct alignas(2) __nv_bfloat16 {
	unsigned short __x;

	__nv_bfloat16() = default;
	__nv_bfloat16(const __nv_bfloat16_raw &r) : __x(r.x)
	{
	}
	__nv_bfloat16(float f) : __x(ec_emu_f32_to_bf16(f))
	{
	}
	__nv_bfloat16(double d) : __x(ec_emu_f32_to_bf16((float)d))
	{
	}
	__nv_bfloat16(int i) : __x(ec_emu_f32_to_bf16((float)i))
	{
	}
	__nv_bfloat16 &operator=(const __nv_bfloat16_raw &r)
	{
		__x = r.x;
		return *this;
	}
	operator __nv_bfloat16_raw() const
	{
		return __nv_bfloat16_raw{ __x };
	}
	operator float() const
	{
		return ec_emu_bf16_to_f32(__x);
	}
};

struct alignas(4) __nv_bfloat162 {
	__nv_bfloat16 x, y;
};

typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;

static inline __nv_bfloat16 ec_emu_mkbf16(unsigned short bits)
{
	return __nv_bfloat16(__nv_bfloat16_raw{ bits });
}

static inline float __bfloat162float(__nv_bfloat16 b)
{
	return ec_emu_bf16_to_f32(b.__x);
}

static inline __nv_bfloat16 __float2bfloat16(float f)
{
	return ec_emu_mkbf16(ec_emu_f32_to_bf16(f));
}

static inline __nv_bfloat16 __float2bfloat16_rn(float f)
{
	return __float2bfloat16(f);
}

static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b)
{
	return b.__x;
}

static inline short __bfloat16_as_short(__nv_bfloat16 b)
{
	return (short)b.__x;
}

static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u)
{
	return ec_emu_mkbf16(u);
}

static inline __nv_bfloat16 __short_as_bfloat16(short s)
{
	return ec_emu_mkbf16((unsigned short)s);
}

static inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 a,
						__nv_bfloat16 b)
{
	return __nv_bfloat162{ a, b };
}

static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b)
{
	return __nv_bfloat162{ __float2bfloat16(a), __float2bfloat16(b) };
}

static inline __nv_bfloat162 __float22bfloat162_rn(float2 f)
{
	return __floats2bfloat162_rn(f.x, f.y);
}

static inline float2 __bfloat1622float2(__nv_bfloat162 b)
{
	return make_float2(__bfloat162float(b.x), __bfloat162float(b.y));
}

static inline float __low2float(__nv_bfloat162 b)
{
	return __bfloat162float(b.x);
}

static inline float __high2float(__nv_bfloat162 b)
{
	return __bfloat162float(b.y);
}

static inline __nv_bfloat16 __hadd(__nv_bfloat16 a, __nv_bfloat16 b)
{
	return __float2bfloat16(__bfloat162float(a) + __bfloat162float(b));
}

static inline __nv_bfloat16 __hmul(__nv_bfloat16 a, __nv_bfloat16 b)
{
	return __float2bfloat16(__bfloat162float(a) * __bfloat162float(b));
}

static inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b,
				   __nv_bfloat16 c)
{
	return __float2bfloat16((float)((double)__bfloat162float(a) *
						__bfloat162float(b) +
					__bfloat162float(c)));
}

static inline __nv_bfloat162 __hfma2(__nv_bfloat162 a, __nv_bfloat162 b,
				     __nv_bfloat162 c)
{
	return __nv_bfloat162{ __hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y) };
}

static inline __nv_bfloat162 __hmul2(__nv_bfloat162 a, __nv_bfloat162 b)
{
	return __nv_bfloat162{ __hmul(a.x, b.x), __hmul(a.y, b.y) };
}

static inline __nv_bfloat162 __hadd2(__nv_bfloat162 a, __nv_bfloat162 b)
{
	return __nv_bfloat162{ __hadd(a.x, b.x), __hadd(a.y, b.y) };
}

#endif

/* SPDX-License-Identifier: MIT */
/*
 * __half and __half2 for the CPU emulation: storage of IEEE binary16 bits,
 * conversions rounded to nearest even (bit-exact with the GPU's), and the
 * arithmetic intrinsics computed in float and rounded once.
 */
#ifndef EC_EMU_CUDA_FP16_H
#define EC_EMU_CUDA_FP16_H

#include <stdint.h>
#include <string.h>

#include "vector_types.h"

static inline unsigned short ec_emu_f32_to_f16(float f)
{
	uint32_t x, ax, sign, r, rem;

	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000u;
	ax = x & 0x7fffffffu;
	if (ax > 0x7f800000u)
		return 0x7fff;				/* NaN */
	if (ax >= 0x477ff000u)
		return (unsigned short)(sign | 0x7c00u); /* rounds to inf */
	if (ax < 0x38800000u) {				/* half subnormal */
		uint32_t m = (ax & 0x7fffffu) | 0x800000u, shift, half;

		if (ax < 0x33000000u)
			return (unsigned short)sign;
		shift = 126 - (ax >> 23);
		half = 1u << (shift - 1);
		r = m >> shift;
		rem = m & ((1u << shift) - 1);
		if (rem > half || (rem == half && (r & 1)))
			r++;
		return (unsigned short)(sign | r);
	}
	r = (ax - 0x38000000u) >> 13;
	rem = ax & 0x1fffu;
	if (rem > 0x1000u || (rem == 0x1000u && (r & 1)))
		r++;
	return (unsigned short)(sign | r);
}

static inline float ec_emu_f16_to_f32(unsigned short h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f;
	uint32_t m = h & 0x3ffu, x;
	float f;

	if (e == 0) {
		f = (float)m * 5.9604644775390625e-8f;	/* m * 2^-24 */
		return sign ? -f : f;
	}
	if (e == 31)
		x = sign | 0x7f800000u | (m << 13);
	else
		x = sign | ((e + 112) << 23) | (m << 13);
	memcpy(&f, &x, 4);
	return f;
}

struct __half_raw {
	unsigned short x;
};

struct alignas(2) __half {
	unsigned short __x;

	__half() = default;
	__half(const __half_raw &r) : __x(r.x)
	{
	}
	__half(float f) : __x(ec_emu_f32_to_f16(f))
	{
	}
	__half(double d) : __x(ec_emu_f32_to_f16((float)d))
	{
	}
	__half(int i) : __x(ec_emu_f32_to_f16((float)i))
	{
	}
	__half(unsigned int i) : __x(ec_emu_f32_to_f16((float)i))
	{
	}
	__half(long long i) : __x(ec_emu_f32_to_f16((float)i))
	{
	}
	__half(unsigned long long i) : __x(ec_emu_f32_to_f16((float)i))
	{
	}
	__half &operator=(const __half_raw &r)
	{
		__x = r.x;
		return *this;
	}
	operator __half_raw() const
	{
		return __half_raw{ __x };
	}
	operator float() const
	{
		return ec_emu_f16_to_f32(__x);
	}
};

struct alignas(4) __half2 {
	__half x, y;
};

typedef __half half;
typedef __half2 half2;

static inline __half ec_emu_mkhalf(unsigned short bits)
{
	return __half(__half_raw{ bits });
}

static inline float __half2float(__half h)
{
	return ec_emu_f16_to_f32(h.__x);
}

static inline __half __float2half(float f)
{
	return ec_emu_mkhalf(ec_emu_f32_to_f16(f));
}

static inline __half __float2half_rn(float f)
{
	return __float2half(f);
}

static inline __half __double2half(double d)
{
	return __float2half((float)d);
}

static inline __half __int2half_rn(int i)
{
	return __float2half((float)i);
}

static inline int __half2int_rz(__half h)
{
	return (int)__half2float(h);
}

static inline unsigned short __half_as_ushort(__half h)
{
	return h.__x;
}

static inline short __half_as_short(__half h)
{
	return (short)h.__x;
}

static inline __half __ushort_as_half(unsigned short u)
{
	return ec_emu_mkhalf(u);
}

static inline __half __short_as_half(short s)
{
	return ec_emu_mkhalf((unsigned short)s);
}

static inline __half2 __halves2half2(__half a, __half b)
{
	return __half2{ a, b };
}

static inline __half2 make_half2(__half a, __half b)
{
	return __half2{ a, b };
}

static inline __half2 __half2half2(__half a)
{
	return __half2{ a, a };
}

static inline __half2 __float2half2_rn(float f)
{
	return __half2half2(__float2half(f));
}

static inline __half2 __floats2half2_rn(float a, float b)
{
	return __half2{ __float2half(a), __float2half(b) };
}

static inline __half2 __float22half2_rn(float2 f)
{
	return __floats2half2_rn(f.x, f.y);
}

static inline float2 __half22float2(__half2 h)
{
	return make_float2(__half2float(h.x), __half2float(h.y));
}

static inline float __low2float(__half2 h)
{
	return __half2float(h.x);
}

static inline float __high2float(__half2 h)
{
	return __half2float(h.y);
}

static inline __half __low2half(__half2 h)
{
	return h.x;
}

static inline __half __high2half(__half2 h)
{
	return h.y;
}

static inline __half2 __lows2half2(__half2 a, __half2 b)
{
	return __half2{ a.x, b.x };
}

static inline __half2 __highs2half2(__half2 a, __half2 b)
{
	return __half2{ a.y, b.y };
}

#define EC_EMU_H_BINOP(name, expr)                                            \
	static inline __half name(__half a, __half b)                         \
	{                                                                     \
		float x = __half2float(a), y = __half2float(b);               \
		return __float2half(expr);                                    \
	}                                                                     \
	static inline __half2 name##2(__half2 a, __half2 b)                   \
	{                                                                     \
		return __half2{ name(a.x, b.x), name(a.y, b.y) };             \
	}
EC_EMU_H_BINOP(__hadd, x + y)
EC_EMU_H_BINOP(__hsub, x - y)
EC_EMU_H_BINOP(__hmul, x * y)
EC_EMU_H_BINOP(__hmax, x > y ? x : y)
EC_EMU_H_BINOP(__hmin, x < y ? x : y)
#undef EC_EMU_H_BINOP

static inline __half __hdiv(__half a, __half b)
{
	return __float2half(__half2float(a) / __half2float(b));
}

static inline __half2 __h2div(__half2 a, __half2 b)
{
	return __half2{ __hdiv(a.x, b.x), __hdiv(a.y, b.y) };
}

/* the product of two halves is exact in float; one rounding at the end */
static inline __half __hfma(__half a, __half b, __half c)
{
	return __double2half((double)__half2float(a) * __half2float(b) +
			     __half2float(c));
}

static inline __half2 __hfma2(__half2 a, __half2 b, __half2 c)
{
	return __half2{ __hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y) };
}

static inline __half __hneg(__half a)
{
	return ec_emu_mkhalf((unsigned short)(a.__x ^ 0x8000u));
}

static inline __half __habs(__half a)
{
	return ec_emu_mkhalf((unsigned short)(a.__x & 0x7fffu));
}

static inline bool __hisnan(__half a)
{
	return (a.__x & 0x7fffu) > 0x7c00u;
}

static inline bool __hisinf(__half a)
{
	return (a.__x & 0x7fffu) == 0x7c00u;
}

static inline __half operator+(__half a, __half b)
{
	return __hadd(a, b);
}

static inline __half operator-(__half a, __half b)
{
	return __hsub(a, b);
}

static inline __half operator*(__half a, __half b)
{
	return __hmul(a, b);
}

static inline __half operator/(__half a, __half b)
{
	return __hdiv(a, b);
}

static inline __half operator-(__half a)
{
	return __hneg(a);
}

#endif

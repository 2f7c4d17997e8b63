/* SPDX-License-Identifier: MIT */
/*
 * Device code on the CPU: the CUDA qualifiers, the thread/block built-ins,
 * barriers and warp intrinsics (which switch fibers, kernels/emu/sched.cc),
 * atomics (plain read-modify-writes: fibers never preempt each other) and
 * the integer, float and memory intrinsics.  Each GPU thread is a fiber;
 * blocks run one after another, so `__shared__` is static storage.
 */
#ifndef EC_EMU_DEVICE_H
#define EC_EMU_DEVICE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>

#include "vector_types.h"

/* ---- qualifiers -------------------------------------------------------- */

/*
 * Kernels get internal linkage: the static locals (the __shared__ arrays)
 * of a template with external linkage would be COMDAT, which ASan leaves
 * without redzones.  A kernel is only launched from its own file, as
 * without relocatable device code.
 */
#define __global__ static __attribute__((unused))
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
#define __forceinline__ __inline__ __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
/*
 * One copy per kernel is right because blocks run one after another; the
 * scheduler fills it with the NaN pattern before each block (shared.cc).
 */
#define __shared__ static
/* dynamic shared memory (the size given at launch) */
#define EC_SHARED_DYN(type, name) type *name = (type *)ec_emu_dyn_smem()

static constexpr int warpSize = 32;

/* ---- built-ins: set by the scheduler before it resumes a fiber --------- */

extern "C" {
extern uint3 ec_emu_threadIdx, ec_emu_blockIdx;
extern dim3 ec_emu_blockDim, ec_emu_gridDim;

/* a warp-wide operation: blocks until every named live lane is there */
uint64_t ec_emu_warp_op(int op, unsigned int mask, uint64_t v, int arg,
			int width);
/* __syncthreads and its counting forms */
int ec_emu_block_sync(int op, int pred);
unsigned int ec_emu_active_mask(void);
void *ec_emu_dyn_smem(void);
/* stop the kernel with an error (a GPU trap) */
void ec_emu_trap(const char *why) __attribute__((noreturn));
long long ec_emu_clock64(void);
}

#define threadIdx ec_emu_threadIdx
#define blockIdx ec_emu_blockIdx
#define blockDim ec_emu_blockDim
#define gridDim ec_emu_gridDim

enum {
	EC_EMU_SYNCWARP,
	EC_EMU_SHFL_IDX,
	EC_EMU_SHFL_UP,
	EC_EMU_SHFL_DOWN,
	EC_EMU_SHFL_XOR,
	EC_EMU_BALLOT,
	EC_EMU_ANY,
	EC_EMU_ALL,
	EC_EMU_MATCH_ANY,
	EC_EMU_MATCH_ALL,
	EC_EMU_REDUCE_ADD,
	EC_EMU_REDUCE_MIN,
	EC_EMU_REDUCE_MAX,
	EC_EMU_REDUCE_AND,
	EC_EMU_REDUCE_OR,
	EC_EMU_REDUCE_XOR,
	EC_EMU_NR_WARP_OPS,
};

enum {
	EC_EMU_BAR_SYNC,
	EC_EMU_BAR_COUNT,
	EC_EMU_BAR_AND,
	EC_EMU_BAR_OR,
};

/* ---- barriers and warp intrinsics ------------------------------------- */

static inline void __syncthreads(void)
{
	ec_emu_block_sync(EC_EMU_BAR_SYNC, 0);
}

static inline int __syncthreads_count(int pred)
{
	return ec_emu_block_sync(EC_EMU_BAR_COUNT, pred);
}

static inline int __syncthreads_and(int pred)
{
	return ec_emu_block_sync(EC_EMU_BAR_AND, pred);
}

static inline int __syncthreads_or(int pred)
{
	return ec_emu_block_sync(EC_EMU_BAR_OR, pred);
}

static inline void __syncwarp(unsigned int mask = 0xffffffffu)
{
	ec_emu_warp_op(EC_EMU_SYNCWARP, mask, 0, 0, 32);
}

static inline unsigned int __activemask(void)
{
	return ec_emu_active_mask();
}

template <class T> static inline uint64_t ec_emu_bits(T v)
{
	static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
		      "warp intrinsics take values of at most 8 bytes");
	uint64_t u = 0;

	memcpy(&u, &v, sizeof(T));
	return u;
}

template <class T> static inline T ec_emu_from_bits(uint64_t u)
{
	T v;

	memcpy(&v, &u, sizeof(T));
	return v;
}

template <class T>
static inline T __shfl_sync(unsigned int mask, T var, int srcLane,
			    int width = 32)
{
	return ec_emu_from_bits<T>(ec_emu_warp_op(
		EC_EMU_SHFL_IDX, mask, ec_emu_bits(var), srcLane, width));
}

template <class T>
static inline T __shfl_up_sync(unsigned int mask, T var, unsigned int delta,
			       int width = 32)
{
	return ec_emu_from_bits<T>(ec_emu_warp_op(
		EC_EMU_SHFL_UP, mask, ec_emu_bits(var), (int)delta, width));
}

template <class T>
static inline T __shfl_down_sync(unsigned int mask, T var,
				 unsigned int delta, int width = 32)
{
	return ec_emu_from_bits<T>(ec_emu_warp_op(
		EC_EMU_SHFL_DOWN, mask, ec_emu_bits(var), (int)delta, width));
}

template <class T>
static inline T __shfl_xor_sync(unsigned int mask, T var, int laneMask,
				int width = 32)
{
	return ec_emu_from_bits<T>(ec_emu_warp_op(
		EC_EMU_SHFL_XOR, mask, ec_emu_bits(var), laneMask, width));
}

static inline unsigned int __ballot_sync(unsigned int mask, int pred)
{
	return (unsigned int)ec_emu_warp_op(EC_EMU_BALLOT, mask, pred != 0, 0,
					    32);
}

static inline int __any_sync(unsigned int mask, int pred)
{
	return (int)ec_emu_warp_op(EC_EMU_ANY, mask, pred != 0, 0, 32);
}

static inline int __all_sync(unsigned int mask, int pred)
{
	return (int)ec_emu_warp_op(EC_EMU_ALL, mask, pred != 0, 0, 32);
}

template <class T>
static inline unsigned int __match_any_sync(unsigned int mask, T value)
{
	return (unsigned int)ec_emu_warp_op(EC_EMU_MATCH_ANY, mask,
					    ec_emu_bits(value), 0, 32);
}

template <class T>
static inline unsigned int __match_all_sync(unsigned int mask, T value,
					    int *pred)
{
	unsigned int m = (unsigned int)ec_emu_warp_op(
		EC_EMU_MATCH_ALL, mask, ec_emu_bits(value), 0, 32);

	*pred = m != 0;
	return m;
}

#define EC_EMU_REDUCE(name, op, T)                                            \
	static inline T name(unsigned int mask, T value)                      \
	{                                                                     \
		return (T)ec_emu_warp_op(op, mask, (uint64_t)(int64_t)value,  \
					 std::is_signed<T>::value, 32);       \
	}
EC_EMU_REDUCE(__reduce_add_sync, EC_EMU_REDUCE_ADD, unsigned int)
EC_EMU_REDUCE(__reduce_add_sync, EC_EMU_REDUCE_ADD, int)
EC_EMU_REDUCE(__reduce_min_sync, EC_EMU_REDUCE_MIN, unsigned int)
EC_EMU_REDUCE(__reduce_min_sync, EC_EMU_REDUCE_MIN, int)
EC_EMU_REDUCE(__reduce_max_sync, EC_EMU_REDUCE_MAX, unsigned int)
EC_EMU_REDUCE(__reduce_max_sync, EC_EMU_REDUCE_MAX, int)
EC_EMU_REDUCE(__reduce_and_sync, EC_EMU_REDUCE_AND, unsigned int)
EC_EMU_REDUCE(__reduce_or_sync, EC_EMU_REDUCE_OR, unsigned int)
EC_EMU_REDUCE(__reduce_xor_sync, EC_EMU_REDUCE_XOR, unsigned int)
#undef EC_EMU_REDUCE

/* ---- memory ordering, timing, traps ------------------------------------ */

static inline void __threadfence(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static inline void __threadfence_block(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static inline void __threadfence_system(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static inline void __nanosleep(unsigned int ns)
{
	(void)ns;
}

static inline long long clock64(void)
{
	return ec_emu_clock64();
}

static inline void __trap(void)
{
	ec_emu_trap("__trap()");
}

static inline void __brkpt(void)
{
	ec_emu_trap("__brkpt()");
}

/* ---- loads and stores with cache hints: plain accesses here ----------- */

template <class T> static inline T __ldg(const T *p)
{
	return *p;
}
template <class T> static inline T __ldcg(const T *p)
{
	return *p;
}
template <class T> static inline T __ldca(const T *p)
{
	return *p;
}
template <class T> static inline T __ldcs(const T *p)
{
	return *p;
}
template <class T> static inline T __ldlu(const T *p)
{
	return *p;
}
template <class T> static inline T __ldcv(const T *p)
{
	return *p;
}
template <class T> static inline void __stwb(T *p, T v)
{
	*p = v;
}
template <class T> static inline void __stcg(T *p, T v)
{
	*p = v;
}
template <class T> static inline void __stcs(T *p, T v)
{
	*p = v;
}
template <class T> static inline void __stwt(T *p, T v)
{
	*p = v;
}

/* ---- atomics: a fiber is never interrupted between read and write ----- */

#define EC_EMU_ATOMIC(name, T, expr)                                          \
	static inline T name(T *address, T val)                               \
	{                                                                     \
		T old = *address;                                             \
		*address = (expr);                                            \
		return old;                                                   \
	}
#define EC_EMU_ATOMIC_INT(name, expr)                                         \
	EC_EMU_ATOMIC(name, int, expr)                                        \
	EC_EMU_ATOMIC(name, unsigned int, expr)                               \
	EC_EMU_ATOMIC(name, unsigned long long, expr)
EC_EMU_ATOMIC_INT(atomicAdd, old + val)
EC_EMU_ATOMIC(atomicAdd, float, old + val)
EC_EMU_ATOMIC(atomicAdd, double, old + val)
EC_EMU_ATOMIC(atomicSub, int, old - val)
EC_EMU_ATOMIC(atomicSub, unsigned int, old - val)
EC_EMU_ATOMIC_INT(atomicExch, val)
EC_EMU_ATOMIC(atomicExch, float, val)
EC_EMU_ATOMIC_INT(atomicMin, old < val ? old : val)
EC_EMU_ATOMIC(atomicMin, long long, old < val ? old : val)
EC_EMU_ATOMIC_INT(atomicMax, old > val ? old : val)
EC_EMU_ATOMIC(atomicMax, long long, old > val ? old : val)
EC_EMU_ATOMIC_INT(atomicAnd, old & val)
EC_EMU_ATOMIC_INT(atomicOr, old | val)
EC_EMU_ATOMIC_INT(atomicXor, old ^ val)
EC_EMU_ATOMIC(atomicInc, unsigned int, old >= val ? 0 : old + 1)
EC_EMU_ATOMIC(atomicDec, unsigned int,
	      old == 0 || old > val ? val : old - 1)
#undef EC_EMU_ATOMIC_INT
#undef EC_EMU_ATOMIC

template <class T> static inline T atomicCAS(T *address, T compare, T val)
{
	static_assert(std::is_integral<T>::value, "atomicCAS on integers");
	T old = *address;

	if (old == compare)
		*address = val;
	return old;
}

/* ---- bit and integer intrinsics ---------------------------------------- */

static inline int __float_as_int(float x)
{
	int i;

	memcpy(&i, &x, 4);
	return i;
}

static inline unsigned int __float_as_uint(float x)
{
	unsigned int i;

	memcpy(&i, &x, 4);
	return i;
}

static inline float __int_as_float(int i)
{
	float x;

	memcpy(&x, &i, 4);
	return x;
}

static inline float __uint_as_float(unsigned int i)
{
	float x;

	memcpy(&x, &i, 4);
	return x;
}

static inline long long __double_as_longlong(double x)
{
	long long i;

	memcpy(&i, &x, 8);
	return i;
}

static inline double __longlong_as_double(long long i)
{
	double x;

	memcpy(&x, &i, 8);
	return x;
}

static inline int __double2hiint(double x)
{
	return (int)((unsigned long long)__double_as_longlong(x) >> 32);
}

static inline int __double2loint(double x)
{
	return (int)(unsigned int)__double_as_longlong(x);
}

static inline double __hiloint2double(int hi, int lo)
{
	return __longlong_as_double(
		(long long)(((unsigned long long)(unsigned int)hi << 32) |
			    (unsigned int)lo));
}

/* bytes of (y:x) picked by the low 3 bits of each selector nibble */
static inline unsigned int __byte_perm(unsigned int x, unsigned int y,
				       unsigned int s)
{
	unsigned long long t = ((unsigned long long)y << 32) | x;
	unsigned int r = 0;

	for (int n = 0; n < 4; n++)
		r |= (unsigned int)((t >> (8 * ((s >> (4 * n)) & 7))) & 0xff)
		     << (8 * n);
	return r;
}

static inline int __popc(unsigned int x)
{
	return __builtin_popcount(x);
}

static inline int __popcll(unsigned long long x)
{
	return __builtin_popcountll(x);
}

static inline int __clz(int x)
{
	return x ? __builtin_clz((unsigned int)x) : 32;
}

static inline int __clzll(long long x)
{
	return x ? __builtin_clzll((unsigned long long)x) : 64;
}

static inline int __ffs(int x)
{
	return __builtin_ffs(x);
}

static inline int __ffsll(long long x)
{
	return __builtin_ffsll(x);
}

static inline unsigned int __brev(unsigned int x)
{
	unsigned int r = 0;

	for (int i = 0; i < 32; i++)
		r |= ((x >> i) & 1u) << (31 - i);
	return r;
}

static inline unsigned long long __brevll(unsigned long long x)
{
	return ((unsigned long long)__brev((unsigned int)x) << 32) |
	       __brev((unsigned int)(x >> 32));
}

static inline unsigned int __funnelshift_l(unsigned int lo, unsigned int hi,
					   unsigned int shift)
{
	unsigned long long v = ((unsigned long long)hi << 32) | lo;

	return (unsigned int)((v << (shift & 31)) >> 32);
}

static inline unsigned int __funnelshift_lc(unsigned int lo, unsigned int hi,
					    unsigned int shift)
{
	unsigned long long v = ((unsigned long long)hi << 32) | lo;

	return (unsigned int)((v << (shift < 32 ? shift : 32)) >> 32);
}

static inline unsigned int __funnelshift_r(unsigned int lo, unsigned int hi,
					   unsigned int shift)
{
	unsigned long long v = ((unsigned long long)hi << 32) | lo;

	return (unsigned int)(v >> (shift & 31));
}

static inline unsigned int __funnelshift_rc(unsigned int lo, unsigned int hi,
					    unsigned int shift)
{
	unsigned long long v = ((unsigned long long)hi << 32) | lo;

	return (unsigned int)(v >> (shift < 32 ? shift : 32));
}

static inline int __mulhi(int x, int y)
{
	return (int)(((long long)x * y) >> 32);
}

static inline unsigned int __umulhi(unsigned int x, unsigned int y)
{
	return (unsigned int)(((unsigned long long)x * y) >> 32);
}

static inline long long __mul64hi(long long x, long long y)
{
	return (long long)(((__int128)x * y) >> 64);
}

static inline unsigned long long __umul64hi(unsigned long long x,
					    unsigned long long y)
{
	return (unsigned long long)(((unsigned __int128)x * y) >> 64);
}

/* the low 24 bits of each operand, as the hardware takes them */
static inline int __mul24(int x, int y)
{
	return (int)((long long)((x << 8) >> 8) * ((y << 8) >> 8));
}

static inline unsigned int __umul24(unsigned int x, unsigned int y)
{
	return (x & 0xffffffu) * (y & 0xffffffu);
}

static inline unsigned int __sad(int x, int y, unsigned int z)
{
	return z + (unsigned int)(x > y ? (long long)x - y : (long long)y - x);
}

static inline unsigned int __usad(unsigned int x, unsigned int y,
				  unsigned int z)
{
	return z + (x > y ? x - y : y - x);
}

static inline int __hadd(int x, int y)
{
	return (int)(((long long)x + y) >> 1);
}

static inline int __rhadd(int x, int y)
{
	return (int)(((long long)x + y + 1) >> 1);
}

static inline unsigned int __uhadd(unsigned int x, unsigned int y)
{
	return (unsigned int)(((unsigned long long)x + y) >> 1);
}

static inline unsigned int __urhadd(unsigned int x, unsigned int y)
{
	return (unsigned int)(((unsigned long long)x + y + 1) >> 1);
}

/* four 8-bit products summed into c: signed and unsigned */
static inline int __dp4a(int a, int b, int c)
{
	for (int i = 0; i < 4; i++)
		c += (int)(signed char)(a >> (8 * i)) *
		     (int)(signed char)(b >> (8 * i));
	return c;
}

static inline unsigned int __dp4a(unsigned int a, unsigned int b,
				  unsigned int c)
{
	for (int i = 0; i < 4; i++)
		c += ((a >> (8 * i)) & 0xff) * ((b >> (8 * i)) & 0xff);
	return c;
}

static inline int __dp4a(char4 a, char4 b, int c)
{
	return c + a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}

static inline unsigned int __dp4a(uchar4 a, uchar4 b, unsigned int c)
{
	return c + (unsigned int)(a.x * b.x + a.y * b.y + a.z * b.z +
				  a.w * b.w);
}

/* two 16x8-bit products with the low (lo) or high (hi) bytes of b */
static inline int __dp2a_lo(int a, int b, int c)
{
	return c + (int)(short)a * (int)(signed char)b +
	       (int)(short)(a >> 16) * (int)(signed char)(b >> 8);
}

static inline int __dp2a_hi(int a, int b, int c)
{
	return c + (int)(short)a * (int)(signed char)(b >> 16) +
	       (int)(short)(a >> 16) * (int)(signed char)(b >> 24);
}

static inline unsigned int __dp2a_lo(unsigned int a, unsigned int b,
				     unsigned int c)
{
	return c + (a & 0xffff) * (b & 0xff) + (a >> 16) * ((b >> 8) & 0xff);
}

static inline unsigned int __dp2a_hi(unsigned int a, unsigned int b,
				     unsigned int c)
{
	return c + (a & 0xffff) * ((b >> 16) & 0xff) + (a >> 16) * (b >> 24);
}

/* ---- float intrinsics: correctly rounded here (the GPU's fast ones are
 * within a few ulp; code must not depend on either) ------------------- */

static inline float __fadd_rn(float a, float b)
{
	return a + b;
}

static inline float __fsub_rn(float a, float b)
{
	return a - b;
}

static inline float __fmul_rn(float a, float b)
{
	return a * b;
}

static inline float __fdiv_rn(float a, float b)
{
	return a / b;
}

static inline float __fmaf_rn(float a, float b, float c)
{
	return fmaf(a, b, c);
}

static inline float __frcp_rn(float a)
{
	return 1.0f / a;
}

static inline float __fsqrt_rn(float a)
{
	return sqrtf(a);
}

static inline float __frsqrt_rn(float a)
{
	return 1.0f / sqrtf(a);
}

static inline double __dadd_rn(double a, double b)
{
	return a + b;
}

static inline double __dmul_rn(double a, double b)
{
	return a * b;
}

static inline double __fma_rn(double a, double b, double c)
{
	return fma(a, b, c);
}

static inline float __fdividef(float a, float b)
{
	return a / b;
}

static inline float fdividef(float a, float b)
{
	return a / b;
}

/*
 * glibc declares __expf, __logf, ... as its own internal names (not
 * exported), so the fast-math intrinsics are macros for the precise ones.
 */
#define __expf(x) expf(x)
#define __exp10f(x) exp10f(x)
#define __logf(x) logf(x)
#define __log2f(x) log2f(x)
#define __log10f(x) log10f(x)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __tanf(x) tanf(x)
#define __powf(x, y) powf(x, y)
#define __sincosf(x, s, c) sincosf(x, s, c)

static inline float __saturatef(float x)
{
	return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; /* NaN -> 0 */
}

static inline float rsqrtf(float x)
{
	return 1.0f / sqrtf(x);
}

static inline double rsqrt(double x)
{
	return 1.0 / sqrt(x);
}

static inline float rcbrtf(float x)
{
	return 1.0f / cbrtf(x);
}

static inline int __float2int_rn(float x)
{
	return (int)nearbyintf(x);
}

static inline int __float2int_rz(float x)
{
	return (int)x;
}

static inline int __float2int_rd(float x)
{
	return (int)floorf(x);
}

static inline int __float2int_ru(float x)
{
	return (int)ceilf(x);
}

static inline unsigned int __float2uint_rn(float x)
{
	return (unsigned int)nearbyintf(x);
}

static inline unsigned int __float2uint_rz(float x)
{
	return (unsigned int)x;
}

static inline long long __float2ll_rn(float x)
{
	return (long long)nearbyintf(x);
}

static inline float __int2float_rn(int x)
{
	return (float)x;
}

static inline float __uint2float_rn(unsigned int x)
{
	return (float)x;
}

static inline float __ll2float_rn(long long x)
{
	return (float)x;
}

static inline float __double2float_rn(double x)
{
	return (float)x;
}

static inline int __double2int_rn(double x)
{
	return (int)nearbyint(x);
}

/* CUDA's min/max overloads: mixed signedness gives the unsigned type */
template <class A, class B>
static inline typename std::common_type<A, B>::type min(A a, B b)
{
	typedef typename std::common_type<A, B>::type C;

	return (C)a < (C)b ? (C)a : (C)b;
}

template <class A, class B>
static inline typename std::common_type<A, B>::type max(A a, B b)
{
	typedef typename std::common_type<A, B>::type C;

	return (C)a > (C)b ? (C)a : (C)b;
}

static inline float min(float a, float b)
{
	return fminf(a, b);
}

static inline float max(float a, float b)
{
	return fmaxf(a, b);
}

static inline double min(double a, double b)
{
	return fmin(a, b);
}

static inline double max(double a, double b)
{
	return fmax(a, b);
}

#endif

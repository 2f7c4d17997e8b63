/* SPDX-License-Identifier: MIT */
/*
 * CUDA's built-in vector types (float4, int4, char4, ...), dim3 and the
 * make_* constructors, for the CPU emulation.  Alignments are CUDA's, so a
 * misaligned float4 load is undefined behaviour here too (UBSan reports it
 * where a GPU would raise "misaligned address").
 */
#ifndef EC_EMU_VECTOR_TYPES_H
#define EC_EMU_VECTOR_TYPES_H

#define EC_EMU_VEC1(name, T, al)                                              \
	struct alignas(al) name {                                             \
		T x;                                                          \
	};                                                                    \
	static inline constexpr name make_##name(T x)                         \
	{                                                                     \
		return name{ x };                                             \
	}
#define EC_EMU_VEC2(name, T, al)                                              \
	struct alignas(al) name {                                             \
		T x, y;                                                       \
	};                                                                    \
	static inline constexpr name make_##name(T x, T y)                    \
	{                                                                     \
		return name{ x, y };                                          \
	}
#define EC_EMU_VEC3(name, T, al)                                              \
	struct alignas(al) name {                                             \
		T x, y, z;                                                    \
	};                                                                    \
	static inline constexpr name make_##name(T x, T y, T z)               \
	{                                                                     \
		return name{ x, y, z };                                       \
	}
#define EC_EMU_VEC4(name, T, al)                                              \
	struct alignas(al) name {                                             \
		T x, y, z, w;                                                 \
	};                                                                    \
	static inline constexpr name make_##name(T x, T y, T z, T w)          \
	{                                                                     \
		return name{ x, y, z, w };                                    \
	}

EC_EMU_VEC1(char1, signed char, 1)
EC_EMU_VEC2(char2, signed char, 2)
EC_EMU_VEC3(char3, signed char, 1)
EC_EMU_VEC4(char4, signed char, 4)
EC_EMU_VEC1(uchar1, unsigned char, 1)
EC_EMU_VEC2(uchar2, unsigned char, 2)
EC_EMU_VEC3(uchar3, unsigned char, 1)
EC_EMU_VEC4(uchar4, unsigned char, 4)
EC_EMU_VEC2(short2, short, 4)
EC_EMU_VEC4(short4, short, 8)
EC_EMU_VEC2(ushort2, unsigned short, 4)
EC_EMU_VEC4(ushort4, unsigned short, 8)
EC_EMU_VEC1(int1, int, 4)
EC_EMU_VEC2(int2, int, 8)
EC_EMU_VEC3(int3, int, 4)
EC_EMU_VEC4(int4, int, 16)
EC_EMU_VEC1(uint1, unsigned int, 4)
EC_EMU_VEC2(uint2, unsigned int, 8)
EC_EMU_VEC3(uint3, unsigned int, 4)
EC_EMU_VEC4(uint4, unsigned int, 16)
EC_EMU_VEC2(longlong2, long long, 16)
EC_EMU_VEC2(ulonglong2, unsigned long long, 16)
EC_EMU_VEC1(float1, float, 4)
EC_EMU_VEC2(float2, float, 8)
EC_EMU_VEC3(float3, float, 4)
EC_EMU_VEC4(float4, float, 16)
EC_EMU_VEC1(double1, double, 8)
EC_EMU_VEC2(double2, double, 16)

#undef EC_EMU_VEC1
#undef EC_EMU_VEC2
#undef EC_EMU_VEC3
#undef EC_EMU_VEC4

/* Launch dimensions: unset components are 1, as in CUDA. */
struct dim3 {
	unsigned int x, y, z;

	constexpr dim3(unsigned int vx = 1, unsigned int vy = 1,
		       unsigned int vz = 1)
		: x(vx), y(vy), z(vz)
	{
	}
	constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z)
	{
	}
	constexpr operator uint3() const
	{
		return uint3{ x, y, z };
	}
};

#endif

/* SPDX-License-Identifier: MIT */
/*
 * EC_LAUNCH(grid, block, smem, stream, kernel)(args...) for the CPU
 * emulation: the arguments are converted to the kernel's parameter types
 * and copied once (as a launch copies them to the GPU), top-level pointer
 * arguments are checked to be device or mapped memory, and the kernel runs
 * (or is queued, or captured into a graph) once per thread of the grid.
 */
#ifndef EC_EMU_LAUNCH_H
#define EC_EMU_LAUNCH_H

#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda_runtime_api.h"

namespace ec_emu
{
/* Run `body` once per thread of grid x block on `stream` (kernels/emu). */
void launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
	    const char *name, const void *func, std::function<void()> body,
	    bool args_ok);
/* Is p (argument `index` of kernel `name`) usable by device code? */
bool arg_ok(const char *name, int index, const void *p);

template <class T> static inline bool check_arg(const char *name, int i,
						const T &v)
{
	if constexpr (std::is_pointer<T>::value &&
		      !std::is_function<
			      typename std::remove_pointer<T>::type>::value)
		return arg_ok(name, i, (const void *)v);
	return true;
}

template <class Tuple, size_t... I>
static inline bool check_args(const char *name, const Tuple &t,
			      std::index_sequence<I...>)
{
	bool ok = true;

	((ok = check_arg(name, (int)I, std::get<I>(t)) && ok), ...);
	return ok;
}

template <class... P> struct launcher {
	void (*kernel)(P...);
	dim3 grid, block;
	size_t smem;
	cudaStream_t stream;
	const char *name;

	/* parameters by value: arguments convert as in a call to the kernel */
	void operator()(typename std::decay<P>::type... a) const
	{
		std::tuple<typename std::decay<P>::type...> args(
			std::move(a)...);
		void (*k)(P...) = kernel;
		bool ok = check_args(name, args,
				     std::index_sequence_for<P...>{});

		/* each thread gets its own copy of the parameters */
		launch(grid, block, smem, stream, name,
		       reinterpret_cast<const void *>(k),
		       [k, args]() { std::apply(k, args); }, ok);
	}
};

template <class... P>
static inline launcher<P...> make_launcher(dim3 grid, dim3 block,
					   size_t smem, cudaStream_t stream,
					   const char *name, void (*k)(P...))
{
	return launcher<P...>{ k, grid, block, smem, stream, name };
}
} /* namespace ec_emu */

#define EC_LAUNCH(grid, block, smem, stream, ...)                            \
	::ec_emu::make_launcher((grid), (block), (smem), (stream),           \
				#__VA_ARGS__, __VA_ARGS__)

#endif

// SPDX-License-Identifier: MIT
/*
 * The emulated SM: runs a grid's blocks one after another, each GPU thread
 * of a block on its own fiber.  A thread runs until it reaches a barrier
 * (__syncthreads, a warp intrinsic) or returns; the barrier opens when
 * every live thread it names has arrived (a returned thread no longer
 * counts), and the threads it releases run again in lane order.  A block
 * whose threads all wait on barriers that cannot open is a deadlock: the
 * launch fails with a message naming the kernel, block and waiting lanes.
 *
 * This file is built without sanitizers even in SAN=1 builds (it is the
 * emulation's hot loop); with EC_EMU_ASAN it tells ASan when execution
 * moves between the host's stack and the fibers' (struct pool), so the
 * kernels, which are instrumented, run checked.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vector>

#if defined(EC_EMU_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#include "emu.h"
#include "fiber.h"

/* the built-ins device code reads (ec_emu_device.h) */
extern "C" {
uint3 ec_emu_threadIdx, ec_emu_blockIdx;
dim3 ec_emu_blockDim, ec_emu_gridDim;
}

namespace ec_emu
{
namespace
{
enum { RUNNABLE, RUNNING, WAIT_WARP, WAIT_BLOCK, DONE };

/* A context saved on a stack. */
struct context {
	struct ec_emu_ctx ctx;
};

struct fiber {
	struct context c;
	struct ec_emu_stack stack;
	bool fresh;		/* needs a new context (new, or abandoned) */
	uint3 tid;
	uint32_t index, lane, warp;
	int state;
	/* the warp operation or barrier being waited on */
	int op;
	unsigned int mask;
	uint64_t val;
	int arg, width;
	uint64_t result;
};

/* The most threads a block has, so the most fibers a pool needs. */
const unsigned int max_threads = 1024;

/*
 * Fibers of one host thread (ASan ties fake stacks to a thread).  To ASan
 * there are two stacks: the host's and the region of all fiber stacks;
 * only switches between the two are announced (a switch is several times
 * cheaper without), so EC_EMU_ASAN builds must run with ASan's
 * detect_stack_use_after_return off (its default in GCC).
 */
struct pool {
	std::vector<fiber *> f;
	struct ec_emu_stacks stacks;
	struct context host;
	const void *host_lo;
	size_t host_size;
	void *host_fake, *fiber_fake;
};

/* The block being run. */
struct block_run {
	const std::function<void()> *body;
	const char *name;
	struct pool *pool;
	uint32_t n, live, at_barrier;
	std::vector<uint32_t> warp_live, warp_wait;	/* lane masks */
	std::vector<uint32_t> queue;			/* runnable, FIFO */
	uint32_t q_head, q_len;
	fiber *cur;
	struct context *came_from;
	const std::vector<shared_var> *shared;	/* the kernel's statics */
	void *dyn;
	size_t dyn_size;
	int fill;		/* EC_EMU_FILL byte or -1 */
	cudaError_t err;	/* set when the block must stop */
	char why[640];		/* the fault, for the host to report */
};

block_run *g_run;
thread_local pool *t_pool;

/* EC_EMU_STATS=1: what the emulation did, printed at exit */
struct {
	uint64_t grids, blocks, threads, warp_ops, barriers, switches;
} g_stats;

void print_stats(void)
{
	fprintf(stderr, "ec-emu: %llu launches, %llu blocks, %llu threads, "
		"%llu warp operations, %llu __syncthreads, %llu fiber "
		"switches\n", (unsigned long long)g_stats.grids,
		(unsigned long long)g_stats.blocks,
		(unsigned long long)g_stats.threads,
		(unsigned long long)g_stats.warp_ops,
		(unsigned long long)g_stats.barriers,
		(unsigned long long)g_stats.switches);
}

inline void jump(struct context *from, struct context *to)
{
	g_stats.switches++;
#if defined(EC_EMU_ASAN)
	pool *p = g_run->pool;
	bool from_host = from == &p->host, to_host = to == &p->host;

	g_run->came_from = from;
	if (from_host != to_host)
		__sanitizer_start_switch_fiber(
			from_host ? &p->host_fake : &p->fiber_fake,
			to_host ? p->host_lo : p->stacks.base,
			to_host ? p->host_size : p->stacks.bytes);
#endif
	ec_emu_ctx_swap(&from->ctx, &to->ctx);
#if defined(EC_EMU_ASAN)
	p = g_run->pool;
	if ((g_run->came_from == &p->host) != from_host) {
		const void *lo;
		size_t size;

		__sanitizer_finish_switch_fiber(from_host ? p->host_fake
							  : p->fiber_fake,
						&lo, &size);
		if (!from_host) {	/* the host's stack, learnt */
			p->host_lo = lo;
			p->host_size = size;
		}
	}
#endif
}

/* Resume fiber f (RUNNABLE) from context `from`. */
void resume(struct context *from, fiber *f)
{
	f->state = RUNNING;
	g_run->cur = f;
	ec_emu_threadIdx = f->tid;
	jump(from, &f->c);
}

/* The run queue: a ring of n entries (a fiber is queued at most once). */
void push(fiber *f)
{
	block_run *r = g_run;
	uint32_t t = r->q_head + r->q_len++;

	r->queue[t < r->n ? t : t - r->n] = f->index;
}

fiber *pop(void)
{
	block_run *r = g_run;
	uint32_t i;

	if (!r->q_len)
		return NULL;
	i = r->queue[r->q_head];
	if (++r->q_head == r->n)
		r->q_head = 0;
	r->q_len--;
	return r->pool->f[i];
}

/* Make f runnable again; the running fiber just carries on. */
void wake(fiber *f)
{
	if (f == g_run->cur) {
		f->state = RUNNING;
		return;
	}
	f->state = RUNNABLE;
	push(f);
}

const char *op_name(int op)
{
	static const char *const names[] = {
		"__syncwarp",	    "__shfl_sync",	"__shfl_up_sync",
		"__shfl_down_sync", "__shfl_xor_sync",	"__ballot_sync",
		"__any_sync",	    "__all_sync",	"__match_any_sync",
		"__match_all_sync", "__reduce_add_sync", "__reduce_min_sync",
		"__reduce_max_sync", "__reduce_and_sync", "__reduce_or_sync",
		"__reduce_xor_sync",
	};

	return op >= 0 && op < EC_EMU_NR_WARP_OPS ? names[op] : "?";
}

/*
 * Stop the block with a message "kernel ..., block ..., thread ...: why":
 * the running fiber goes back to the host for good (nothing on its stack
 * is ever destroyed, so nothing here allocates).
 */
__attribute__((noreturn, format(printf, 2, 3))) void
stop(cudaError_t e, const char *fmt, ...)
{
	block_run *r = g_run;
	const fiber *f = r->cur;
	va_list ap;
	int n;

	n = snprintf(r->why, sizeof(r->why), "kernel %s, block (%u,%u,%u), "
		     "thread (%u,%u,%u): ", r->name, ec_emu_blockIdx.x,
		     ec_emu_blockIdx.y, ec_emu_blockIdx.z, f->tid.x, f->tid.y,
		     f->tid.z);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(r->why))
		vsnprintf(r->why + n, sizeof(r->why) - (size_t)n, fmt, ap);
	va_end(ap);
	r->err = e;
	jump(&r->cur->c, &r->pool->host);
	abort();	/* an abandoned fiber is never resumed */
}

/* The value lane src gave to the operation, or me's own if src is not in
 * the group (CUDA leaves that undefined). */
static inline uint64_t val_of(fiber *const *lanes, uint32_t g, uint32_t src,
			      const fiber *me)
{
	return src < 32 && (g >> src & 1) ? lanes[src]->val : me->val;
}

/* The result of me's warp operation; lanes[i] is lane i when g has bit i */
uint64_t warp_result(fiber *const *lanes, uint32_t g, const fiber *me)
{
	uint32_t lane = me->lane, w = (uint32_t)me->width, arg = me->arg;
	uint64_t r = 0;
	bool first = true;

	switch (me->op) {
	case EC_EMU_SYNCWARP:
		return 0;
	case EC_EMU_SHFL_IDX:
		return val_of(lanes, g, (lane & ~(w - 1)) + (arg & (w - 1)), me);
	case EC_EMU_SHFL_UP:
		if ((lane & (w - 1)) < arg)
			return me->val;
		return val_of(lanes, g, lane - arg, me);
	case EC_EMU_SHFL_DOWN:
		if ((lane & (w - 1)) + arg >= w)
			return me->val;
		return val_of(lanes, g, lane + arg, me);
	case EC_EMU_SHFL_XOR:
		/* PTX shfl.bfly: a source past the segment gives one's own */
		if ((lane ^ (arg & 31)) > ((lane & ~(w - 1)) | (w - 1)))
			return me->val;
		return val_of(lanes, g, lane ^ (arg & 31), me);
	case EC_EMU_BALLOT:
	case EC_EMU_ANY:
	case EC_EMU_ALL:
		for (uint32_t m = g; m; m &= m - 1)
			if (lanes[__builtin_ctz(m)]->val)
				r |= 1u << __builtin_ctz(m);
		if (me->op == EC_EMU_ANY)
			return r != 0;
		if (me->op == EC_EMU_ALL)
			return r == g;
		return r;
	case EC_EMU_MATCH_ANY:
		for (uint32_t m = g; m; m &= m - 1)
			if (lanes[__builtin_ctz(m)]->val == me->val)
				r |= 1u << __builtin_ctz(m);
		return r;
	case EC_EMU_MATCH_ALL:
		for (uint32_t m = g; m; m &= m - 1)
			if (lanes[__builtin_ctz(m)]->val != me->val)
				return 0;
		return g;
	}
	/* reductions over 32-bit values; arg says signed */
	for (uint32_t m = g; m; m &= m - 1) {
		uint64_t v = lanes[__builtin_ctz(m)]->val;
		int64_t a = arg ? (int64_t)(int32_t)r : (int64_t)(uint32_t)r;
		int64_t b = arg ? (int64_t)(int32_t)v : (int64_t)(uint32_t)v;

		if (first) {
			r = v;
			first = false;
			continue;
		}
		switch (me->op) {
		case EC_EMU_REDUCE_ADD:
			r = (uint64_t)(a + b);
			break;
		case EC_EMU_REDUCE_MIN:
			r = (uint64_t)(a < b ? a : b);
			break;
		case EC_EMU_REDUCE_MAX:
			r = (uint64_t)(a > b ? a : b);
			break;
		case EC_EMU_REDUCE_AND:
			r &= v;
			break;
		case EC_EMU_REDUCE_OR:
			r |= v;
			break;
		default:
			r ^= v;
			break;
		}
	}
	return (uint32_t)r;
}

/* Every live lane of group g (f's) has arrived: compute and wake them. */
void open_group(uint32_t w, uint32_t g, fiber *f)
{
	block_run *r = g_run;
	fiber *const *lanes = &r->pool->f[w * 32];
	bool full_xor = f->op == EC_EMU_SHFL_XOR && f->width == 32 &&
			g == ~0u;

	for (uint32_t m = g; m; m &= m - 1) {
		fiber *l = lanes[__builtin_ctz(m)];

		if (l->op != f->op || l->mask != f->mask)
			stop(cudaErrorIllegalInstruction,
			     "lane %u at %s(mask %#x), lane %u at %s(mask "
			     "%#x): divergent warp", l->lane, op_name(l->op),
			     l->mask, f->lane, op_name(f->op), f->mask);
		/* the common case of a reduction over a whole warp */
		if (full_xor && l->width == 32)
			l->result = lanes[(l->lane ^ (uint32_t)l->arg) & 31]->val;
		else
			l->result = warp_result(lanes, g, l);
	}
	r->warp_wait[w] &= ~g;
	for (uint32_t m = g; m; m &= m - 1)
		wake(lanes[__builtin_ctz(m)]);
}

/* f just arrived at a warp operation: open it if it was the last. */
void arrive_warp(fiber *f)
{
	block_run *r = g_run;
	uint32_t g = f->mask & r->warp_live[f->warp];

	r->warp_wait[f->warp] |= 1u << f->lane;
	if (!(g & ~r->warp_wait[f->warp]))
		open_group(f->warp, g, f);
}

/* A lane of warp w returned: open every group now complete. */
void release_warp(uint32_t w)
{
	block_run *r = g_run;

	for (uint32_t l = 0; l < 32 && r->warp_wait[w]; l++) {
		fiber *f;
		uint32_t g;

		if (!(r->warp_wait[w] >> l & 1))
			continue;
		f = r->pool->f[w * 32 + l];
		g = f->mask & r->warp_live[w];
		if (!(g & ~r->warp_wait[w]))
			open_group(w, g, f);
	}
}

/* Open __syncthreads once every live thread waits there. */
void release_block(void)
{
	block_run *r = g_run;
	uint64_t count = 0;
	uint32_t waiting = 0;

	if (!r->at_barrier || r->at_barrier != r->live)
		return;
	for (uint32_t i = 0; i < r->n; i++) {
		fiber *f = r->pool->f[i];

		if (f->state == WAIT_BLOCK) {
			count += f->val != 0;
			waiting++;
		}
	}
	r->at_barrier = 0;
	for (uint32_t i = 0; i < r->n; i++) {
		fiber *f = r->pool->f[i];

		if (f->state != WAIT_BLOCK)
			continue;
		switch (f->op) {
		case EC_EMU_BAR_COUNT:
			f->result = count;
			break;
		case EC_EMU_BAR_AND:
			f->result = count == waiting;
			break;
		case EC_EMU_BAR_OR:
			f->result = count != 0;
			break;
		default:
			f->result = 0;
		}
		wake(f);
	}
}

__attribute__((noreturn)) void deadlock(void)
{
	block_run *r = g_run;
	uint32_t at_bar = 0, at_warp = 0, done = 0;
	const fiber *w = NULL;

	for (uint32_t i = 0; i < r->n; i++) {
		const fiber *f = r->pool->f[i];

		at_bar += f->state == WAIT_BLOCK;
		done += f->state == DONE;
		if (f->state == WAIT_WARP && !at_warp++)
			w = f;
	}
	if (!w)
		stop(cudaErrorLaunchFailure, "deadlock: %u threads at "
		     "__syncthreads, %u returned", at_bar, done);
	stop(cudaErrorLaunchFailure, "deadlock: %u threads at __syncthreads, "
	     "%u at warp operations (thread %u at %s(mask %#x), live lanes "
	     "%#x), %u returned", at_bar, at_warp, w->index, op_name(w->op),
	     w->mask, r->warp_live[w->warp], done);
}

/* The running fiber cannot go on: run the next one (or end the block). */
void block_on(fiber *self)
{
	block_run *r = g_run;
	fiber *next = pop();

	if (next) {
		resume(&self->c, next);
	} else if (r->live) {
		deadlock();
	} else {
		jump(&self->c, &r->pool->host);
	}
	g_run->cur = self;
}

void thread_exit(fiber *self)
{
	block_run *r = g_run;

	self->state = DONE;
	r->live--;
	r->warp_live[self->warp] &= ~(1u << self->lane);
	release_warp(self->warp);
	release_block();
	block_on(self);
}

void fiber_main(void *arg)
{
	fiber *self = (fiber *)arg;

#if defined(EC_EMU_ASAN)
	pool *p = g_run->pool;

	if (g_run->came_from == &p->host) {
		const void *lo;
		size_t size;

		__sanitizer_finish_switch_fiber(p->fiber_fake, &lo, &size);
		p->host_lo = lo;
		p->host_size = size;
	}
#endif
	for (;;) {
		(*g_run->body)();
		thread_exit(self);
	}
}

pool *this_pool(uint32_t n)
{
	pool *p = t_pool;

	if (!p) {
		p = new pool();
		if (ec_emu_stacks_reserve(&p->stacks, max_threads,
					  config().stack) < 0) {
			delete p;
			return NULL;
		}
		t_pool = p;
	}
	while (p->f.size() < n) {
		/* a warp's fibers side by side: they are visited together */
		fiber *w = new fiber[32]();

		for (int i = 0; i < 32; i++) {
			fiber *f = &w[i];

			f->index = (uint32_t)p->f.size();
			if (ec_emu_stack_get(&p->stacks, f->index, &f->stack))
				return NULL;	/* a failed warp stays allocated */
			f->fresh = true;
			p->f.push_back(f);
		}
	}
	return p;
}

/* Threads of one block, all to completion (or a fault). */
cudaError_t run_block(block_run *r)
{
	/* shared memory starts as garbage, as on a GPU: NaN bytes here */
	if (r->fill >= 0) {
		for (const shared_var &v : *r->shared)
			memset(v.addr, r->fill, v.size);
		if (r->dyn)
			memset(r->dyn, r->fill, r->dyn_size);
	}
	r->live = r->n;
	r->at_barrier = 0;
	r->q_head = 0;
	r->q_len = r->n;	/* every thread queued in order */
	r->cur = NULL;
	for (uint32_t w = 0; w < r->warp_live.size(); w++) {
		uint32_t lanes = r->n - w * 32 < 32 ? r->n - w * 32 : 32;

		r->warp_live[w] = lanes == 32 ? ~0u : (1u << lanes) - 1;
		r->warp_wait[w] = 0;
	}
	for (uint32_t i = 0; i < r->n; i++) {
		fiber *f = r->pool->f[i];

		f->state = RUNNABLE;
		r->queue[i] = i;
		if (f->fresh) {
#if defined(EC_EMU_ASAN)
			/* frames abandoned by a fault left poisoned shadow */
			__asan_unpoison_memory_region(f->stack.lo,
						      f->stack.size);
#endif
			ec_emu_ctx_make(&f->c.ctx, &f->stack, fiber_main, f);
			f->fresh = false;
		}
	}
	resume(&r->pool->host, pop());
	if (r->err == cudaSuccess)
		return cudaSuccess;
	/* the block was abandoned mid-way: its fibers start afresh */
	for (uint32_t i = 0; i < r->n; i++)
		r->pool->f[i]->fresh = true;
	return fault(r->err, "%s", r->why);
}
} /* namespace */

cudaError_t run_grid(dim3 grid, dim3 block, size_t smem, const char *name,
		     const void *func, const std::function<void()> &body)
{
	uint32_t n = block.x * block.y * block.z;
	block_run r;
	cudaError_t e = cudaSuccess;

	if (!g_stats.grids++ && getenv("EC_EMU_STATS"))
		atexit(print_stats);
	g_stats.blocks += (uint64_t)grid.x * grid.y * grid.z;
	g_stats.threads += (uint64_t)grid.x * grid.y * grid.z * n;
	r.pool = this_pool(n);
	if (!r.pool)
		return fault(cudaErrorLaunchOutOfResources, "kernel %s: no "
			     "memory for %u fiber stacks", name, n);
	r.body = &body;
	r.name = name;
	r.n = n;
	r.warp_live.resize((n + 31) / 32);
	r.warp_wait.resize((n + 31) / 32);
	r.queue.resize(n);
	r.dyn_size = smem;
	r.dyn = smem ? malloc(smem) : NULL;
	r.err = cudaSuccess;
	r.came_from = &r.pool->host;
	if (smem && !r.dyn)
		return fault(cudaErrorLaunchOutOfResources, "kernel %s: no "
			     "memory for %zu bytes of shared memory", name,
			     smem);
	r.fill = config().fill;
	r.shared = &shared_vars(func);
	for (uint32_t i = 0; i < n; i++) {
		fiber *f = r.pool->f[i];

		f->tid.x = i % block.x;
		f->tid.y = i / block.x % block.y;
		f->tid.z = i / (block.x * block.y);
		f->lane = i % 32;
		f->warp = i / 32;
	}
	g_run = &r;
	ec_emu_blockDim = block;
	ec_emu_gridDim = grid;
	for (uint32_t z = 0; z < grid.z && e == cudaSuccess; z++)
		for (uint32_t y = 0; y < grid.y && e == cudaSuccess; y++)
			for (uint32_t x = 0; x < grid.x && e == cudaSuccess;
			     x++) {
				ec_emu_blockIdx = uint3{ x, y, z };
				e = run_block(&r);
			}
	g_run = NULL;
	free(r.dyn);
	return e;
}
} /* namespace ec_emu */

using namespace ec_emu;

extern "C" uint64_t ec_emu_warp_op(int op, unsigned int mask, uint64_t v,
				   int arg, int width)
{
	fiber *self = g_run->cur;

	if (width < 1 || width > 32 || (width & (width - 1)))
		stop(cudaErrorIllegalInstruction, "%s with width %d",
		     op_name(op), width);
	if (!(mask >> self->lane & 1))
		stop(cudaErrorIllegalInstruction, "%s with mask %#x, which "
		     "leaves out the calling lane", op_name(op), mask);
	self->op = op;
	self->mask = mask;
	self->val = v;
	self->arg = arg;
	self->width = width;
	self->state = WAIT_WARP;
	g_stats.warp_ops++;
	arrive_warp(self);
	if (self->state == WAIT_WARP)
		block_on(self);
	return self->result;
}

extern "C" int ec_emu_block_sync(int op, int pred)
{
	fiber *self = g_run->cur;

	self->op = op;
	self->val = pred != 0;
	self->state = WAIT_BLOCK;
	g_stats.barriers++;
	g_run->at_barrier++;
	release_block();
	if (self->state == WAIT_BLOCK)
		block_on(self);
	return (int)self->result;
}

extern "C" unsigned int ec_emu_active_mask(void)
{
	return g_run->warp_live[g_run->cur->warp];
}

extern "C" void *ec_emu_dyn_smem(void)
{
	return g_run->dyn;
}

extern "C" void ec_emu_trap(const char *why)
{
	stop(cudaErrorLaunchFailure, "%s", why);
}

extern "C" long long ec_emu_clock64(void)
{
	return (long long)now_ns();
}

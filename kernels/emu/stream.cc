// SPDX-License-Identifier: MIT
/*
 * Streams, events and graphs of the emulation.  Work is queued per stream
 * and run in order.  By default it runs at once (the device is always
 * idle); with EC_EMU_DEFER=1 it runs only when something waits for it (a
 * synchronisation, an event another stream waits on, a synchronous copy),
 * so a missing wait shows up as wrong data instead of being hidden by the
 * emulation's eagerness.  Stream capture records the work into a graph;
 * launching the graph replays it on a stream in the recorded order.
 */
#include <stdio.h>

#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "emu.h"

struct op {
	uint64_t seq;
	const char *what;
	ec_emu::op_fn fn;
};

struct CUgraph_st {
	std::vector<op> ops;
};

struct CUgraphExec_st {
	std::shared_ptr<const std::vector<op>> ops;
};

struct CUstream_st {
	unsigned int flags;
	int priority;
	std::deque<op> q;
	uint64_t seq;		/* of the last op queued */
	/* capture */
	enum cudaStreamCaptureStatus cap;
	enum cudaStreamCaptureMode cap_mode;
	CUgraph_st *graph;
	bool origin;		/* BeginCapture was called on it */
	bool unjoined;		/* captured work not yet waited for */
	uint64_t cap_ops;
	std::thread::id cap_thread;
};

struct CUevent_st {
	unsigned int flags;
	bool recorded, complete;
	uint64_t gen, ns;
	cudaStream_t rec_stream;	/* the last record, while pending */
	uint64_t rec_seq;
	/* recorded in a capture */
	CUgraph_st *cap_graph;
	cudaStream_t cap_stream;
	uint64_t cap_pos;
};

namespace ec_emu
{
namespace
{
CUstream_st g_legacy;	/* stream 0, cudaStreamLegacy, PerThread */
std::vector<CUstream_st *> g_streams;

CUstream_st *resolve(cudaStream_t s)
{
	if (s == 0 || s == cudaStreamLegacy || s == cudaStreamPerThread)
		return &g_legacy;
	return s;
}

bool is_legacy(CUstream_st *s)
{
	return s == &g_legacy;
}

void drain(CUstream_st *s, uint64_t upto)
{
	while (!s->q.empty() && s->q.front().seq <= upto) {
		op o = std::move(s->q.front());

		s->q.pop_front();
		o.fn();	/* a kernel fault is already sticky */
	}
}

/* Streams that wait for the legacy stream and it for them. */
void drain_blocking(void)
{
	for (CUstream_st *s : g_streams)
		if (!(s->flags & cudaStreamNonBlocking))
			drain(s, UINT64_MAX);
}

void end_capture(CUgraph_st *g)
{
	for (CUstream_st *s : g_streams)
		if (s->graph == g) {
			s->cap = cudaStreamCaptureStatusNone;
			s->graph = NULL;
			s->origin = false;
			s->unjoined = false;
		}
}

void invalidate(CUgraph_st *g)
{
	for (CUstream_st *s : g_streams)
		if (s->graph == g)
			s->cap = cudaStreamCaptureStatusInvalidated;
}

bool capturing(CUstream_st *s)
{
	return s->cap != cudaStreamCaptureStatusNone;
}

cudaError_t check_event(cudaEvent_t e)
{
	return e ? cudaSuccess : cudaErrorInvalidResourceHandle;
}
} /* namespace */

bool stream_ok(cudaStream_t s)
{
	CUstream_st *r = resolve(s);

	if (is_legacy(r))
		return true;
	for (CUstream_st *x : g_streams)
		if (x == r)
			return true;
	return false;
}

bool stream_deferred(cudaStream_t s)
{
	return config().defer && !is_legacy(resolve(s));
}

bool stream_capturing(cudaStream_t s)
{
	return capturing(resolve(s));
}

cudaError_t capture_refuse(cudaStream_t s)
{
	invalidate(resolve(s)->graph);
	return cudaErrorStreamCaptureUnsupported;
}

cudaError_t enqueue(cudaStream_t stream, const char *what, op_fn fn)
{
	CUstream_st *s = resolve(stream);
	cudaError_t e;

	if (capturing(s)) {
		if (s->cap == cudaStreamCaptureStatusInvalidated)
			return cudaErrorStreamCaptureInvalidated;
		s->graph->ops.push_back(op{ 0, what, std::move(fn) });
		s->cap_ops++;
		if (!s->origin)
			s->unjoined = true;
		return cudaSuccess;
	}
	if (is_legacy(s)) {
		e = capture_unsafe(true);
		if (e != cudaSuccess)
			return e;
		drain_blocking();
	}
	s->q.push_back(op{ ++s->seq, what, std::move(fn) });
	if (!config().defer || is_legacy(s))
		drain(s, UINT64_MAX);
	return sticky();
}

void drain_stream(cudaStream_t s)
{
	drain(resolve(s), UINT64_MAX);
}

void drain_all(void)
{
	bool more = true;

	while (more) {
		more = false;
		for (CUstream_st *s : g_streams) {
			more |= !s->q.empty();
			drain(s, UINT64_MAX);
		}
		drain(&g_legacy, UINT64_MAX);
	}
}

cudaError_t capture_unsafe(bool legacy_stream)
{
	cudaError_t e = cudaSuccess;

	for (CUstream_st *s : g_streams) {
		if (!capturing(s) || !s->origin)
			continue;
		if (s->cap_mode == cudaStreamCaptureModeGlobal ||
		    (s->cap_mode == cudaStreamCaptureModeThreadLocal &&
		     s->cap_thread == std::this_thread::get_id())) {
			invalidate(s->graph);
			e = legacy_stream ? cudaErrorStreamCaptureImplicit
					  : cudaErrorStreamCaptureUnsupported;
		}
	}
	return e;
}
} /* namespace ec_emu */

using namespace ec_emu;

cudaError_t cudaStreamCreateWithPriority(cudaStream_t *stream,
					 unsigned int flags, int priority)
{
	EC_EMU_LOCKED();
	CUstream_st *s;

	if (!stream || (flags & ~(unsigned int)cudaStreamNonBlocking))
		return ret(cudaErrorInvalidValue);
	s = new CUstream_st();
	s->flags = flags;
	s->priority = priority;
	g_streams.push_back(s);
	*stream = s;
	return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream,
				      unsigned int flags)
{
	return cudaStreamCreateWithPriority(stream, flags, 0);
}

cudaError_t cudaStreamCreate(cudaStream_t *stream)
{
	return cudaStreamCreateWithPriority(stream, cudaStreamDefault, 0);
}

cudaError_t cudaDeviceGetStreamPriorityRange(int *least, int *greatest)
{
	if (least)
		*least = 0;
	if (greatest)
		*greatest = -5;
	return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
	EC_EMU_LOCKED();
	CUstream_st *s = resolve(stream);

	if (is_legacy(s) || !stream_ok(stream))
		return ret(cudaErrorInvalidResourceHandle);
	if (capturing(s))
		return ret(cudaErrorStreamCaptureUnsupported);
	/* its work completes; other streams may wait on it */
	drain_all();
	for (size_t i = 0; i < g_streams.size(); i++)
		if (g_streams[i] == s)
			g_streams.erase(g_streams.begin() + (long)i);
	delete s;
	return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
	EC_EMU_LOCKED();
	CUstream_st *s = resolve(stream);

	if (!stream_ok(stream))
		return ret(cudaErrorInvalidResourceHandle);
	if (capturing(s)) {
		invalidate(s->graph);
		return ret(cudaErrorStreamCaptureUnsupported);
	}
	if (is_legacy(s))
		drain_blocking();
	drain(s, UINT64_MAX);
	return ret(sticky());
}

cudaError_t cudaStreamQuery(cudaStream_t stream)
{
	/* the emulation never has work in flight that it cannot finish */
	return cudaStreamSynchronize(stream);
}

cudaError_t cudaDeviceSynchronize(void)
{
	EC_EMU_LOCKED();
	cudaError_t e = capture_unsafe(false);

	if (e != cudaSuccess)
		return ret(e);
	drain_all();
	return ret(sticky());
}

cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn,
			       void *userData)
{
	EC_EMU_LOCKED();
	cudaError_t e = sticky();

	if (e == cudaSuccess && (!fn || !stream_ok(stream)))
		e = fn ? cudaErrorInvalidResourceHandle : cudaErrorInvalidValue;
	if (e == cudaSuccess)
		e = enqueue(stream, "cudaLaunchHostFunc", [=]() {
			fn(userData);
			return cudaSuccess;
		});
	return ret(e);
}

/* ---- events ---- */

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags)
{
	EC_EMU_LOCKED();

	if (!event || (flags & ~(unsigned int)(cudaEventBlockingSync |
					       cudaEventDisableTiming |
					       cudaEventInterprocess)))
		return ret(cudaErrorInvalidValue);
	*event = new CUevent_st();
	(*event)->flags = flags;
	return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *event)
{
	return cudaEventCreateWithFlags(event, cudaEventDefault);
}

cudaError_t cudaEventDestroy(cudaEvent_t event)
{
	EC_EMU_LOCKED();

	if (check_event(event) != cudaSuccess)
		return ret(cudaErrorInvalidResourceHandle);
	drain_all();	/* queued records refer to it */
	delete event;
	return cudaSuccess;
}

cudaError_t cudaEventRecordWithFlags(cudaEvent_t event, cudaStream_t stream,
				     unsigned int flags)
{
	EC_EMU_LOCKED();
	CUstream_st *s = resolve(stream);
	cudaError_t e = sticky();
	uint64_t gen;

	if (e != cudaSuccess)
		return ret(e);
	if (check_event(event) != cudaSuccess || !stream_ok(stream))
		return ret(cudaErrorInvalidResourceHandle);
	if (capturing(s)) {
		/* a dependency inside the graph, not a node */
		if (s->cap == cudaStreamCaptureStatusInvalidated)
			return ret(cudaErrorStreamCaptureInvalidated);
		event->cap_graph = s->graph;
		event->cap_stream = s;
		event->cap_pos = s->cap_ops;
		return cudaSuccess;
	}
	event->cap_graph = NULL;
	gen = ++event->gen;
	event->recorded = true;
	event->complete = false;
	e = enqueue(stream, "cudaEventRecord", [event, gen]() {
		if (event->gen == gen) {
			event->complete = true;
			event->ns = now_ns();
		}
		return cudaSuccess;
	});
	if (!event->complete) {
		event->rec_stream = s;
		event->rec_seq = s->seq;
	}
	(void)flags;
	return ret(e);
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)
{
	return cudaEventRecordWithFlags(event, stream, 0);
}

static cudaError_t event_wait_host(cudaEvent_t event)
{
	if (check_event(event) != cudaSuccess)
		return cudaErrorInvalidResourceHandle;
	if (event->cap_graph) {
		invalidate(event->cap_graph);
		return cudaErrorCapturedEvent;
	}
	if (event->recorded && !event->complete)
		drain(event->rec_stream, event->rec_seq);
	return sticky();
}

cudaError_t cudaEventSynchronize(cudaEvent_t event)
{
	EC_EMU_LOCKED();

	return ret(event_wait_host(event));
}

cudaError_t cudaEventQuery(cudaEvent_t event)
{
	EC_EMU_LOCKED();

	return ret(event_wait_host(event));
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start,
				 cudaEvent_t end)
{
	EC_EMU_LOCKED();

	if (!ms)
		return ret(cudaErrorInvalidValue);
	if (check_event(start) != cudaSuccess ||
	    check_event(end) != cudaSuccess ||
	    ((start->flags | end->flags) & cudaEventDisableTiming) ||
	    !start->recorded || !end->recorded)
		return ret(cudaErrorInvalidResourceHandle);
	if (!start->complete || !end->complete)
		return ret(cudaErrorNotReady);
	*ms = (float)((double)((int64_t)(end->ns - start->ns)) / 1e6);
	return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event,
				unsigned int flags)
{
	EC_EMU_LOCKED();
	CUstream_st *s = resolve(stream);
	cudaError_t e = sticky();

	if (e != cudaSuccess)
		return ret(e);
	if (check_event(event) != cudaSuccess || !stream_ok(stream))
		return ret(cudaErrorInvalidResourceHandle);
	if (flags)
		return ret(cudaErrorInvalidValue);
	if (event->cap_graph) {
		CUstream_st *from = event->cap_stream;

		if (capturing(s) && s->graph != event->cap_graph)
			return ret(cudaErrorStreamCaptureIsolation);
		if (!capturing(s)) {	/* fork: s joins the capture */
			s->cap = from->cap;
			s->cap_mode = from->cap_mode;
			s->graph = event->cap_graph;
			s->origin = false;
			s->unjoined = false;
			s->cap_ops = 0;
		}
		/* waiting for all of `from`'s work joins it back */
		if (from != s && event->cap_pos == from->cap_ops)
			from->unjoined = false;
		return cudaSuccess;
	}
	if (capturing(s)) {
		/* an event from outside the capture */
		invalidate(s->graph);
		return ret(cudaErrorStreamCaptureIsolation);
	}
	if (!event->recorded || event->complete)
		return cudaSuccess;
	CUstream_st *rs = event->rec_stream;
	uint64_t rseq = event->rec_seq;

	return ret(enqueue(stream, "cudaStreamWaitEvent", [rs, rseq]() {
		drain(rs, rseq);
		return sticky();
	}));
}

/* ---- graphs ---- */

cudaError_t cudaStreamBeginCapture(cudaStream_t stream,
				   enum cudaStreamCaptureMode mode)
{
	EC_EMU_LOCKED();
	CUstream_st *s = resolve(stream);

	if (!stream_ok(stream))
		return ret(cudaErrorInvalidResourceHandle);
	if (is_legacy(s))
		return ret(cudaErrorStreamCaptureUnsupported);
	if (capturing(s))
		return ret(cudaErrorIllegalState);
	if ((unsigned int)mode > cudaStreamCaptureModeRelaxed)
		return ret(cudaErrorInvalidValue);
	s->cap = cudaStreamCaptureStatusActive;
	s->cap_mode = mode;
	s->graph = new CUgraph_st();
	s->origin = true;
	s->unjoined = false;
	s->cap_ops = 0;
	s->cap_thread = std::this_thread::get_id();
	return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *pGraph)
{
	EC_EMU_LOCKED();
	CUstream_st *s = resolve(stream);
	CUgraph_st *g;
	cudaError_t e = cudaSuccess;

	if (!pGraph)
		return ret(cudaErrorInvalidValue);
	*pGraph = NULL;
	if (!stream_ok(stream) || !capturing(s))
		return ret(cudaErrorIllegalState);
	if (!s->origin)
		return ret(cudaErrorStreamCaptureUnmatched);
	g = s->graph;
	if (s->cap == cudaStreamCaptureStatusInvalidated)
		e = cudaErrorStreamCaptureInvalidated;
	for (CUstream_st *x : g_streams)
		if (e == cudaSuccess && x->graph == g && x->unjoined)
			e = cudaErrorStreamCaptureUnjoined;
	end_capture(g);
	if (e != cudaSuccess) {
		delete g;
		return ret(e);
	}
	*pGraph = g;
	return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream,
				  enum cudaStreamCaptureStatus *status)
{
	EC_EMU_LOCKED();

	if (!status)
		return ret(cudaErrorInvalidValue);
	if (!stream_ok(stream))
		return ret(cudaErrorInvalidResourceHandle);
	*status = resolve(stream)->cap;
	return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *pGraphExec,
				 cudaGraph_t graph, unsigned long long flags)
{
	EC_EMU_LOCKED();

	if (!pGraphExec || !graph)
		return ret(cudaErrorInvalidValue);
	*pGraphExec = new CUgraphExec_st();
	(*pGraphExec)->ops =
		std::make_shared<const std::vector<op>>(graph->ops);
	(void)flags;
	return cudaSuccess;
}

cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *pGraphExec,
					  cudaGraph_t graph,
					  unsigned long long flags)
{
	return cudaGraphInstantiate(pGraphExec, graph, flags);
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream)
{
	EC_EMU_LOCKED();
	cudaError_t e = sticky();

	if (e != cudaSuccess)
		return ret(e);
	if (!exec)
		return ret(cudaErrorInvalidValue);
	if (!stream_ok(stream))
		return ret(cudaErrorInvalidResourceHandle);
	auto ops = exec->ops;

	return ret(enqueue(stream, "cudaGraphLaunch", [ops]() {
		for (const op &o : *ops) {
			cudaError_t r = o.fn();

			if (r != cudaSuccess)
				return r;
		}
		return cudaSuccess;
	}));
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t *nodes,
			      size_t *numNodes)
{
	EC_EMU_LOCKED();

	if (!graph || !numNodes)
		return ret(cudaErrorInvalidValue);
	if (nodes) {
		/* opaque handles: only their number means anything here */
		for (size_t i = 0; i < *numNodes && i < graph->ops.size(); i++)
			nodes[i] = (cudaGraphNode_t)(uintptr_t)(i + 1);
	}
	*numNodes = graph->ops.size();
	return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
	EC_EMU_LOCKED();

	if (!exec)
		return ret(cudaErrorInvalidValue);
	delete exec;	/* queued launches hold their own reference */
	return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
	EC_EMU_LOCKED();

	if (!graph)
		return ret(cudaErrorInvalidValue);
	delete graph;
	return cudaSuccess;
}

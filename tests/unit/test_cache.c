// SPDX-License-Identifier: MIT
/*
 * Expert cache on a hand-built model whose experts sit at odd offsets:
 * bytes in every slot equal the file's, LRU eviction counts, one read for
 * concurrent gets, failed loads never READY, truncation, prefetch, static
 * pins, preload, replicas, the expert-source adapter, stats and budgets.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ec_error.h"
#include "ec_infer.h"
#include "ec_storage.h"
#include "ec_test.h"
#include "storage_fixture.h"

#define NL 3
#define NE 8
#define SALT 7

static struct fx_model fm;
static char model_path[300];

static struct ec_cache *make_cache(uint32_t n_slots, const char *policy)
{
	struct ec_cache_params p = { .n_slots = n_slots, .policy = policy };
	struct ec_cache *c = NULL;

	if (ec_cache_create(&fm.m, &p, &c) < 0)
		fprintf(stderr, "ec_cache_create: %s\n", ec_error_msg());
	return c;
}

/* get + check bytes + put; returns 1 when the bytes are right. */
static int get_ok(struct ec_cache *c, uint32_t l, uint32_t e)
{
	const struct ec_expert *x;
	int ok;

	if (ec_cache_get(c, l, e, &x) < 0)
		return 0;
	ok = fx_expert_ok(&fm, x, l, e, SALT);
	ec_cache_put(c, l, e);
	return ok;
}

static void test_all_experts(void)
{
	struct ec_cache *c = make_cache(NL * NE, NULL);
	struct ec_cache_stats st;
	uint32_t l, e, bad = 0;

	EC_CHECK(c, "cache for every expert");
	if (!c)
		return;
	for (l = 0; l < NL; l++)
		for (e = 0; e < NE; e++)
			bad += !get_ok(c, l, e);
	EC_CHECK(bad == 0, "%u experts with wrong bytes", bad);
	for (l = 0; l < NL; l++)
		for (e = 0; e < NE; e++)
			bad += !get_ok(c, l, e);
	ec_cache_get_stats(c, &st);
	EC_CHECK(bad == 0 && st.misses == NL * NE && st.hits == NL * NE,
		 "second pass all hits (%llu hits, %llu misses)",
		 (unsigned long long)st.hits, (unsigned long long)st.misses);
	EC_CHECK(st.loads == NL * NE && st.load_errors == 0 &&
		 st.n_resident == NL * NE, "one load per expert");
	/* payload + alignment padding of 3 covering ranges per expert */
	EC_CHECK(st.bytes_read >= NL * NE * (12289 + 12289 + 9001ull),
		 "bytes_read %llu", (unsigned long long)st.bytes_read);
	ec_cache_free(c);
}

static void test_lru(void)
{
	struct ec_cache *c = make_cache(2, "lru");
	struct ec_cache_stats st;

	EC_CHECK(c, "2-slot cache");
	if (!c)
		return;
	/* A B A C B: C evicts B (LRU), B evicts A */
	EC_CHECK(get_ok(c, 0, 0) && get_ok(c, 0, 1) && get_ok(c, 0, 0) &&
		 get_ok(c, 1, 5) && get_ok(c, 0, 1), "bytes right");
	ec_cache_get_stats(c, &st);
	EC_CHECK(st.hits == 1 && st.misses == 4 && st.evictions == 2,
		 "A B A C B: 1 hit, 4 misses, 2 evictions (got %llu %llu "
		 "%llu)", (unsigned long long)st.hits,
		 (unsigned long long)st.misses,
		 (unsigned long long)st.evictions);
	EC_CHECK(ec_cache_resident(c, 1, 5) && ec_cache_resident(c, 0, 1) &&
		 !ec_cache_resident(c, 0, 0), "C and B resident, A evicted");
	ec_cache_free(c);
}

/*
 * Slow first completions that also spoil the bytes and ask for a re-read
 * (-EAGAIN): a get() returning before READY would see the garbage.
 */
static uint64_t seen_off[64];
static int n_seen;

static int hook_slow(void *arg, const struct ec_uring_fault_ctx *cx, int res)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	int i;

	for (i = 0; i < n_seen; i++)
		if (seen_off[i] == cx->offset)
			return res;
	if (n_seen < 64)
		seen_off[n_seen++] = cx->offset;
	memset(cx->buf, 0xAB, cx->length);
	nanosleep(&ts, NULL);
	return -EAGAIN;
}

/* Fail every request touching expert (1, 3)'s gate. */
static int hook_eio(void *arg, const struct ec_uring_fault_ctx *cx, int res)
{
	const struct ec_tensor *t = &fm.layers[1].experts[3].w[0];
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	nanosleep(&ts, NULL);
	if (cx->offset < t->offset + t->nbytes &&
	    t->offset < cx->offset + cx->length)
		return -EIO;
	return res;
}

struct getter {
	struct ec_cache *c;
	uint32_t l, e;
	int ret, ok;
	const void *data;
};

static void *getter_main(void *arg)
{
	struct getter *g = arg;
	const struct ec_expert *x;

	g->ret = ec_cache_get(g->c, g->l, g->e, &x);
	if (g->ret == 0) {
		g->ok = fx_expert_ok(&fm, x, g->l, g->e, SALT);
		g->data = x->w[0].data;
		ec_cache_put(g->c, g->l, g->e);
	}
	return NULL;
}

static int run_getters(struct ec_cache *c, uint32_t l, uint32_t e, int n,
		       struct getter *g)
{
	pthread_t th[8];
	int i;

	for (i = 0; i < n; i++) {
		g[i] = (struct getter){ .c = c, .l = l, .e = e };
		pthread_create(&th[i], NULL, getter_main, &g[i]);
	}
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	return n;
}

static void test_concurrent(void)
{
	struct ec_cache *c = make_cache(4, NULL);
	struct ec_cache_stats st;
	struct getter g[8];
	int i, ok = 1;

	EC_CHECK(c, "cache");
	if (!c)
		return;
	ec_uring_set_fault_hook(ec_cache_reader(c), hook_slow, NULL);
	run_getters(c, 2, 6, 8, g);
	for (i = 0; i < 8; i++)
		ok &= g[i].ret == 0 && g[i].ok && g[i].data == g[0].data;
	ec_cache_get_stats(c, &st);
	EC_CHECK(ok, "8 concurrent gets: same slot, right bytes");
	EC_CHECK(st.loads == 1, "one read for 8 concurrent gets (%llu)",
		 (unsigned long long)st.loads);
	EC_CHECK(st.misses + st.hits == 8 && st.inflight_joins >= 1,
		 "%llu joined the load in flight",
		 (unsigned long long)st.inflight_joins);
	ec_cache_free(c);
}

static void test_failures(void)
{
	struct ec_cache *c = make_cache(2, NULL);
	struct ec_cache_stats st;
	const struct ec_expert *x;
	struct getter g[4];
	int i, all_eio = 1, ret;

	EC_CHECK(c, "cache");
	if (!c)
		return;
	ec_uring_set_fault_hook(ec_cache_reader(c), hook_eio, NULL);
	ret = ec_cache_get(c, 1, 3, &x);
	EC_CHECK(ret == -EIO && !x, "injected EIO surfaces (%d)", ret);
	EC_CHECK(strstr(ec_error_msg(), "layer 1, expert 3") &&
		 strstr(ec_error_msg(), model_path),
		 "message names expert and file: %s", ec_error_msg());
	EC_CHECK(!ec_cache_resident(c, 1, 3), "failed expert not READY");
	run_getters(c, 1, 3, 4, g);
	for (i = 0; i < 4; i++)
		all_eio &= g[i].ret == -EIO;
	EC_CHECK(all_eio, "concurrent waiters all see the error");
	/* the failed slots were given back: both slots still usable */
	EC_CHECK(get_ok(c, 0, 0) && get_ok(c, 0, 1) && get_ok(c, 0, 2),
		 "other experts load fine under the hook");
	ec_uring_set_fault_hook(ec_cache_reader(c), NULL, NULL);
	EC_CHECK(get_ok(c, 1, 3), "the expert loads once the fault is gone");
	ec_cache_get_stats(c, &st);
	EC_CHECK(st.load_errors >= 2, "load errors counted (%llu)",
		 (unsigned long long)st.load_errors);
	ec_cache_free(c);
}

static void test_truncated(void)
{
	struct ec_cache *c = make_cache(4, NULL);
	const struct ec_expert *x;
	uint64_t cut = fm.region[2] + 5 * fm.part[2];
	int ret;

	EC_CHECK(c, "cache");
	if (!c)
		return;
	/* keep the first 5 down parts, lose the rest */
	EC_CHECK(truncate(model_path, (off_t)cut) == 0, "truncate");
	ret = ec_cache_get(c, 2, 7, &x);
	EC_CHECK(ret == -EC_EFORMAT && strstr(ec_error_msg(), "truncated"),
		 "truncated file: %d %s", ret, ec_error_msg());
	EC_CHECK(!ec_cache_resident(c, 2, 7), "not READY");
	EC_CHECK(get_ok(c, 0, 4), "an expert before the cut still loads");
	ec_cache_free(c);
	fx_write_file(model_path, fm.size, SALT);
}

static void test_prefetch(void)
{
	struct ec_cache *c = make_cache(6, NULL);
	int32_t ids[3] = { 4, 1, 7 };
	struct ec_cache_stats st;
	int i, n;

	EC_CHECK(c, "cache");
	if (!c)
		return;
	n = ec_cache_prefetch(c, 1, ids, 3);
	EC_CHECK(n == 3, "3 prefetches issued (%d)", n);
	for (i = 0; i < 500 && !(ec_cache_resident(c, 1, 4) &&
				 ec_cache_resident(c, 1, 1) &&
				 ec_cache_resident(c, 1, 7)); i++)
		usleep(2000);
	EC_CHECK(i < 500, "prefetched experts become READY in background");
	EC_CHECK(get_ok(c, 1, 4) && get_ok(c, 1, 1) && get_ok(c, 1, 7),
		 "prefetched bytes right");
	EC_CHECK(ec_cache_prefetch(c, 1, ids, 3) == 0,
		 "resident experts are not prefetched again");
	ec_cache_get_stats(c, &st);
	EC_CHECK(st.hits == 3 && st.misses == 0 && st.prefetch_issued == 3 &&
		 st.prefetch_used == 3, "3 hits from 3 used prefetches");
	ec_cache_free(c);
}

static void progress(void *arg, uint32_t done, uint32_t total,
		     uint64_t bytes)
{
	int *calls = arg;

	(*calls)++;
}

static void test_static_preload(void)
{
	uint32_t pinned[2] = { 0 * NE + 2, 2 * NE + 5 };
	struct ec_cache_params p = { .n_slots = 3, .policy = "static",
				     .pinned = pinned, .n_pinned = 2 };
	struct ec_cache_info info;
	struct ec_cache *c = NULL;
	int calls = 0, ret;
	uint32_t e;

	EC_CHECK(ec_cache_create(&fm.m, &p, &c) == 0, "static cache: %s",
		 ec_error_msg());
	if (!c)
		return;
	ec_cache_get_info(c, &info);
	EC_CHECK(info.n_pinned == 2 && !strcmp(info.policy, "static"),
		 "2 pinned");
	ret = ec_cache_preload(c, pinned, 2, progress, &calls);
	EC_CHECK(ret == 2 && calls >= 2, "preload 2 (ret %d, %d progress "
		 "calls)", ret, calls);
	for (e = 0; e < NE; e++)
		get_ok(c, 1, e);	/* stream a layer through slot 3 */
	EC_CHECK(ec_cache_resident(c, 0, 2) && ec_cache_resident(c, 2, 5),
		 "pinned experts survive streaming");
	EC_CHECK(get_ok(c, 0, 2) && get_ok(c, 2, 5), "pinned bytes right");
	ec_cache_free(c);
}

static int hook_count_paths(void *arg, const struct ec_uring_fault_ctx *cx,
			    int res)
{
	int *n = arg;

	__atomic_fetch_add(&n[strstr(cx->path, "copy") ? 1 : 0], 1,
			   __ATOMIC_RELAXED);
	return res;
}

static void test_replicas(const char *dir)
{
	char copy[300];
	const char *paths[2] = { model_path, copy };
	struct ec_uring_file f = { paths, 2 };
	struct ec_cache_params p = { .n_slots = NL * NE, .files = &f };
	struct ec_cache *c = NULL;
	int n[2] = { 0, 0 };
	uint32_t l, e, bad = 0;

	snprintf(copy, sizeof(copy), "%s/copy.bin", dir);
	fx_write_file(copy, fm.size, SALT);
	EC_CHECK(ec_cache_create(&fm.m, &p, &c) == 0, "cache on 2 replicas");
	if (!c)
		return;
	ec_uring_set_fault_hook(ec_cache_reader(c), hook_count_paths, n);
	for (l = 0; l < NL; l++)
		for (e = 0; e < NE; e++)
			bad += !get_ok(c, l, e);
	EC_CHECK(bad == 0 && n[0] > 0 && n[1] > 0,
		 "striped over both replicas (%d/%d requests), bytes right",
		 n[0], n[1]);
	ec_cache_free(c);
}

static void test_source_and_stats(void)
{
	struct ec_cache *c = make_cache(4, NULL);
	struct ec_expert_source src;
	const struct ec_expert *x;
	struct ec_cache_stats st;
	json_t *j;

	EC_CHECK(c, "cache");
	if (!c)
		return;
	ec_cache_expert_source(c, &src);
	EC_CHECK(src.get(src.priv, 2, 1, &x) == 0 &&
		 fx_expert_ok(&fm, x, 2, 1, SALT), "source get");
	EC_CHECK(src.resident(src.priv, 2, 1) &&
		 !src.resident(src.priv, 2, 2), "source resident");
	src.put(src.priv, 2, 1);
	EC_CHECK(src.get(src.priv, 2, 1, &x) == 0, "second get");
	src.put(src.priv, 2, 1);
	ec_cache_count_substitution(c);
	ec_cache_get_stats(c, &st);
	j = ec_cache_stats_json(&st, 1.0);
	EC_CHECK(j && json_integer_value(json_object_get(j, "expert_hits")) ==
		 1 && json_integer_value(json_object_get(j,
						"expert_misses")) == 1 &&
		 json_real_value(json_object_get(j, "hit_rate")) == 0.5 &&
		 json_integer_value(json_object_get(j, "substitutions")) ==
			 1 &&
		 json_integer_value(json_object_get(j, "bytes_read")) > 0 &&
		 json_object_get(json_object_get(j, "tiers"), "host"),
		 "stats json");
	json_decref(j);
	EC_CHECK(ec_cache_get(c, NL, 0, &x) == -EC_EINVAL, "bad layer");
	ec_cache_free(c);
}

static void test_budgets(void)
{
	struct ec_cache_params p = { 0 };
	struct ec_cache_info info;
	struct ec_cache *c = NULL;
	uint64_t v = 0, slot;

	EC_CHECK(ec_parse_size("512M", &v) == 0 && v == 512ull << 20, "512M");
	EC_CHECK(ec_parse_size("4G", &v) == 0 && v == 4ull << 30, "4G");
	EC_CHECK(ec_parse_size("1.5g", &v) == 0 && v == 3ull << 29, "1.5g");
	EC_CHECK(ec_parse_size("64KiB", &v) == 0 && v == 65536, "64KiB");
	EC_CHECK(ec_parse_size("2GB", &v) == 0 && v == 2ull << 30, "2GB");
	EC_CHECK(ec_parse_size("4096", &v) == 0 && v == 4096, "4096");
	EC_CHECK(ec_parse_size("4X", &v) == -EC_EINVAL, "4X rejected");
	EC_CHECK(ec_parse_size("-1G", &v) == -EC_EINVAL, "-1G rejected");
	EC_CHECK(ec_parse_size("", &v) == -EC_EINVAL, "empty rejected");
	EC_CHECK(ec_parse_size("99999999T", &v) == -EC_EINVAL, "overflow");
	EC_CHECK(ec_parse_budget("25%", 1000, &v) == 0 && v == 250, "25%%");
	EC_CHECK(ec_parse_budget("12.5%", 1000, &v) == 0 && v == 125,
		 "12.5%%");
	EC_CHECK(ec_parse_budget("1K", 1000, &v) == 0 && v == 1024, "1K");
	EC_CHECK(ec_parse_budget("101%", 1000, &v) == -EC_EINVAL, "101%%");
	EC_CHECK(ec_parse_budget("x%", 1000, &v) == -EC_EINVAL, "x%%");

	p.ram_budget = 1000;	/* less than one slot */
	EC_CHECK(ec_cache_create(&fm.m, &p, &c) == -EC_EINVAL &&
		 strstr(ec_error_msg(), "smaller than one expert slot"),
		 "budget below one slot: %s", ec_error_msg());
	p.ram_budget = 1ull << 30;
	EC_CHECK(ec_cache_create(&fm.m, &p, &c) == 0, "big budget");
	if (!c)
		return;
	ec_cache_get_info(c, &info);
	slot = info.slot_bytes;
	EC_CHECK(info.n_slots == NL * NE, "clamped to the expert count");
	EC_CHECK(slot % EC_IO_ALIGN == 0 && slot >= 12289 * 2 + 9001,
		 "slot of %llu bytes", (unsigned long long)slot);
	EC_CHECK(!strcmp(info.tier.kind, "userspace") ||
		 !strcmp(info.tier.kind, "module"), "tier kind %s",
		 info.tier.kind);
	ec_cache_free(c);
	p.ram_budget = slot * 7 / 2;	/* 3.5 slots */
	c = NULL;
	EC_CHECK(ec_cache_create(&fm.m, &p, &c) == 0, "3.5 slots");
	if (c) {
		ec_cache_get_info(c, &info);
		EC_CHECK(info.n_slots == 3, "3 slots (%u)", info.n_slots);
		ec_cache_free(c);
	}
	p.policy = "belady";
	EC_CHECK(ec_cache_create(&fm.m, &p, &c) == -EC_EINVAL,
		 "belady refused for a live cache");
	p.policy = "nope";
	EC_CHECK(ec_cache_create(&fm.m, &p, &c) == -EC_EINVAL, "unknown "
		 "policy refused");
}

static void test_bad_extents(void)
{
	struct ec_cache_params p = { .n_slots = 2 };
	struct ec_cache *c = NULL;
	uint64_t saved = fm.file.size;

	fm.file.size = fm.region[2];	/* the down parts lie past the end */
	EC_CHECK(ec_cache_create(&fm.m, &p, &c) == -EC_EFORMAT &&
		 strstr(ec_error_msg(), "past the end"),
		 "extents past EOF refused: %s", ec_error_msg());
	fm.file.size = saved;
}

int main(void)
{
	const char *dir = fx_mkdir("cache");

	snprintf(model_path, sizeof(model_path), "%s/model.bin", dir);
	if (fx_model_init(&fm, model_path, NL, NE, SALT, 1) < 0) {
		EC_CHECK(0, "cannot build the test model under %s", dir);
		return ec_test_done();
	}
	test_all_experts();
	test_lru();
	test_concurrent();
	test_failures();
	test_truncated();
	test_prefetch();
	test_static_preload();
	test_replicas(dir);
	test_source_and_stats();
	test_budgets();
	test_bad_extents();
	fx_model_fini(&fm);
	fx_cleanup();
	return ec_test_done();
}

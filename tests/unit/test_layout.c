// SPDX-License-Identifier: MIT
/*
 * Layout files: the record order on a hand-made trace (known exactly), the
 * co-activation span, a round trip through the cache on a hand-built model
 * at odd offsets and on real GGUF models (every expert's bytes equal the
 * original file's; greedy decoding at 25% through the layout gives the
 * same logits), one read request per expert, and corrupt, truncated and
 * mismatched layout files refused with messages that say why.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ec_backend.h"
#include "ec_error.h"
#include "ec_infer.h"
#include "ec_layout.h"
#include "ec_storage.h"
#include "ec_test.h"
#include "storage_fixture.h"

#define NL 3
#define NE 5
#define SALT 11
#define N_DECODE 8

static char path_buf[4][320];

static int map_model(struct fx_model *fm)
{
	int fd = open(fm->file.path, O_RDONLY);
	void *p;

	if (fd < 0)
		return -1;
	p = mmap(NULL, fm->size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -1;
	fm->file.map = p;
	return 0;
}

static void unmap_model(struct fx_model *fm)
{
	if (fm->file.map)
		munmap((void *)fm->file.map, fm->size);
	fm->file.map = NULL;
}

/*
 * Layer 0, top-2 of 5 over 10 tokens: {3,1} x4, {3,4} x2, {4,2} x3, {2,0};
 * layer 1: {4,2} x4, {4,0} x2, {1,0} x4; layer 2: {4} on token 0 only.
 */
static const int trace_l0[10][2] = { { 3, 1 }, { 3, 1 }, { 3, 1 }, { 3, 1 },
				     { 3, 4 }, { 3, 4 }, { 4, 2 }, { 4, 2 },
				     { 4, 2 }, { 2, 0 } };
static const int trace_l1[10][2] = { { 4, 2 }, { 4, 2 }, { 4, 2 }, { 4, 2 },
				     { 4, 0 }, { 4, 0 }, { 1, 0 }, { 1, 0 },
				     { 1, 0 }, { 1, 0 } };

static int write_trace(const char *path)
{
	FILE *f = fopen(path, "w");
	int t;

	if (!f)
		return -1;
	for (t = 0; t < 10; t++) {
		fprintf(f, "{\"token_idx\": %d, \"layer\": 0, \"experts\": "
			"[%d, %d]}\n", t, trace_l0[t][0], trace_l0[t][1]);
		fprintf(f, "{\"token_idx\": %d, \"layer\": 1, \"experts\": "
			"[%d, %d]}\n", t, trace_l1[t][0], trace_l1[t][1]);
		if (!t)
			fprintf(f, "{\"token_idx\": 0, \"layer\": 2, "
				"\"experts\": [4]}\n");
	}
	return fclose(f);
}

static void test_order(struct fx_model *fm, struct ec_trace *t,
		       struct ec_profile *p)
{
	/*
	 * hot 0: layer 0 chains from its hottest (3) to the expert routed
	 * with it most (1), then -- nothing routed with 1 is left -- the
	 * next by count (4), 2, 0.  Layer 1 starts at 4, the expert routed
	 * most often after layer 0's first (3), not at its hottest (0).
	 * Layer 2: 4, then by key.
	 */
	static const uint32_t want0[NL * NE] = { 3, 1, 4, 2, 0, 9, 7, 5, 6, 8,
						  14, 10, 11, 12, 13 };
	/* hot 40%: {3, 4} first, then the cold chain 1, 2, 0 */
	static const uint32_t want40[NE] = { 3, 4, 1, 2, 0 };
	static const uint32_t count_only[NE] = { 3, 4, 1, 2, 0 };
	uint32_t order[NL * NE];
	double s0, s1;
	int ret;

	ret = ec_layout_order(&fm->m, p, t, 0, order);
	EC_CHECK(ret == 0 && !memcmp(order, want0, sizeof(want0)),
		 "co-activation chain order (%s): %u %u %u %u %u | %u %u %u "
		 "%u %u", ec_error_msg(), order[0], order[1], order[2],
		 order[3], order[4], order[5], order[6], order[7], order[8],
		 order[9]);
	/* spans: (4*2 + 2*3 + 3*2 + 2 + 4*2 + 2*3 + 4*2 + 1) / 21 */
	s1 = ec_layout_mean_span(t, NL, NE, order);
	/* model order: (4*3 + 2*2 + 3*3 + 3 + 4*3 + 2*5 + 4*2 + 1) / 21 */
	s0 = ec_layout_mean_span(t, NL, NE, NULL);
	EC_CHECK(s1 > 45.0 / 21 - 1e-9 && s1 < 45.0 / 21 + 1e-9 &&
		 s0 > 59.0 / 21 - 1e-9 && s0 < 59.0 / 21 + 1e-9,
		 "mean span %.4f (model order %.4f)", s1, s0);
	ret = ec_layout_order(&fm->m, p, t, 40, order);
	EC_CHECK(ret == 0 && !memcmp(order, want40, sizeof(want40)),
		 "hot group first: %u %u %u %u %u", order[0], order[1],
		 order[2], order[3], order[4]);
	ret = ec_layout_order(&fm->m, p, NULL, 0, order);
	EC_CHECK(ret == 0 && !memcmp(order, count_only, sizeof(count_only)),
		 "profile only: count order");
	ret = ec_layout_order(&fm->m, NULL, NULL, 25, order);
	EC_CHECK(ret == 0 && order[0] == 0 && order[NL * NE - 1] ==
		 NL * NE - 1, "nothing given: model order");
	EC_CHECK(ec_layout_order(&fm->m, p, t, 101, order) == -EC_EINVAL,
		 "hot share over 100%% refused");
}

/* Read every expert through a cache over the layout. */
static void test_round_trip(struct fx_model *fm, const char *layout)
{
	struct ec_cache_params p = { .n_slots = NL * NE,
				     .layout_path = layout };
	struct ec_cache_stats st;
	struct ec_cache *c = NULL;
	const struct ec_expert *x;
	uint32_t l, e, bad = 0;

	if (ec_cache_create(&fm->m, &p, &c) < 0) {
		EC_CHECK(0, "cache over the layout: %s", ec_error_msg());
		return;
	}
	for (l = 0; l < NL; l++)
		for (e = 0; e < NE; e++) {
			if (ec_cache_get(c, l, e, &x) < 0) {
				bad++;
				continue;
			}
			bad += !fx_expert_ok(fm, x, l, e, SALT);
			ec_cache_put(c, l, e);
		}
	ec_cache_get_stats(c, &st);
	EC_CHECK(bad == 0, "%u of %u experts read through the layout differ "
		 "from the model file", bad, NL * NE);
	EC_CHECK(st.loads == NL * NE && st.read_requests == st.loads,
		 "one read request per expert (%llu loads, %llu requests)",
		 (unsigned long long)st.loads,
		 (unsigned long long)st.read_requests);
	ec_cache_free(c);

	/* the model file itself: three extents, so three requests each */
	p.layout_path = NULL;
	if (ec_cache_create(&fm->m, &p, &c) < 0) {
		EC_CHECK(0, "cache over the model: %s", ec_error_msg());
		return;
	}
	for (l = 0; l < NL; l++)
		for (e = 0; e < NE; e++)
			if (ec_cache_get(c, l, e, &x) == 0)
				ec_cache_put(c, l, e);
	ec_cache_get_stats(c, &st);
	EC_CHECK(st.read_requests == 3 * st.loads, "model file: %llu "
		 "requests for %llu loads",
		 (unsigned long long)st.read_requests,
		 (unsigned long long)st.loads);
	ec_cache_free(c);
}

static int copy_file(const char *from, const char *to)
{
	char cmd[800];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	return system(cmd);
}

static int patch(const char *path, uint64_t off, const void *b, size_t n)
{
	int fd = open(path, O_WRONLY);
	ssize_t w;

	if (fd < 0)
		return -1;
	w = pwrite(fd, b, n, (off_t)off);
	close(fd);
	return w == (ssize_t)n ? 0 : -1;
}

static uint64_t rd64(int fd, uint64_t off)
{
	uint64_t v = 0;

	if (pread(fd, &v, 8, (off_t)off) != 8)
		return 0;
	return v;	/* little-endian host */
}

/* Recompute the index and header checksums after tampering. */
static void reseal(const char *path)
{
	int fd = open(path, O_RDWR);
	uint64_t ib = rd64(fd, 56), sum;
	uint8_t head[128], *index = malloc(ib);

	if (fd < 0 || !index || pread(fd, index, ib, 128) != (ssize_t)ib ||
	    pread(fd, head, 128, 0) != 128)
		goto out;
	sum = fx_fnv(index, ib);
	memcpy(head + 80, &sum, 8);
	sum = fx_fnv(head, 88);
	memcpy(head + 88, &sum, 8);
	if (pwrite(fd, head, 128, 0) != 128)
		fprintf(stderr, "reseal: write failed\n");
out:
	free(index);
	if (fd >= 0)
		close(fd);
}

static void expect_refused(struct fx_model *fm, const char *path,
			   const char *what, const char *needle)
{
	struct ec_cache_params p = { .n_slots = 2, .layout_path = path };
	struct ec_layout *l = NULL;
	struct ec_cache *c = NULL;
	int ret = ec_layout_load(path, &fm->m, &l);

	EC_CHECK(ret < 0 && strstr(ec_error_msg(), needle) &&
		 strstr(ec_error_msg(), path), "%s: refused naming the file "
		 "and '%s' (got %d: %s)", what, needle, ret, ec_error_msg());
	ec_layout_free(l);
	ret = ec_cache_create(&fm->m, &p, &c);
	EC_CHECK(ret < 0 && !c && strstr(ec_error_msg(), needle),
		 "%s: the cache refuses it too (%s)", what, ec_error_msg());
	ec_cache_free(c);
}

static void test_refused(struct fx_model *fm, struct fx_model *other,
			 const char *good, const char *dir)
{
	char bad[320];
	uint64_t v;
	uint32_t v32;
	int fd;

	snprintf(bad, sizeof(bad), "%s/bad.layout", dir);
	copy_file(good, bad);
	patch(bad, 0, "NOTALAYO", 8);
	expect_refused(fm, bad, "bad magic", "not an expertcache layout");

	copy_file(good, bad);
	v32 = 4;
	patch(bad, 16, &v32, 4);	/* n_layer */
	expect_refused(fm, bad, "header byte flipped", "header checksum");

	copy_file(good, bad);
	v32 = 2;
	patch(bad, 8, &v32, 4);
	reseal(bad);
	expect_refused(fm, bad, "newer version", "version 2");

	copy_file(good, bad);
	patch(bad, 128 + 64 * 3 + 1, "\x55", 1);	/* an entry's offset */
	expect_refused(fm, bad, "index byte flipped", "index checksum");

	copy_file(good, bad);
	fd = open(bad, O_RDONLY);
	v = rd64(fd, 128 + 64 * 3) + 100;	/* unaligned record */
	close(fd);
	patch(bad, 128 + 64 * 3, &v, 8);
	reseal(bad);
	expect_refused(fm, bad, "unaligned record", "(layer 0, expert 3)");

	copy_file(good, bad);
	fd = open(bad, O_RDONLY);
	v = rd64(fd, 128 + 64 * 4);	/* expert 4's record over expert 3's */
	close(fd);
	patch(bad, 128 + 64 * 3, &v, 8);
	reseal(bad);
	expect_refused(fm, bad, "overlapping records", "overlap");

	copy_file(good, bad);
	if (truncate(bad, (off_t)(fm->size / 2)) < 0)
		EC_CHECK(0, "truncate");
	expect_refused(fm, bad, "truncated", "truncated");

	copy_file(good, bad);
	if (truncate(bad, 100) < 0)
		EC_CHECK(0, "truncate");
	expect_refused(fm, bad, "cut inside the header", "truncated");

	/* same shape, other bytes: another model's layout */
	expect_refused(other, good, "another model", "made from another "
		       "model");
	{
		struct fx_model small;

		if (fx_model_init(&small, fm->file.path, NL - 1, NE, SALT,
				  0) == 0 && map_model(&small) == 0) {
			expect_refused(&small, good, "other shape",
				       "layout of 3 layers x 5 experts, the "
				       "model has 2 x 5");
		}
		unmap_model(&small);
		fx_model_fini(&small);
	}
	{
		uint32_t order[NL * NE];
		int i, ret;

		for (i = 0; i < NL * NE; i++)
			order[i] = (uint32_t)i;
		order[5] = 4;
		ret = ec_layout_write(&fm->m, order, bad, NULL, NULL);
		EC_CHECK(ret == -EC_EINVAL && strstr(ec_error_msg(), "key 4 "
			 "at position 5 given twice"), "duplicate key in the "
			 "order refused: %s", ec_error_msg());
	}
	unlink(bad);
}

static void test_fixture(void)
{
	const char *dir = fx_mkdir("layout");
	struct fx_model fm, other;
	struct ec_trace *t = NULL;
	struct ec_profile *p = NULL;
	struct ec_layout *l = NULL;
	uint32_t order[NL * NE];
	int ret;

	snprintf(path_buf[0], sizeof(path_buf[0]), "%s/model.bin", dir);
	snprintf(path_buf[1], sizeof(path_buf[1]), "%s/other.bin", dir);
	snprintf(path_buf[2], sizeof(path_buf[2]), "%s/t.jsonl", dir);
	snprintf(path_buf[3], sizeof(path_buf[3]), "%s/model.layout", dir);
	if (fx_model_init(&fm, path_buf[0], NL, NE, SALT, 1) < 0 ||
	    fx_model_init(&other, path_buf[1], NL, NE, SALT + 1, 1) < 0 ||
	    map_model(&fm) < 0 || map_model(&other) < 0 ||
	    write_trace(path_buf[2]) < 0 ||
	    ec_trace_load(path_buf[2], &t) < 0 ||
	    ec_profile_from_trace(t, 0, &p) < 0) {
		EC_CHECK(0, "fixture set-up: %s", ec_error_msg());
		goto out;
	}
	test_order(&fm, t, p);
	ret = ec_layout_order(&fm.m, p, t, 25, order);
	if (ret == 0)
		ret = ec_layout_write(&fm.m, order, path_buf[3], NULL, NULL);
	EC_CHECK(ret == 0, "write: %s", ec_error_msg());
	if (ret < 0)
		goto out;
	ret = ec_layout_load(path_buf[3], &fm.m, &l);
	EC_CHECK(ret == 0 && l && l->ent[order[0]].offset == l->data_offset &&
		 l->ent[order[1]].offset == l->data_offset +
		 ((l->ent[order[0]].length + 4095) & ~4095ull) &&
		 l->ent[0].part_off[1] == 12352 &&	/* 12289 up to 64 */
		 l->ent[0].length == 12352 * 2 + 9001,
		 "records in order, contiguous, parts 64-byte aligned: %s",
		 ec_error_msg());
	ec_layout_free(l);
	test_round_trip(&fm, path_buf[3]);
	test_refused(&fm, &other, path_buf[3], dir);
out:
	ec_trace_free(t);
	ec_profile_free(p);
	unmap_model(&fm);
	unmap_model(&other);
	fx_model_fini(&fm);
	fx_model_fini(&other);
	fx_cleanup();
}

static int argmax(const float *v, uint32_t n)
{
	uint32_t i, best = 0;

	for (i = 1; i < n; i++)
		if (v[i] > v[best])
			best = i;
	return (int)best;
}

/* Greedy decode; logits (N_DECODE + 1, n_vocab). */
static int decode(const struct ec_model *m, struct ec_backend *be,
		  const struct ec_expert_source *src, float *logits)
{
	struct ec_ctx_params cp = { .n_ctx = 64 };
	uint32_t V = m->hp.n_vocab, i;
	int32_t prompt[3] = { 1, 2, 3 }, tok;
	struct ec_ctx *ctx = NULL;
	int ret;

	ret = ec_ctx_create(m, be, &cp, &ctx);
	if (ret < 0)
		return ret;
	ec_ctx_set_expert_source(ctx, src);
	ret = ec_ctx_eval(ctx, prompt, 3, logits, 0);
	for (i = 0; ret == 0 && i < N_DECODE; i++) {
		tok = argmax(logits + (size_t)i * V, V);
		ret = ec_ctx_eval(ctx, &tok, 1, logits + (size_t)(i + 1) * V,
				  0);
	}
	ec_ctx_free(ctx);
	return ret;
}

/* A real GGUF: bytes of every expert, and generation at 25%. */
static void test_model(const char *path)
{
	const char *dir = fx_mkdir("layout-model");
	struct ec_cache_params p = { .n_slots = UINT32_MAX };
	struct ec_model *m = NULL;
	struct ec_backend *be = NULL;
	struct ec_cache *c = NULL;
	struct ec_expert_source src;
	uint32_t *order = NULL, l, e, bad = 0, nk, i;
	float *ref = NULL, *got = NULL;
	char lay[400];
	size_t nl;
	int q, ret;

	snprintf(lay, sizeof(lay), "%s/m.layout", dir);
	if (ec_model_open(path, &m) < 0) {
		EC_CHECK(0, "%s: %s", path, ec_error_msg());
		goto out;
	}
	nk = m->hp.n_layer * m->hp.n_expert;
	order = malloc(nk * sizeof(*order));
	if (!order)
		goto out;
	for (i = 0; i < nk; i++)	/* reversed: nothing stays in place */
		order[i] = nk - 1 - i;
	ret = ec_layout_write(m, order, lay, NULL, NULL);
	p.layout_path = lay;
	if (ret == 0)
		ret = ec_cache_create(m, &p, &c);
	EC_CHECK(ret == 0, "%s: layout + cache: %s", path, ec_error_msg());
	if (ret < 0)
		goto out;
	for (l = 0; l < m->hp.n_layer; l++)
		for (e = 0; e < m->hp.n_expert; e++) {
			const struct ec_expert *ref_x =
				&m->layers[l].experts[e];
			const struct ec_expert *x;

			if (ec_cache_get(c, l, e, &x) < 0) {
				bad++;
				continue;
			}
			for (q = 0; q < EC_EXPERT_NPARTS; q++)
				if (x->w[q].data == ref_x->w[q].data ||
				    memcmp(x->w[q].data, ref_x->w[q].data,
					   ref_x->w[q].nbytes))
					break;
			bad += q < EC_EXPERT_NPARTS;
			ec_cache_put(c, l, e);
		}
	EC_CHECK(bad == 0, "%s: %u of %u experts' bytes through the layout "
		 "differ from the GGUF", path, bad, nk);
	ec_cache_free(c);
	c = NULL;

	nl = (size_t)(N_DECODE + 1) * m->hp.n_vocab;
	ref = calloc(nl, sizeof(float));
	got = calloc(nl, sizeof(float));
	if (!ref || !got || ec_backend_cpu_create(1, &be) < 0)
		goto out;
	if (decode(m, be, NULL, ref) < 0) {
		EC_SKIP("%s: the forward pass cannot run it: %s", path,
			ec_error_msg());
		goto out;
	}
	p.n_slots = 0;
	ec_parse_budget("25%", ec_model_total_expert_bytes(m), &p.ram_budget);
	ret = ec_cache_create(m, &p, &c);
	if (ret == -EC_EINVAL) {	/* tiny models: 25% < one slot */
		p.n_slots = 1;
		ret = ec_cache_create(m, &p, &c);
	}
	if (ret == 0) {
		ec_cache_expert_source(c, &src);
		ret = decode(m, be, &src, got);
	}
	EC_CHECK(ret == 0 && !memcmp(ref, got, nl * sizeof(float)),
		 "%s: greedy decoding at 25%% through the layout gives "
		 "bit-identical logits (%s)", path, ret ? ec_error_msg() : "");
out:
	ec_cache_free(c);
	if (be)
		be->ops->destroy(be);
	free(ref);
	free(got);
	free(order);
	ec_model_close(m);
	fx_cleanup();
}

int main(void)
{
	const char *fixture = "tests/fuzz/corpus/gguf/tiny_qwen3moe.gguf";
	struct dirent *de;
	DIR *d;
	int n = 0;

	test_fixture();
	if (!access(fixture, R_OK)) {
		test_model(fixture);
		n++;
	}
	if ((d = opendir("models"))) {
		while ((de = readdir(d))) {
			size_t len = strlen(de->d_name);
			char path[600];

			if (len < 6 || strcmp(de->d_name + len - 5, ".gguf"))
				continue;
			snprintf(path, sizeof(path), "models/%s", de->d_name);
			test_model(path);
			n++;
		}
		closedir(d);
	}
	if (!n)
		EC_SKIP("no GGUF model (fixture or models/*.gguf): layout "
			"round trip on real models not run");
	return ec_test_done();
}

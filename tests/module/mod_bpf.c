/* mod_bpf.c - guest test: a libbpf-loaded program on expertcache:slot_*
 * tracepoints counts exactly the slot transitions this test performs. */
#include <linux/types.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>

#include "ecm_test.h"
#include "module_tracepoints.h"
#include "module_tracepoints.skel.h"

#define TP_DIR "/sys/kernel/tracing/events/expertcache/"

/* The BPF context struct hard-codes these offsets: check the format file. */
static void test_format(void)
{
	static const char *const want[] = {
		"field:u64 pool_id;\toffset:8;\tsize:8;",
		"field:u64 key;\toffset:16;\tsize:8;",
		"field:u64 gen;\toffset:24;\tsize:8;",
		"field:u32 slot;\toffset:32;\tsize:4;",
	};
	char buf[4096];
	ssize_t n;
	size_t i, found = 0;
	int fd = open(TP_DIR "slot_fill/format", O_RDONLY);

	if (fd < 0) {
		ECM_CHECK(0, "slot_fill format file", "%s", strerror(errno));
		return;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		found += strstr(buf, want[i]) != NULL;
	ECM_CHECK(found == 4, "tracepoint layout matches the BPF context",
		  "%zu of 4 fields found in:\n%s", found, buf);
}

static int read_count(struct module_tracepoints *skel, __u32 which,
		      struct ec_tp_count *out)
{
	return bpf_map_lookup_elem(bpf_map__fd(skel->maps.counts), &which,
				   out);
}

int main(void)
{
	struct module_tracepoints *skel = NULL;
	struct ec_tp_count fill, claim, abrt, evict;
	struct ec_pool_info pi;
	struct ec_slot_op op;
	uint64_t fill_keys = 0, claim_keys = 0, abort_keys = 0, evict_keys = 0;
	int fd = ecm_open(), other = ecm_open();
	int n_fill = 0, n_claim = 0, n_abort = 0, n_evict = 0, i, err;

	ecm_prog = "bpf";
	test_format();
	if (ecm_create(fd, "bpfpool", 8, 4096, 0, -1) ||
	    ecm_create(other, "otherpool", 8, 4096, 0, -1) ||
	    ecm_pool_info(fd, &pi)) {
		ECM_CHECK(0, "create pools", "%s", strerror(errno));
		return ecm_done();
	}

	skel = module_tracepoints__open();
	if (!skel) {
		ECM_CHECK(0, "open skeleton", "%s", strerror(errno));
		return ecm_done();
	}
	skel->rodata->target_pool = pi.pool_id;
	err = module_tracepoints__load(skel);
	ECM_CHECK(!err, "load BPF program", "err %d", err);
	if (!err) {
		err = module_tracepoints__attach(skel);
		ECM_CHECK(!err, "attach to expertcache tracepoints", "err %d",
			  err);
	}
	if (err)
		goto out;

	/* Traffic in the watched pool: fills, aborts, evictions. */
	for (i = 0; i < 37; i++) {
		uint64_t key = 1000 + i * 13;

		if (ecm_slot(fd, EC_SLOT_OP_ACQUIRE, 0, key, 0, &op))
			break;
		n_claim++;
		claim_keys += key;
		if (i % 5 == 4) {
			ecm_slot(fd, EC_SLOT_OP_ABORT, op.slot, 0, 0, NULL);
			n_abort++;
			abort_keys += key;
			continue;
		}
		/* A READY refused (wrong key) must not count as a fill. */
		ecm_slot(fd, EC_SLOT_OP_READY, op.slot, key + 1,
			 EC_SLOT_F_CHECK_KEY, NULL);
		if (ecm_slot(fd, EC_SLOT_OP_READY, op.slot, 0, 0, NULL))
			break;
		n_fill++;
		fill_keys += key;
		if (ecm_slot(fd, EC_SLOT_OP_EVICT, op.slot, 0, 0, NULL))
			break;
		n_evict++;
		evict_keys += key;
	}
	ECM_CHECK(i == 37, "slot traffic ran", "stopped at %d: %s", i,
		  strerror(errno));
	/* Traffic in another pool: filtered out by target_pool. */
	for (i = 0; i < 5; i++) {
		ecm_slot(other, EC_SLOT_OP_ACQUIRE, 0, i, 0, &op);
		ecm_slot(other, EC_SLOT_OP_READY, op.slot, 0, 0, NULL);
	}

	err = read_count(skel, EC_TP_FILL, &fill) |
	      read_count(skel, EC_TP_CLAIM, &claim) |
	      read_count(skel, EC_TP_ABORT, &abrt) |
	      read_count(skel, EC_TP_EVICT, &evict);
	ECM_CHECK(!err, "read counts map", "err %d", err);
	ECM_CHECK(fill.events == (uint64_t)n_fill && fill.key_sum == fill_keys,
		  "BPF counts exactly the slot fills",
		  "bpf %llu fills (keys %llu), test did %d (keys %llu)",
		  (unsigned long long)fill.events,
		  (unsigned long long)fill.key_sum, n_fill,
		  (unsigned long long)fill_keys);
	ECM_CHECK(claim.events == (uint64_t)n_claim &&
		  claim.key_sum == claim_keys, "BPF counts the claims",
		  "bpf %llu, test %d", (unsigned long long)claim.events,
		  n_claim);
	ECM_CHECK(abrt.events == (uint64_t)n_abort &&
		  abrt.key_sum == abort_keys, "BPF counts the aborts",
		  "bpf %llu, test %d", (unsigned long long)abrt.events,
		  n_abort);
	ECM_CHECK(evict.events == (uint64_t)n_evict &&
		  evict.key_sum == evict_keys, "BPF counts the evictions",
		  "bpf %llu, test %d", (unsigned long long)evict.events,
		  n_evict);
	ecm_info("fills %d claims %d aborts %d evictions %d", n_fill, n_claim,
		 n_abort, n_evict);
out:
	module_tracepoints__destroy(skel);
	close(fd);
	close(other);
	ecm_check_idle("idle after bpf test");
	return ecm_done();
}

/* mod_concurrent.c - guest test: 4 processes attach, map, fill, pin, evict
 * and detach one named pool concurrently (and one more creates/destroys
 * pools by name); pinned data never changes under a reader; every counter
 * adds up afterwards. */
#include <signal.h>

#include "ecm_test.h"

#define NPROC 4
#define NSLOT 8
#define NKEY 24
#define SLOT (16 * 1024)
#define WORDS (SLOT / 8)

static uint64_t word(uint64_t key, size_t i)
{
	return key * 0x9e3779b97f4a7c15ull + i;
}

static uint64_t rnd_state;
static int worker_id;

/* Counts an error, describing the first few. */
static int oops(const char *what, uint64_t key, uint32_t slot, int err)
{
	static int shown;

	if (shown++ < 3)
		printf("# concurrent: worker %d: %s key %llu slot %u: %s\n",
		       worker_id, what, (unsigned long long)key, slot,
		       strerror(err));
	return 1;
}

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* One worker; returns the number of integrity errors (or 100+ on setup). */
static int worker(int id, int iters)
{
	int errors = 0, it;

	rnd_state = 0x1234567ull * (id + 1);
	worker_id = id;
	for (it = 0; it < iters; it++) {
		struct ec_pool_info pi;
		struct ec_slot_op op;
		void *table, *data;
		int fd = ecm_open(), k, leave_mess = rnd() % 8 == 0;

		if (fd < 0)
			return 100;
		if (ecm_attach(fd, "conc", EC_ATTACH_F_WRITE) ||
		    ecm_pool_info(fd, &pi) ||
		    ecm_map(fd, &pi, 1, &table, &data)) {
			close(fd);
			return 101;
		}
		for (k = 0; k < 12; k++) {
			uint64_t key = rnd() % NKEY, *p;
			size_t i;

			if (ecm_slot(fd, EC_SLOT_OP_ACQUIRE, 0, key, 0, &op)) {
				if (errno == ENOSPC)
					ecm_slot(fd, EC_SLOT_OP_EVICT,
						 rnd() % NSLOT, 0, 0, NULL);
				else if (errno != EAGAIN)
					errors += oops("acquire", key, 0, errno);
				continue;
			}
			p = (uint64_t *)((char *)data +
					 (size_t)op.slot * SLOT);
			if (op.flags & EC_SLOT_F_CLAIMED) {
				if (leave_mess && k == 11)
					break;	/* exit while LOADING */
				for (i = 0; i < WORDS; i++)
					p[i] = word(key, i);
				if (rnd() % 10 == 0)
					ecm_slot(fd, EC_SLOT_OP_ABORT, op.slot,
						 0, 0, NULL);
				else if (ecm_slot(fd, EC_SLOT_OP_READY,
						  op.slot, key,
						  EC_SLOT_F_CHECK_KEY, NULL))
					errors += oops("ready", key, op.slot,
						       errno);
				continue;
			}
			/* Pinned: nobody may evict or refill under us. */
			for (i = 0; i < WORDS; i++)
				if (p[i] != word(key, i)) {
					errors += oops("pinned data", key,
						       op.slot, EILSEQ);
					break;
				}
			if (rnd() % 4 == 0)
				ecm_slot(fd, EC_SLOT_OP_EVICT, op.slot, key,
					 EC_SLOT_F_CHECK_KEY, NULL);
			for (i = 0; i < WORDS; i += 64)
				if (p[i] != word(key, i)) {
					errors += oops("data after evict", key,
						       op.slot, EILSEQ);
					break;
				}
			if (!leave_mess)
				ecm_slot(fd, EC_SLOT_OP_UNPIN, op.slot, 0, 0,
					 NULL);
		}
		if (rnd() % 2)
			ioctl(fd, EC_IOC_POOL_DETACH);
		munmap(table, pi.table_bytes);
		munmap(data, pi.data_bytes);
		close(fd);
	}
	return errors > 99 ? 99 : errors;
}

/* Creates and destroys "churn" while workers try to attach to it. */
static int churner(int iters)
{
	int it, fd;

	for (it = 0; it < iters; it++) {
		fd = ecm_open();
		if (it % 2) {
			if (ecm_create(fd, "churn", 2, 4096, 0, -1) &&
			    errno != EEXIST)
				return 1;
		} else {
			if (ecm_attach(fd, "churn", 0) && errno != ENOENT)
				return 2;
		}
		close(fd);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 150;
	struct ec_pool_stats st;
	struct ec_pool_info pi;
	struct ec_slot_entry e;
	pid_t pids[NPROC + 2];
	void *table, *data;
	uint32_t i, pins = 0, loading = 0;
	int fd = ecm_open(), status, n, bad = 0;
	double t0 = ecm_now();

	ecm_prog = "concurrent";
	if (ecm_create(fd, "conc", NSLOT, SLOT, 0, -1) ||
	    ecm_pool_info(fd, &pi) || ecm_map(fd, &pi, 0, &table, &data)) {
		ECM_CHECK(0, "create 'conc'", "%s", strerror(errno));
		return ecm_done();
	}
	for (n = 0; n < NPROC; n++) {
		pids[n] = fork();
		if (pids[n] == 0)
			_exit(worker(n, iters));
	}
	pids[NPROC] = fork();
	if (pids[NPROC] == 0)
		_exit(churner(iters * 4));
	pids[NPROC + 1] = fork();
	if (pids[NPROC + 1] == 0)
		_exit(churner(iters * 4));
	for (n = 0; n < NPROC + 2; n++) {
		waitpid(pids[n], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			bad++;
			ecm_info("process %d: status %#x", n, status);
		}
	}
	ECM_CHECK(!bad, "4 workers + 2 churners: no integrity errors",
		  "%d processes reported errors", bad);
	ecm_info("%d x %d attach/map/fill/pin/evict/detach rounds in %.1f s",
		 NPROC, iters, ecm_now() - t0);

	for (i = 0; i < NSLOT; i++) {
		ecm_entry_read(table, i, &e);
		pins += e.pins;
		loading += e.state == EC_SLOT_LOADING;
	}
	ecm_pool_stats(fd, &st);
	ecm_pool_info(fd, &pi);
	ECM_CHECK(pins == 0 && loading == 0 && st.n_loading == 0 &&
		  st.n_evicting == 0 && pi.n_attached == 1 &&
		  pi.n_mappings == 2, "everything given back by the workers",
		  "pins %u loading %u evicting %u attached %u mappings %u",
		  pins, loading, st.n_evicting, pi.n_attached, pi.n_mappings);
	ECM_CHECK(st.claims == st.fills + st.aborts &&
		  st.fills == st.evictions + st.n_ready &&
		  st.pins == st.unpins && st.claims > 100 && st.pins > 100,
		  "counters add up",
		  "claims %llu fills %llu aborts %llu evictions %llu ready %u "
		  "pins %llu unpins %llu",
		  (unsigned long long)st.claims, (unsigned long long)st.fills,
		  (unsigned long long)st.aborts,
		  (unsigned long long)st.evictions, st.n_ready,
		  (unsigned long long)st.pins, (unsigned long long)st.unpins);
	munmap(table, pi.table_bytes);
	munmap(data, pi.data_bytes);
	close(fd);
	ecm_check_idle("idle after concurrency test");
	return ecm_done();
}

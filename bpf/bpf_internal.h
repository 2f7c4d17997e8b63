/* SPDX-License-Identifier: MIT */
/* Helpers shared by the BPF loaders (bpf_env.c); not for the CLI. */
#ifndef EC_BPF_INTERNAL_H
#define EC_BPF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

struct bpf_map;

/* bpffs mounted at /sys/fs/bpf?  The message names dir. */
int ec_bpf_bpffs_ok(const char *dir);
/* Check bpffs and create dir. */
int ec_bpf_pin_dir(const char *dir);

#ifdef EC_HAVE_BPF
/* Route libbpf's messages: kept for errors, printed with
 * EXPERTCACHE_BPF_VERBOSE=1. */
void ec_bpf_libbpf_init(void);
/* ec_err() with strerror and libbpf's last warning. */
int ec_bpf_libbpf_err(int err, const char *what);
/* Every (key, value) of a hash map; *keys, *vals malloc'd. */
int ec_bpf_map_dump(int fd, size_t key_sz, size_t val_sz, void **keys,
		    void **vals, uint32_t *n);
/* fd of dir/name, or a negative error naming the path. */
int ec_bpf_open_pinned(const char *dir, const char *name);
/* Pin map as dir/<map name>, replacing an older pin. */
int ec_bpf_pin_map(struct bpf_map *map, const char *dir);
#endif

#endif /* EC_BPF_INTERNAL_H */

/* SPDX-License-Identifier: MIT */
/*
 * The user-space backend: PROT_NONE reservations, shadow entries as
 * mmap(MAP_FIXED | MAP_SHARED) of the guest RAM fd, faults through SIGSEGV.
 * Works on any Linux without privileges. Every op is a single system call,
 * hence async-signal-safe.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "../internal.h"

#define RESERVE_FLAGS (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)

static int user_probe(void)
{
	return 0;
}

static int user_init(struct btmmu *ctx)
{
	(void)ctx;
	return 0;
}

static void user_fini(struct btmmu *ctx)
{
	(void)ctx;
}

static int user_reserve(struct btmmu *ctx, uint64_t lead, uint64_t len, uint64_t align,
			uintptr_t *start)
{
	uint64_t total = lead + len + align;
	uintptr_t p, a;
	void *m;

	(void)ctx;
	if (total < len)
		return -ENOMEM;
	m = mmap(NULL, total, PROT_NONE, RESERVE_FLAGS, -1, 0);
	if (m == MAP_FAILED)
		/* The arguments are valid: EINVAL (valgrind) means no room too. */
		return errno == EINVAL ? -ENOMEM : -errno;
	p = (uintptr_t)m;
	a = (p + lead + align - 1) & ~(uintptr_t)(align - 1);
	/* Trim the slack on both sides so only [a - lead, a + len) stays reserved. */
	if (a - lead > p)
		munmap((void *)p, a - lead - p);
	if (p + total > a + len)
		munmap((void *)(a + len), p + total - (a + len));
	*start = a;
	return 0;
}

/*
 * A shared anonymous mapping is a file of its own: the kernel never merges
 * it with a neighbour, so the ends of the range it bounds stay mapping ends.
 */
static int user_fence(struct btmmu *ctx, uintptr_t addr, uint64_t len)
{
	void *m;

	(void)ctx;
	m = mmap((void *)addr, len, PROT_NONE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	return m == MAP_FAILED ? -errno : 0;
}

static int user_release(struct btmmu *ctx, uintptr_t start, uint64_t len)
{
	(void)ctx;
	return munmap((void *)start, len) ? -errno : 0;
}

static int user_install(struct btmmu *ctx, uintptr_t addr, uint64_t len, int prot, int fd,
			uint64_t fd_off, bool populate)
{
	int flags = MAP_SHARED | MAP_FIXED | (populate ? MAP_POPULATE : 0);
	void *m;

	(void)ctx;
	m = mmap((void *)addr, len, prot, flags, fd, (off_t)fd_off);
	return m == MAP_FAILED ? -errno : 0;
}

static int user_protect(struct btmmu *ctx, uintptr_t addr, uint64_t len, int prot)
{
	(void)ctx;
	return mprotect((void *)addr, len, prot) ? -errno : 0;
}

static int user_clear(struct btmmu *ctx, uintptr_t addr, uint64_t len)
{
	void *m;

	(void)ctx;
	/* Same flags as the reservation, so the kernel merges the pieces again. */
	m = mmap((void *)addr, len, PROT_NONE, RESERVE_FLAGS | MAP_FIXED, -1, 0);
	return m == MAP_FAILED ? -errno : 0;
}

const struct btmmu_backend_ops btmmu__backend_user = {
	.size = sizeof(struct btmmu_backend_ops),
	.name = "user",
	.caps = BTMMU_BACKEND_COUNTS_MAPPINGS,
	.probe = user_probe,
	.init = user_init,
	.fini = user_fini,
	.reserve = user_reserve,
	.fence = user_fence,
	.release = user_release,
	.install = user_install,
	.protect = user_protect,
	.clear = user_clear,
};

/* SPDX-License-Identifier: MIT */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/memcheck.h>
#endif

#include "fixture.h"

struct fx fx;

static const struct fx_pte *lookup(uint64_t gva, uint64_t page)
{
	unsigned i;

	for (i = 0; i < fx.npte; i++) {
		if (gva - fx.pte[i].gva < page)
			return &fx.pte[i];
	}
	return NULL;
}

int fx_callback(struct btmmu_fault *f, void *opaque)
{
	struct btmmu_view_info vi = { .size = sizeof(vi) };
	const struct fx_pte *p;
	struct btmmu_map_req q;
	uint64_t page;

	(void)opaque;
	fx.last = *f;
	fx.nfaults++;
	switch (fx.policy) {
	case FX_SLOW:
		return BTMMU_FAULT_SLOW;
	case FX_RETRY_ONLY:
		return BTMMU_FAULT_RETRY;
	case FX_NOT_MINE:
		return BTMMU_FAULT_NOT_MINE;
	case FX_CUSTOM:
		return fx.custom(f);
	case FX_MAP:
		break;
	}
	btmmu_view_info(f->space, f->view, &vi);
	page = UINT64_C(1) << vi.page_shift;
	p = lookup(f->gva, page);
	if (!p)
		return BTMMU_FAULT_SLOW;
	q.gva = p->gva;
	q.gpa = p->gpa;
	q.len = page;
	q.prot = p->prot;
	q.flags = p->flags;
	fx.last_map_ret = btmmu_map(f->space, f->view, &q);
	return fx.last_map_ret > 0 ? BTMMU_FAULT_RETRY : BTMMU_FAULT_SLOW;
}

void fx_open(uint32_t host_page_shift, uint32_t flags)
{
	fx_open_limited(host_page_shift, flags, 0, 0);
}

void fx_open_limited(uint32_t host_page_shift, uint32_t flags, uint64_t max_mappings,
		     uint64_t max_entries)
{
	struct btmmu_open_args oa = {
		.size = sizeof(oa),
		.flags = flags,
		.host_page_shift = host_page_shift,
		.fault_fn = fx_callback,
		.max_mappings = max_mappings,
		.max_entries = max_entries,
	};
	struct btmmu_ram_args ra = {
		.size = sizeof(ra),
		.gpa = 0,
		.len = FX_RAM_SIZE,
		.fd = -1,
	};
	void *host;

	memset(&fx, 0, sizeof(fx));
	ck_assert_int_eq(btmmu_open(&oa, &fx.ctx), 0);
	ck_assert_int_eq(btmmu_ram_create(fx.ctx, &ra, &fx.ram), 0);
	ck_assert_int_eq(btmmu_ram_host(fx.ram, &host), 0);
	fx.host = host;
}

void fx_space(uint32_t va_bits, uint32_t page_shift, uint32_t flags)
{
	struct btmmu_space_args sa = {
		.size = sizeof(sa),
		.va_bits = va_bits,
		.page_shift = page_shift,
		.nviews = 2,
		.flags = flags,
	};

	ck_assert_int_eq(btmmu_space_create(fx.ctx, &sa, &fx.sp), 0);
}

void fx_close(void)
{
	if (!fx.ctx)
		return;
	if (fx.sp)
		ck_assert_int_eq(btmmu_space_destroy(fx.sp), 0);
	if (fx.ram)
		ck_assert_int_eq(btmmu_ram_destroy(fx.ram), 0);
	ck_assert_int_eq(btmmu_close(fx.ctx), 0);
	memset(&fx, 0, sizeof(fx));
}

void fx_add_pte(uint64_t gva, uint64_t gpa, uint32_t prot)
{
	ck_assert_uint_lt(fx.npte, FX_MAX_PTES);
	fx.pte[fx.npte].gva = gva;
	fx.pte[fx.npte].gpa = gpa;
	fx.pte[fx.npte].prot = prot;
	fx.pte[fx.npte].flags = 0;
	fx.npte++;
}

uintptr_t fx_base(unsigned view)
{
	uintptr_t b = 0;

	ck_assert_int_eq(btmmu_view_base(fx.sp, view, &b), 0);
	return b;
}

struct btmmu_stats fx_stats(void)
{
	struct btmmu_stats st = { .size = sizeof(st) };

	ck_assert_int_eq(btmmu_stats_get(fx.ctx, &st), 0);
	return st;
}

int fx_map(unsigned view, uint64_t gva, uint64_t gpa, uint64_t len, uint32_t prot, uint32_t flags)
{
	struct btmmu_map_req q = { .gva = gva, .gpa = gpa, .len = len, .prot = prot, .flags = flags };

	return btmmu_map(fx.sp, view, &q);
}

int fx_valgrind(void)
{
#ifdef HAVE_VALGRIND_MEMCHECK_H
	if (RUNNING_ON_VALGRIND)
		return 1;
#endif
	return getenv("BTMMU_TEST_VALGRIND") != NULL;
}

void fx_valgrind_expect_faults(void)
{
#ifdef HAVE_VALGRIND_MEMCHECK_H
	VALGRIND_DISABLE_ERROR_REPORTING;
#endif
}

int fx_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

#ifdef HAVE_VALGRIND_MEMCHECK_H
	/*
	 * Under valgrind: the tests dereference the first pages on purpose
	 * (real crashes, chained faults); those are not memory errors.
	 */
	VALGRIND_DISABLE_ADDR_ERROR_REPORTING_IN_RANGE(0, 65536);
#endif
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* SPDX-License-Identifier: MIT */
/*
 * The smallest complete use of libbtmmu: guest RAM, one address space, a
 * fault callback that installs the faulting page (guest VA == guest PA
 * here) and retries, and a guest access through the shadow.
 *
 *   cc minimal.c $(pkg-config --cflags --libs libbtmmu) -o minimal
 */
#include <stdio.h>
#include <string.h>

#include <btmmu/btmmu.h>

#define RAM_SIZE (1u << 20)

static int on_fault(struct btmmu_fault *f, void *opaque)
{
	struct btmmu_map_req req = {
		.gva = f->gva & ~UINT64_C(0xfff),
		.gpa = f->gva & ~UINT64_C(0xfff),
		.len = 4096,
		.prot = BTMMU_PROT_READ | BTMMU_PROT_WRITE,
	};

	(void)opaque;
	if (f->gva >= RAM_SIZE)
		return BTMMU_FAULT_SLOW; /* not guest RAM: emulate (MMIO...) */
	return btmmu_map(f->space, f->view, &req) > 0 ? BTMMU_FAULT_RETRY : BTMMU_FAULT_SLOW;
}

int main(void)
{
	struct btmmu_open_args oa = { .size = sizeof(oa), .fault_fn = on_fault };
	struct btmmu_ram_args ra = { .size = sizeof(ra), .gpa = 0, .len = RAM_SIZE, .fd = -1 };
	struct btmmu_space_args sa = { .size = sizeof(sa), .va_bits = 32, .page_shift = 12,
				       .nviews = 1 };
	struct btmmu_space *space;
	struct btmmu_ram *ram;
	struct btmmu *ctx;
	uintptr_t base;
	void *host;
	int ret;

	ret = btmmu_open(&oa, &ctx);
	if (ret) {
		fprintf(stderr, "btmmu_open: %s\n", strerror(-ret));
		return 1;
	}
	if ((ret = btmmu_ram_create(ctx, &ra, &ram)) ||
	    (ret = btmmu_space_create(ctx, &sa, &space)) ||
	    (ret = btmmu_view_base(space, 0, &base)) || (ret = btmmu_ram_host(ram, &host))) {
		fprintf(stderr, "libbtmmu: %s\n", strerror(-ret));
		return 1;
	}
	strcpy((char *)host + 0x2000, "hello from guest RAM");

	/* Translated code would do exactly this: one access at base + gva. */
	printf("minimal: libbtmmu %s, backend %s: %s\n", btmmu_version_string(),
	       btmmu_backend_name(ctx), (const char *)(base + 0x2000));

	btmmu_space_destroy(space);
	btmmu_ram_destroy(ram);
	return btmmu_close(ctx) ? 1 : 0;
}

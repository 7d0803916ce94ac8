/* SPDX-License-Identifier: MIT */
/*
 * Regions and views below the shadow layer: guest VA checks against a
 * space's geometry, the window clip, and publishing a view's base. Pure
 * functions and stores; async-signal-safe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static bool canonical(const struct btmmu_space *sp, uint64_t a)
{
	unsigned sh = 64 - sp->va_bits;

	if (sp->va_bits == 64)
		return true;
	if (sp->flags & BTMMU_SPACE_SIGN_EXTEND)
		return (uint64_t)((int64_t)(a << sh) >> sh) == a;
	return (a >> sp->va_bits) == 0;
}

/* [gva, gva+len) lies in the guest VA, without wrapping around it. */
bool btmmu__va_valid(const struct btmmu_space *sp, uint64_t gva, uint64_t len)
{
	uint64_t last = gva + len - 1;

	if (!canonical(sp, gva) || !canonical(sp, last))
		return false;
	if (sp->flags & BTMMU_SPACE_SIGN_EXTEND)
		return (int64_t)last >= (int64_t)gva;
	return last >= gva;
}

/*
 * Clip [gva, gva+len) to the window: region offsets [*lo, *hi), and *skip
 * bytes of the request before the window. False when they do not meet.
 */
bool btmmu__window_clip(const struct btmmu_space *sp, uint64_t gva, uint64_t len, uint64_t *lo,
		 uint64_t *hi, uint64_t *skip)
{
	uint64_t off = gva - sp->window_gva;

	if (off < sp->window_size) {
		*skip = 0;
		*lo = off;
		*hi = off + BTMMU_MIN(len, sp->window_size - off);
		return true;
	}
	*skip = sp->window_gva - gva;
	if (*skip >= len)
		return false;
	*lo = 0;
	*hi = BTMMU_MIN(len - *skip, sp->window_size);
	return true;
}

void btmmu__view_publish(struct btmmu_space *sp, unsigned v)
{
	struct btmmu__view *view = &sp->views[v];
	uintptr_t base = view->cur->start - (uintptr_t)sp->window_gva;

	atomic_store_explicit(&view->base, base, memory_order_release);
	if (sp->base_slots)
		__atomic_store_n(&sp->base_slots[v], base, __ATOMIC_RELEASE);
}

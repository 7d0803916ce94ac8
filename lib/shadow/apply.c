/* SPDX-License-Identifier: MIT */
/*
 * Giving an entry its host rights: one host call per run of host pages
 * whose rights agree. Under ctx->lock; async-signal-safe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shadow.h"

/*
 * Give the entry's unit its effective rights, one host call per run of host
 * pages whose rights agree (they differ only where a protect() ceiling
 * covers part of a unit larger than the host page): map the runs when
 * installing, change their protection otherwise. Sets npieces and hprot.
 * Installing stops at the first error; re-protecting goes on and returns
 * the first error.
 */
int btmmu__apply_runs(struct btmmu *ctx, struct btmmu__entry *e, bool install, bool populate)
{
	uintptr_t addr = e->region->start + e->off;
	uint64_t hp = UINT64_C(1) << ctx->host_page_shift, us = unit_size(e);
	uint64_t start = 0, off;
	uint32_t prot, run_prot = 0, last = 0, pieces = 0;
	int ret = 0, rc;

	for (off = 0; off <= us; off += hp) {
		prot = off < us ? btmmu__entry_host_prot(ctx, e, off) : UINT32_MAX;
		if (off && prot == run_prot)
			continue;
		if (off) {
			if (install) {
				rc = ctx->ops->install(ctx, addr + start, off - start,
						       (int)run_prot, e->ram->fd, fd_off(e, start),
						       populate);
				if (rc)
					return rc;
				btmmu__stat_add(&ctx->st.install_calls, 1);
			} else {
				rc = ctx->ops->protect(ctx, addr + start, off - start,
						       (int)run_prot);
				if (rc && !ret)
					ret = rc;
			}
			pieces++;
			last = run_prot;
		}
		start = off;
		run_prot = prot;
		if (!e->ram->ndenied) /* one run: no need to look at every host page */
			off = us - hp;
	}
	e->npieces = pieces;
	e->hprot = (uint8_t)(pieces == 1 ? last : 0);
	return ret;
}

/* SPDX-License-Identifier: MIT */
/*
 * The backend list, in probe order, and selection: the caller's name, then
 * $BTMMU_BACKEND, then the first backend whose probe succeeds. Backends are
 * listed here explicitly (no constructors), so the order is visible.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"

static const struct btmmu_backend_ops *const backends[] = {
	/* kmod and model slot in here: kmod first, user, then model. */
	&btmmu__backend_user,
};

#define NBACKENDS (sizeof(backends) / sizeof(backends[0]))

int btmmu__backend_select(const char *name, const struct btmmu_backend_ops **opsp)
{
	size_t i;

	if (!name || !*name)
		name = getenv("BTMMU_BACKEND");
	if (name && *name) {
		for (i = 0; i < NBACKENDS; i++) {
			if (strcmp(backends[i]->name, name))
				continue;
			if (backends[i]->probe())
				return -ENODEV;
			*opsp = backends[i];
			return 0;
		}
		return -ENOENT;
	}
	for (i = 0; i < NBACKENDS; i++) {
		if (!backends[i]->probe()) {
			*opsp = backends[i];
			return 0;
		}
	}
	return -ENODEV;
}

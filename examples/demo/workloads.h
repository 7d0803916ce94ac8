/* SPDX-License-Identifier: MIT */
/*
 * The demo's workloads: a guest program and how to run it.
 */
#ifndef DEMO_WORKLOADS_H
#define DEMO_WORKLOADS_H

#include <stdbool.h>
#include <stdint.h>

#include "isa.h"

struct workload {
	const char *name;
	const char *what;		/* one line for --help and the table */
	unsigned nprocs;		/* processes running the program */
	uint32_t data_size;		/* demand-zero data per process, bytes */
	uint32_t args[4];		/* r4..r7 at entry */
	int iters_arg;			/* which args[] --scale multiplies, -1: none */
	void (*build)(struct gasm *A);	/* emits the program */
};

/* The workloads of a full or a --quick run. Returns how many. */
unsigned workloads_get(bool quick, const struct workload **list);

#endif /* DEMO_WORKLOADS_H */

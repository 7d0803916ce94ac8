/* SPDX-License-Identifier: MIT */
/*
 * Telling valgrind's memcheck that the shadow windows fault on purpose.
 * Translated code (and the btmmu_load and store probes) touch window pages
 * that hold no entry yet; the fault is the library's refill, not a bug of
 * the program. Memcheck would report each as an invalid read or write, so
 * the windows are excluded from its addressing checks while they exist.
 * Built with valgrind's header (configure finds valgrind/memcheck.h); the
 * client requests are a few no-op instructions when not under valgrind,
 * and nothing at all without the header.
 */
#ifndef BTMMU_BASE_VALGRIND_H
#define BTMMU_BASE_VALGRIND_H

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/memcheck.h>
/* [a, a + len) faults on purpose: no addressing errors there. */
#define BTMMU__VG_WINDOW_OPEN(a, len) \
	((void)VALGRIND_DISABLE_ADDR_ERROR_REPORTING_IN_RANGE((a), (len)))
/* The range is the host's again. */
#define BTMMU__VG_WINDOW_CLOSE(a, len) \
	((void)VALGRIND_ENABLE_ADDR_ERROR_REPORTING_IN_RANGE((a), (len)))
#else
#define BTMMU__VG_WINDOW_OPEN(a, len) ((void)(a), (void)(len))
#define BTMMU__VG_WINDOW_CLOSE(a, len) ((void)(a), (void)(len))
#endif

#endif

/* Shared helpers for the static i386 guest workloads.
 *
 * Every workload prints exactly two result lines on stdout:
 *   @@BTMMU-SUM  <name> <params> <16 hex digits>   deterministic checksum
 *   @@BTMMU-TIME <name> <seconds>                  elapsed time measured in the guest
 * The checksum depends only on the parameters, never on timing, scheduling or
 * the number of CPUs, so it can be compared bit for bit between runs.
 * The first argument selects a size preset: "full" (default) or "quick".
 */
#ifndef BTMMU_WORKLOAD_COMMON_H
#define BTMMU_WORKLOAD_COMMON_H

#define _GNU_SOURCE
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* 32-bit xorshift: cheap enough that the memory accesses dominate. */
static inline uint32_t xorshift32(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static inline uint64_t mix64(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h * 0x100000001b3ULL;
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Returns 1 for "quick", 0 for "full" or no argument; exits on anything else. */
static inline int quick_preset(int argc, char **argv, const char *name)
{
    if (argc < 2 || strcmp(argv[1], "full") == 0)
        return 0;
    if (strcmp(argv[1], "quick") == 0)
        return 1;
    fprintf(stderr, "%s: usage: %s [full|quick]\n", name, name);
    exit(2);
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        perror("malloc");
        exit(3);
    }
    return p;
}

static inline void report(const char *name, const char *params, uint64_t sum, double seconds)
{
    printf("@@BTMMU-SUM %s %s %016" PRIx64 "\n", name, params, sum);
    printf("@@BTMMU-TIME %s %.6f\n", name, seconds);
    fflush(stdout);
}

#endif

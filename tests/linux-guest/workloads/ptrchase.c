/* Pointer chasing: one random cycle (Sattolo) over an array of 32-bit
 * indices, then follow it. Every step is a dependent load to a random page. */
#include "common.h"

int main(int argc, char **argv)
{
    int quick = quick_preset(argc, argv, "ptrchase");
    uint32_t mib = quick ? 16 : 32;
    uint32_t steps = quick ? 4u << 20 : 16u << 20;
    uint32_t n = mib << 18; /* 4-byte entries */
    char params[64];
    snprintf(params, sizeof params, "mib=%u,steps=%u", mib, steps);

    double t0 = now_s();
    uint32_t *next = xmalloc((size_t)n * sizeof *next);
    for (uint32_t i = 0; i < n; i++)
        next[i] = i;
    uint64_t rs = 0x1234567ULL;
    for (uint32_t i = n - 1; i > 0; i--) { /* Sattolo: a single cycle */
        uint32_t j = (uint32_t)(splitmix64(&rs) % i);
        uint32_t t = next[i];
        next[i] = next[j];
        next[j] = t;
    }
    uint32_t p = 0;
    uint64_t sum = 0;
    for (uint32_t s = 0; s < steps; s++) {
        p = next[p];
        sum += p ^ s;
    }
    sum = mix64(sum, p);
    double t1 = now_s();
    report("ptrchase", params, sum, t1 - t0);
    return 0;
}

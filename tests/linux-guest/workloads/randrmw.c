/* Random read-modify-write of 64-bit words over a large array. */
#include "common.h"

int main(int argc, char **argv)
{
    int quick = quick_preset(argc, argv, "randrmw");
    uint32_t mib = quick ? 32 : 64;
    uint32_t ops = quick ? 4u << 20 : 24u << 20;
    uint32_t n = mib << 17; /* 8-byte entries, power of two */
    char params[64];
    snprintf(params, sizeof params, "mib=%u,ops=%u", mib, ops);

    double t0 = now_s();
    uint64_t *a = xmalloc((size_t)n * sizeof *a);
    for (uint32_t i = 0; i < n; i++)
        a[i] = (uint64_t)i * 0x9e3779b97f4a7c15ULL;
    uint32_t r = 0x2545f491u;
    for (uint32_t i = 0; i < ops; i++) {
        uint32_t j = xorshift32(&r) & (n - 1);
        a[j] = a[j] * 6364136223846793005ULL + i;
    }
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n; i += 1)
        sum = (sum ^ a[i]) * 0x100000001b3ULL;
    double t1 = now_s();
    report("randrmw", params, sum, t1 - t0);
    return 0;
}

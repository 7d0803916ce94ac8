/* qsort(3) of pseudo-random 32-bit keys. */
#include "common.h"

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int quick = quick_preset(argc, argv, "qsort");
    uint32_t n = quick ? 256u << 10 : 2u << 20;
    char params[64];
    snprintf(params, sizeof params, "keys=%u", n);

    double t0 = now_s();
    uint32_t *k = xmalloc((size_t)n * sizeof *k);
    uint64_t rs = 42;
    for (uint32_t i = 0; i < n; i++)
        k[i] = (uint32_t)splitmix64(&rs);
    qsort(k, n, sizeof *k, cmp_u32);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i && k[i - 1] > k[i]) {
            fprintf(stderr, "qsort: not sorted at %u\n", i);
            return 1;
        }
        sum = mix64(sum, (uint64_t)k[i] * (i + 1));
    }
    double t1 = now_s();
    report("qsort", params, sum, t1 - t0);
    return 0;
}

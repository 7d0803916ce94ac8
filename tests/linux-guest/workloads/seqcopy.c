/* Sequential copy: memcpy between two large buffers, back and forth. */
#include "common.h"

int main(int argc, char **argv)
{
    int quick = quick_preset(argc, argv, "seqcopy");
    uint32_t mib = quick ? 4 : 16;
    uint32_t rounds = quick ? 5 : 20;
    size_t bytes = (size_t)mib << 20;
    size_t words = bytes / sizeof(uint32_t);
    char params[64];
    snprintf(params, sizeof params, "mib=%u,rounds=%u", mib, rounds);

    double t0 = now_s();
    uint32_t *src = xmalloc(bytes), *dst = xmalloc(bytes);
    for (size_t i = 0; i < words; i++)
        src[i] = (uint32_t)(i * 2654435761u);
    for (uint32_t r = 0; r < rounds; r++) {
        memcpy(dst, src, bytes);
        dst[((size_t)r * 40503u) % words] ^= r + 1; /* keep every round observable */
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < words; i++)
        sum = (sum + src[i]) * 0x100000001b3ULL;
    double t1 = now_s();
    report("seqcopy", params, sum, t1 - t0);
    return 0;
}

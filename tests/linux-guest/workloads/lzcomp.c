/* Compression: an LZ77 compressor (LZ4-like format, 64 KiB window, hash
 * table of 4-byte sequences) over generated pseudo-text, then decompression
 * and a byte-for-byte check. */
#include "common.h"

#define HASH_BITS 16
#define MIN_MATCH 4
#define WINDOW 65535u

static uint32_t hash4(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return (v * 2654435761u) >> (32 - HASH_BITS);
}

static uint8_t *put_len(uint8_t *o, uint32_t len)
{
    while (len >= 255) {
        *o++ = 255;
        len -= 255;
    }
    *o++ = (uint8_t)len;
    return o;
}

static size_t compress(const uint8_t *in, size_t n, uint8_t *out, uint32_t *table)
{
    memset(table, 0, sizeof(uint32_t) << HASH_BITS);
    const uint8_t *anchor = in, *ip = in, *end = in + n, *limit = n > 12 ? end - 12 : in;
    uint8_t *op = out;
    while (ip < limit) {
        uint32_t h = hash4(ip);
        const uint8_t *ref = in + table[h];
        table[h] = (uint32_t)(ip - in);
        if (ref >= ip || (size_t)(ip - ref) > WINDOW || memcmp(ref, ip, MIN_MATCH) != 0) {
            ip++;
            continue;
        }
        uint32_t mlen = MIN_MATCH;
        while (ip + mlen < limit && ref[mlen] == ip[mlen])
            mlen++;
        uint32_t lit = (uint32_t)(ip - anchor);
        uint8_t *token = op++;
        *token = (uint8_t)((lit >= 15 ? 15 : lit) << 4 | (mlen - MIN_MATCH >= 15 ? 15 : mlen - MIN_MATCH));
        if (lit >= 15)
            op = put_len(op, lit - 15);
        memcpy(op, anchor, lit);
        op += lit;
        uint32_t off = (uint32_t)(ip - ref);
        *op++ = (uint8_t)off;
        *op++ = (uint8_t)(off >> 8);
        if (mlen - MIN_MATCH >= 15)
            op = put_len(op, mlen - MIN_MATCH - 15);
        ip += mlen;
        anchor = ip;
    }
    uint32_t lit = (uint32_t)(end - anchor); /* final literals, no match part */
    *op++ = (uint8_t)((lit >= 15 ? 15 : lit) << 4);
    if (lit >= 15)
        op = put_len(op, lit - 15);
    memcpy(op, anchor, lit);
    op += lit;
    return (size_t)(op - out);
}

static size_t decompress(const uint8_t *in, size_t n, uint8_t *out)
{
    const uint8_t *ip = in, *end = in + n;
    uint8_t *op = out;
    for (;;) {
        uint8_t token = *ip++;
        uint32_t lit = token >> 4, b;
        if (lit == 15)
            do
                lit += b = *ip++;
            while (b == 255);
        memcpy(op, ip, lit);
        op += lit;
        ip += lit;
        if (ip >= end)
            break;
        uint32_t off = ip[0] | (uint32_t)ip[1] << 8;
        ip += 2;
        uint32_t mlen = token & 15;
        if (mlen == 15)
            do
                mlen += b = *ip++;
            while (b == 255);
        mlen += MIN_MATCH;
        const uint8_t *ref = op - off;
        while (mlen--) /* may overlap */
            *op++ = *ref++;
    }
    return (size_t)(op - out);
}

int main(int argc, char **argv)
{
    int quick = quick_preset(argc, argv, "lzcomp");
    uint32_t mib = quick ? 2 : 16;
    uint32_t passes = quick ? 1 : 3;
    size_t n = (size_t)mib << 20;
    char params[64];
    snprintf(params, sizeof params, "mib=%u,passes=%u", mib, passes);

    double t0 = now_s();
    /* generated text: a skewed choice of 512 random words */
    static char words[512][12];
    uint64_t rs = 7;
    for (int w = 0; w < 512; w++) {
        int len = 2 + (int)(splitmix64(&rs) % 9);
        for (int c = 0; c < len; c++)
            words[w][c] = (char)('a' + splitmix64(&rs) % 26);
        words[w][len] = 0;
    }
    uint8_t *text = xmalloc(n);
    size_t pos = 0;
    uint32_t r = 99;
    while (pos < n) {
        uint32_t x = xorshift32(&r);
        uint32_t w = (x & 511) % ((x >> 9 & 511) + 1); /* skewed towards low indices */
        for (const char *c = words[w]; *c && pos < n; c++)
            text[pos++] = (uint8_t)*c;
        if (pos < n)
            text[pos++] = (x >> 20) % 13 == 0 ? '\n' : (x >> 20) % 7 == 0 ? ',' : ' ';
    }
    size_t cap = n + n / 255 + 64;
    uint8_t *comp = xmalloc(cap), *back = xmalloc(n + 64);
    uint32_t *table = xmalloc(sizeof(uint32_t) << HASH_BITS);
    uint64_t sum = 0;
    for (uint32_t p = 0; p < passes; p++) {
        if (p)
            text[(size_t)p * 7919u % n] ^= 0x20; /* each pass compresses different data */
        size_t clen = compress(text, n, comp, table);
        size_t dlen = decompress(comp, clen, back);
        if (dlen != n || memcmp(back, text, n) != 0) {
            fprintf(stderr, "lzcomp: round trip failed (pass %u, %zu != %zu)\n", p, dlen, n);
            return 1;
        }
        sum = mix64(sum, clen);
        for (size_t i = 0; i < clen; i += 4) {
            uint32_t v = 0;
            memcpy(&v, comp + i, clen - i >= 4 ? 4 : clen - i);
            sum = mix64(sum, v);
        }
    }
    double t1 = now_s();
    report("lzcomp", params, sum, t1 - t0);
    return 0;
}

/* SHA-256 compression kernels, from FIPS 180-4 section 6.2.2.
 * See sha256_kernels.h for the contract. */
#include "sha256_kernels.h"

#include <string.h>

#ifdef TE_X86
#include <cpuid.h>
#include <immintrin.h>
#endif

const uint32_t te_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

const uint32_t te_sha256_h0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* ---- portable C ------------------------------------------------------- */

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static inline uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void te_compress_portable(uint32_t h[8], const uint8_t *p, size_t nblocks) {
    uint32_t w[64];
    while (nblocks--) {
        for (int t = 0; t < 16; t++) w[t] = load_be32(p + 4 * t);
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = ROR(w[t - 15], 7) ^ ROR(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = ROR(w[t - 2], 17) ^ ROR(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int t = 0; t < 64; t++) {
            uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) +
                          te_sha256_k[t] + w[t];
            uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d;
        h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
        p += 64;
    }
}

#ifdef TE_X86

/* ---- CPU features ----------------------------------------------------- */

int te_cpu_features(void) {
    unsigned a, b, c, d;
    int out = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1;
    int sse41 = (c >> 19) & 1, ssse3 = (c >> 9) & 1;
    uint64_t xcr0 = 0;
    if (osxsave) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((uint64_t)hi << 32) | lo;
    }
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (((b >> 29) & 1) && sse41 && ssse3) out |= TE_CPU_SHANI;
    if (((b >> 5) & 1) && (xcr0 & 0x6) == 0x6) out |= TE_CPU_AVX2;
    /* AVX-512 F + BW, with the OS saving opmask and upper ZMM state. */
    if (((b >> 16) & 1) && ((b >> 30) & 1) && (xcr0 & 0xe6) == 0xe6) out |= TE_CPU_AVX512;
    return out;
}

/* ---- SHA-NI, one or two streams -------------------------------------- */

/* n independent streams (n = 1 or 2, a constant after inlining) in one instruction
 * stream. sha256rnds2 has a latency of several cycles and one stream is a single
 * dependency chain, so a second stream fills the idle issue slots: on Zen 4 two
 * streams run at 3.3 GB/s per core against 1.8 for one (tools/bench/sha256_kernels_micro.c). */
__attribute__((target("sha,sse4.1,ssse3"), always_inline)) static inline void shani_n(
    int n, uint32_t *const h[2], const uint8_t *const pp[2], size_t nblocks) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i st0[2], st1[2];
    const uint8_t *p[2];
    for (int s = 0; s < n; s++) {
        __m128i tmp = _mm_loadu_si128((const __m128i *)&h[s][0]); /* A B C D (lane 0 = A) */
        __m128i x = _mm_loadu_si128((const __m128i *)&h[s][4]);   /* E F G H */
        tmp = _mm_shuffle_epi32(tmp, 0xB1);                       /* CDAB */
        x = _mm_shuffle_epi32(x, 0x1B);                           /* EFGH */
        st0[s] = _mm_alignr_epi8(tmp, x, 8);                      /* ABEF */
        st1[s] = _mm_blend_epi16(x, tmp, 0xF0);                   /* CDGH */
        p[s] = pp[s];
    }
    while (nblocks--) {
        __m128i abef[2], cdgh[2], m[2][4], msg[2];
        for (int s = 0; s < n; s++) abef[s] = st0[s], cdgh[s] = st1[s];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            const __m128i k = _mm_loadu_si128((const __m128i *)&te_sha256_k[4 * i]);
#pragma GCC unroll 2
            for (int s = 0; s < n; s++) {
                if (i < 4)
                    m[s][i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p[s] + 16 * i)),
                                               bswap);
                msg[s] = _mm_add_epi32(m[s][i & 3], k);
                st1[s] = _mm_sha256rnds2_epu32(st1[s], st0[s], msg[s]);
            }
#pragma GCC unroll 2
            for (int s = 0; s < n; s++) {
                if (i >= 3 && i <= 14) {
                    /* W for group i+1: add W[t-7] (alignr of the last two groups), then msg2. */
                    __m128i t7 = _mm_alignr_epi8(m[s][i & 3], m[s][(i - 1) & 3], 4);
                    m[s][(i + 1) & 3] = _mm_add_epi32(m[s][(i + 1) & 3], t7);
                    m[s][(i + 1) & 3] = _mm_sha256msg2_epu32(m[s][(i + 1) & 3], m[s][i & 3]);
                }
                msg[s] = _mm_shuffle_epi32(msg[s], 0x0E);
                st0[s] = _mm_sha256rnds2_epu32(st0[s], st1[s], msg[s]);
                if (i >= 1 && i <= 12)
                    m[s][(i - 1) & 3] = _mm_sha256msg1_epu32(m[s][(i - 1) & 3], m[s][i & 3]);
            }
        }
        for (int s = 0; s < n; s++) {
            st0[s] = _mm_add_epi32(st0[s], abef[s]);
            st1[s] = _mm_add_epi32(st1[s], cdgh[s]);
            p[s] += 64;
        }
    }
    for (int s = 0; s < n; s++) {
        __m128i tmp = _mm_shuffle_epi32(st0[s], 0x1B); /* FEBA */
        __m128i x = _mm_shuffle_epi32(st1[s], 0xB1);   /* DCHG */
        _mm_storeu_si128((__m128i *)&h[s][0], _mm_blend_epi16(tmp, x, 0xF0)); /* DCBA */
        _mm_storeu_si128((__m128i *)&h[s][4], _mm_alignr_epi8(x, tmp, 8));    /* HGFE */
    }
}

__attribute__((target("sha,sse4.1,ssse3"))) void te_compress_shani(uint32_t h[8],
                                                                  const uint8_t *p,
                                                                  size_t nblocks) {
    uint32_t *const hs[2] = {h, h};
    const uint8_t *const ps[2] = {p, p};
    shani_n(1, hs, ps, nblocks);
}

__attribute__((target("sha,sse4.1,ssse3"))) void te_compress2_shani(uint32_t h0[8],
                                                                   const uint8_t *p0,
                                                                   uint32_t h1[8],
                                                                   const uint8_t *p1,
                                                                   size_t nblocks) {
    uint32_t *const hs[2] = {h0, h1};
    const uint8_t *const ps[2] = {p0, p1};
    shani_n(2, hs, ps, nblocks);
}

void te_mb_shani2(uint32_t st[8][TE_MAX_LANES], const uint8_t *const p[TE_MAX_LANES],
                  size_t nblocks) {
    uint32_t h[2][8];
    for (int w = 0; w < 8; w++) h[0][w] = st[w][0], h[1][w] = st[w][1];
    te_compress2_shani(h[0], p[0], h[1], p[1], nblocks);
    for (int w = 0; w < 8; w++) st[w][0] = h[0][w], st[w][1] = h[1][w];
}

/* ---- AVX2, 8 lanes ----------------------------------------------------- */

#define TE_AVX2 __attribute__((target("avx2")))


TE_AVX2 static inline __m256i ror8(__m256i x, int n) {
    return _mm256_or_si256(_mm256_srli_epi32(x, n), _mm256_slli_epi32(x, 32 - n));
}

TE_AVX2 void te_mb_avx2(uint32_t st[8][TE_MAX_LANES], const uint8_t *const p[TE_MAX_LANES],
                        size_t nblocks) {
    const __m256i bswap = _mm256_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3,
                                          12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    __m256i s[8];
    for (int w = 0; w < 8; w++) s[w] = _mm256_loadu_si256((const __m256i *)st[w]);
    for (size_t blk = 0; blk < nblocks; blk++) {
        __m256i w[16];
        size_t off = blk * 64;
        /* Two 8x8 transposes: lane i's block is row i; word t of all lanes becomes w[t]. */
        for (int half = 0; half < 2; half++) {
            __m256i r[8], t[8], u[8];
            for (int i = 0; i < 8; i++)
                r[i] = _mm256_shuffle_epi8(
                    _mm256_loadu_si256((const __m256i *)(const void *)(p[i] + off + 32 * half)),
                    bswap);
            for (int i = 0; i < 8; i += 2) {
                t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
                t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
            }
            for (int i = 0; i < 8; i += 4) {
                u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
                u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
                u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
                u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
            }
            for (int k = 0; k < 4; k++) {
                w[8 * half + k] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x20);
                w[8 * half + k + 4] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x31);
            }
        }
        __m256i a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
#pragma GCC unroll 64
        for (int t = 0; t < 64; t++) {
            __m256i wt;
            if (t < 16) {
                wt = w[t];
            } else {
                __m256i w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15];
                __m256i s0 = _mm256_xor_si256(_mm256_xor_si256(ror8(w15, 7), ror8(w15, 18)),
                                              _mm256_srli_epi32(w15, 3));
                __m256i s1 = _mm256_xor_si256(_mm256_xor_si256(ror8(w2, 17), ror8(w2, 19)),
                                              _mm256_srli_epi32(w2, 10));
                wt = _mm256_add_epi32(_mm256_add_epi32(w[t & 15], s0),
                                      _mm256_add_epi32(w[(t - 7) & 15], s1));
                w[t & 15] = wt;
            }
            __m256i S1 = _mm256_xor_si256(_mm256_xor_si256(ror8(e, 6), ror8(e, 11)), ror8(e, 25));
            __m256i ch = _mm256_xor_si256(_mm256_and_si256(e, f), _mm256_andnot_si256(e, g));
            __m256i t1 = _mm256_add_epi32(
                _mm256_add_epi32(_mm256_add_epi32(h, S1), _mm256_add_epi32(ch, wt)),
                _mm256_set1_epi32((int)te_sha256_k[t]));
            __m256i S0 = _mm256_xor_si256(_mm256_xor_si256(ror8(a, 2), ror8(a, 13)), ror8(a, 22));
            __m256i maj = _mm256_or_si256(_mm256_and_si256(a, b),
                                          _mm256_and_si256(c, _mm256_or_si256(a, b)));
            __m256i t2 = _mm256_add_epi32(S0, maj);
            h = g; g = f; f = e; e = _mm256_add_epi32(d, t1);
            d = c; c = b; b = a; a = _mm256_add_epi32(t1, t2);
        }
        s[0] = _mm256_add_epi32(s[0], a); s[1] = _mm256_add_epi32(s[1], b);
        s[2] = _mm256_add_epi32(s[2], c); s[3] = _mm256_add_epi32(s[3], d);
        s[4] = _mm256_add_epi32(s[4], e); s[5] = _mm256_add_epi32(s[5], f);
        s[6] = _mm256_add_epi32(s[6], g); s[7] = _mm256_add_epi32(s[7], h);
    }
    for (int w = 0; w < 8; w++) _mm256_storeu_si256((__m256i *)st[w], s[w]);
}

/* ---- AVX-512, 16 lanes ------------------------------------------------- */

#define TE_AVX512 __attribute__((target("avx512f,avx512bw")))

TE_AVX512 void te_mb_avx512(uint32_t st[8][TE_MAX_LANES], const uint8_t *const p[TE_MAX_LANES],
                            size_t nblocks) {
    const __m512i bswap = _mm512_broadcast_i32x4(
        _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3));
    /* Broadcast round constants once per call; the rounds then add them from L1. */
    __m512i kv[64];
    for (int t = 0; t < 64; t++) kv[t] = _mm512_set1_epi32((int)te_sha256_k[t]);
    __m512i s[8];
    for (int w = 0; w < 8; w++) s[w] = _mm512_loadu_si512(st[w]);
    for (size_t blk = 0; blk < nblocks; blk++) {
        __m512i w[16];
        /* 16x16 transpose of 32-bit words: lane i's block is row i. */
        __m512i r[16], t[16], u[16], v[4];
        for (int i = 0; i < 16; i++)
            r[i] = _mm512_shuffle_epi8(_mm512_loadu_si512(p[i] + blk * 64), bswap);
        for (int i = 0; i < 16; i += 2) {
            t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
            t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
        }
        for (int i = 0; i < 16; i += 4) {
            /* u[i + k] holds words k, k+4, k+8, k+12 of rows i..i+3 (one per 128-bit lane). */
            u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
            u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
            u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
            u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
        }
        for (int k = 0; k < 4; k++) {
            v[0] = _mm512_shuffle_i32x4(u[k], u[k + 4], 0x88);      /* k, k+8: rows 0-7 */
            v[1] = _mm512_shuffle_i32x4(u[k], u[k + 4], 0xDD);      /* k+4, k+12 */
            v[2] = _mm512_shuffle_i32x4(u[k + 8], u[k + 12], 0x88); /* rows 8-15 */
            v[3] = _mm512_shuffle_i32x4(u[k + 8], u[k + 12], 0xDD);
            w[k] = _mm512_shuffle_i32x4(v[0], v[2], 0x88);
            w[k + 8] = _mm512_shuffle_i32x4(v[0], v[2], 0xDD);
            w[k + 4] = _mm512_shuffle_i32x4(v[1], v[3], 0x88);
            w[k + 12] = _mm512_shuffle_i32x4(v[1], v[3], 0xDD);
        }
        __m512i a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
#pragma GCC unroll 64
        for (int t = 0; t < 64; t++) {
            __m512i wt;
            if (t < 16) {
                wt = w[t];
            } else {
                __m512i w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15];
                __m512i s0 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(w15, 7),
                                                       _mm512_ror_epi32(w15, 18),
                                                       _mm512_srli_epi32(w15, 3), 0x96);
                __m512i s1 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(w2, 17),
                                                       _mm512_ror_epi32(w2, 19),
                                                       _mm512_srli_epi32(w2, 10), 0x96);
                wt = _mm512_add_epi32(_mm512_add_epi32(w[t & 15], s0),
                                      _mm512_add_epi32(w[(t - 7) & 15], s1));
                w[t & 15] = wt;
            }
            /* The rounds are throughput-bound (every vector pipe busy), not latency-bound:
             * use the fewest operations, 7 additions per round. */
            __m512i hkw = _mm512_add_epi32(h, _mm512_add_epi32(wt, kv[t]));
            __m512i ch = _mm512_ternarylogic_epi32(e, f, g, 0xCA);  /* e ? f : g */
            __m512i S1 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(e, 6), _mm512_ror_epi32(e, 11),
                                                   _mm512_ror_epi32(e, 25), 0x96);
            __m512i t1 = _mm512_add_epi32(hkw, _mm512_add_epi32(ch, S1));
            __m512i S0 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(a, 2), _mm512_ror_epi32(a, 13),
                                                   _mm512_ror_epi32(a, 22), 0x96);
            __m512i maj = _mm512_ternarylogic_epi32(a, b, c, 0xE8); /* majority */
            __m512i t2 = _mm512_add_epi32(S0, maj);
            h = g; g = f; f = e; e = _mm512_add_epi32(d, t1);
            d = c; c = b; b = a; a = _mm512_add_epi32(t1, t2);
        }
        s[0] = _mm512_add_epi32(s[0], a); s[1] = _mm512_add_epi32(s[1], b);
        s[2] = _mm512_add_epi32(s[2], c); s[3] = _mm512_add_epi32(s[3], d);
        s[4] = _mm512_add_epi32(s[4], e); s[5] = _mm512_add_epi32(s[5], f);
        s[6] = _mm512_add_epi32(s[6], g); s[7] = _mm512_add_epi32(s[7], h);
    }
    for (int w = 0; w < 8; w++) _mm512_storeu_si512(st[w], s[w]);
}

#else

int te_cpu_features(void) { return 0; }

#endif

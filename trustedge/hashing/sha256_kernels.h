/* SHA-256 compression kernels (FIPS 180-4), written for trustedge.
 *
 * Single stream: portable C and SHA-NI. Multi-buffer ("lanes" independent
 * messages hashed in lock-step, one 32-bit SIMD lane each): AVX2 (8 lanes)
 * and AVX-512 (16 lanes); SHA-NI runs two streams interleaved. Every kernel
 * only compresses whole 64-byte blocks; padding is done by the caller. */
#ifndef TRUSTEDGE_SHA256_KERNELS_H
#define TRUSTEDGE_SHA256_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define TE_MAX_LANES 16

extern const uint32_t te_sha256_k[64];
extern const uint32_t te_sha256_h0[8];

/* Compress nblocks consecutive blocks at p into h. */
typedef void (*te_compress_fn)(uint32_t h[8], const uint8_t *p, size_t nblocks);

/* Multi-buffer: st[w][lane] is word w of lane's state; lane i compresses
 * nblocks consecutive blocks starting at p[i]. */
typedef void (*te_mb_fn)(uint32_t st[8][TE_MAX_LANES], const uint8_t *const p[TE_MAX_LANES],
                         size_t nblocks);

/* Two streams at once: h0 over p0 and h1 over p1, nblocks blocks each. */
typedef void (*te_compress2_fn)(uint32_t h0[8], const uint8_t *p0, uint32_t h1[8],
                                const uint8_t *p1, size_t nblocks);

void te_compress_portable(uint32_t h[8], const uint8_t *p, size_t nblocks);

#if defined(__x86_64__) || defined(__i386__)
#define TE_X86 1
void te_compress_shani(uint32_t h[8], const uint8_t *p, size_t nblocks);
void te_compress2_shani(uint32_t h0[8], const uint8_t *p0, uint32_t h1[8], const uint8_t *p1,
                        size_t nblocks);
/* Multi-buffer wrapper of te_compress2_shani: lanes 0 and 1 only. */
void te_mb_shani2(uint32_t st[8][TE_MAX_LANES], const uint8_t *const p[TE_MAX_LANES],
                  size_t nblocks);
void te_mb_avx2(uint32_t st[8][TE_MAX_LANES], const uint8_t *const p[TE_MAX_LANES], size_t nblocks);
void te_mb_avx512(uint32_t st[8][TE_MAX_LANES], const uint8_t *const p[TE_MAX_LANES],
                  size_t nblocks);
#endif

/* Bit set of what this CPU (and OS) supports. */
enum { TE_CPU_SHANI = 1, TE_CPU_AVX2 = 2, TE_CPU_AVX512 = 4 };
int te_cpu_features(void);

#endif

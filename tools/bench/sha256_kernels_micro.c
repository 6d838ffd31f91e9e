/* Microbenchmark of the SHA-256 kernels in trustedge/hashing/sha256_kernels.c,
 * in memory, one thread, timed in CPU seconds of this thread (so a loaded,
 * shared machine does not skew it; pair with `perf stat -e instructions`).
 *
 *   cc -O3 -o /tmp/sha256_micro tools/bench/sha256_kernels_micro.c \
 *       trustedge/hashing/sha256_kernels.c -Itrustedge/hashing
 *   /tmp/sha256_micro [avx512|avx2|shani2|shani|portable] [MiB in all, default 64] [reps]
 *
 * Multi-buffer paths (avx512: 16 lanes, avx2: 8, shani2: two SHA-NI streams
 * interleaved) hash `lanes` equal leaves held in memory, fed to
 * the kernel in 128 KiB steps per lane (as _speedups.c does); shani and
 * portable hash the same bytes as one stream. Prints bytes hashed per
 * repetition, the best repetition's thread CPU seconds and GB/s per
 * CPU-second. (cc=clang-14 gives the AVX-512 kernel about 5% more.) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sha256_kernels.h"

#define STEP (128 * 1024)

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "avx512";
    size_t all = (size_t)(argc > 2 ? atof(argv[2]) : 64.0) * 1024 * 1024;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    int lanes = 1;
    te_mb_fn mb = NULL;
    te_compress_fn one = te_compress_portable;
#ifdef TE_X86
    if (strcmp(path, "avx512") == 0) mb = te_mb_avx512, lanes = 16;
    else if (strcmp(path, "avx2") == 0) mb = te_mb_avx2, lanes = 8;
    else if (strcmp(path, "shani2") == 0) mb = te_mb_shani2, lanes = 2;
    else if (strcmp(path, "shani") == 0) one = te_compress_shani;
#endif
    size_t leaf = all / (size_t)lanes / STEP * STEP, total = leaf * (size_t)lanes;
    uint8_t *mem = aligned_alloc(64, total);
    uint64_t x = 0x9E3779B97F4A7C15ULL; /* xorshift64: no repeats, so lanes differ */
    for (size_t i = 0; i < total; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        mem[i] = (uint8_t)x;
    }
    uint32_t st[8][TE_MAX_LANES], check = 0;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = cpu_now();
        for (int w = 0; w < 8; w++)
            for (int i = 0; i < TE_MAX_LANES; i++) st[w][i] = te_sha256_h0[w];
        if (mb) {
            const uint8_t *p[TE_MAX_LANES];
            for (size_t off = 0; off < leaf; off += STEP) {
                for (int i = 0; i < TE_MAX_LANES; i++)
                    p[i] = mem + (size_t)(i < lanes ? i : 0) * leaf + off;
                mb(st, p, STEP / 64);
            }
        } else {
            one(st[0], mem, total / 64);
        }
        double dt = cpu_now() - t0;
        if (dt < best) best = dt;
        check += st[0][lanes - 1];
    }
    double cpu = best;
    double bytes = (double)total;
    printf("%-8s %6.0f MiB  %.3f cpu-s  %.2f GB/s per CPU-second  (check %08x)\n", path,
           bytes / (1 << 20), cpu, bytes / cpu / 1e9, check);
    free(mem);
    return 0;
}

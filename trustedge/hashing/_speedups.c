/* trustedge.hashing._speedups: the C hot loop for blob hashing.
 *
 * One fixed-shape job and no parsing: given an open regular file, its size,
 * a leaf size and a list of leaf indices, compute the whole-file SHA-256
 * and/or the leaf digests SHA-256(0x00 || leaf). The tree root and every
 * check live in Python (trustedge/hashing/__init__.py); _native.py is the
 * twin with the same signatures.
 *
 * Threads: worker pthreads run with the GIL released; the calling thread
 * wakes every 50 ms to report progress, check signals (Ctrl-C) and the
 * cancel flag. Reads use pread into per-worker buffers of bounded size, so
 * memory does not grow with the file and a file truncated while hashing
 * gives a short read (a clean VerificationError), never SIGBUS. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sha256_kernels.h"

/* Bytes read per lane per step: 16 lanes x 128 KiB = 2 MiB per worker. Against
 * 32 KiB this quarters the preads (0.41 -> 0.37 CPU-s per GiB on the AVX-512
 * path); the buffers outgrow L2, but the kernel streams them in order. */
#define LANE_CHUNK (128 * 1024)
/* Lane buffers are LANE_CHUNK + 3 cache lines apart: at a power-of-two stride
 * the 16 lane loads of one block would all hit the same L1 set. */
#define LANE_STRIDE (LANE_CHUNK + 192)
#define STREAM_CHUNK (256 * 1024) /* bytes per read for single streams */
#define TICK_NS 50000000L         /* supervisor wake-up: 50 ms */

static PyObject *verification_error; /* trustedge.errors.VerificationError */

/* ---- kernel selection ------------------------------------------------- */

typedef struct {
    const char *name;
    te_compress_fn one;  /* single stream */
    te_compress2_fn two; /* two streams interleaved, or NULL */
    te_mb_fn mb;         /* multi-buffer leaves, or NULL */
    int lanes;
} kernels_t;

static int pick_kernels(const char *name, kernels_t *k) {
    int cpu = te_cpu_features();
    memset(k, 0, sizeof *k);
    k->name = name;
    k->one = te_compress_portable;
    k->lanes = 1;
    if (strcmp(name, "portable") == 0) return 0;
#ifdef TE_X86
    if (cpu & TE_CPU_SHANI) {
        k->one = te_compress_shani;
        k->two = te_compress2_shani;
    }
    if (strcmp(name, "shani") == 0 && (cpu & TE_CPU_SHANI)) {
        /* Two leaves per worker, interleaved: 1.8x one stream. */
        k->mb = te_mb_shani2;
        k->lanes = 2;
        return 0;
    }
    if (strcmp(name, "avx2") == 0 && (cpu & TE_CPU_AVX2)) {
        k->mb = te_mb_avx2;
        k->lanes = 8;
        return 0;
    }
    if (strcmp(name, "avx512") == 0 && (cpu & TE_CPU_AVX512)) {
        k->mb = te_mb_avx512;
        k->lanes = 16;
        return 0;
    }
#endif
    (void)cpu;
    return -1;
}

/* ---- one SHA-256 stream ----------------------------------------------- */

typedef struct {
    uint32_t h[8];
    uint8_t buf[64];
    size_t n;
    uint64_t len;
    te_compress_fn f;
} stream_t;

static void stream_init(stream_t *s, te_compress_fn f) {
    memcpy(s->h, te_sha256_h0, sizeof s->h);
    s->n = 0;
    s->len = 0;
    s->f = f;
}

static void stream_update(stream_t *s, const uint8_t *p, size_t len) {
    s->len += len;
    if (s->n) {
        size_t take = 64 - s->n < len ? 64 - s->n : len;
        memcpy(s->buf + s->n, p, take);
        s->n += take;
        p += take;
        len -= take;
        if (s->n < 64) return;
        s->f(s->h, s->buf, 1);
        s->n = 0;
    }
    if (len >= 64) {
        s->f(s->h, p, len / 64);
        p += len & ~(size_t)63;
        len &= 63;
    }
    memcpy(s->buf, p, len);
    s->n = len;
}

static void store_digest(uint8_t out[32], const uint32_t h[8]) {
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

static void put_bitlen(uint8_t *p, uint64_t bytes) {
    uint64_t bits = bytes * 8;
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(bits >> (56 - 8 * i));
}

static void stream_final(stream_t *s, uint8_t out[32]) {
    uint8_t pad[128] = {0};
    size_t n = s->n;
    memcpy(pad, s->buf, n);
    pad[n] = 0x80;
    size_t blocks = n < 56 ? 1 : 2;
    put_bitlen(pad + 64 * blocks - 8, s->len);
    s->f(s->h, pad, blocks);
    store_digest(out, s->h);
}

/* ---- the job shared by workers ---------------------------------------- */

enum { ERR_NONE = 0, ERR_IO, ERR_SHORT, ERR_NOMEM };

typedef struct {
    int fd;
    uint64_t size, leaf_size;
    const uint64_t *idx;
    size_t nidx, group;
    uint8_t *out;
    int want_sha;
    uint8_t sha[32];
    kernels_t k;
    /* One pass (want_sha and every leaf in order): the whole-file worker takes
     * leaves from the front of [front, back), the others from the back (under mu). */
    int one_pass;
    size_t front, back;
    atomic_size_t next;
    atomic_int sha_claimed;
    atomic_ullong done;
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running;
    int err, err_errno;
    uint64_t err_off;
    /* sha256_ranges: the ranges to hash, claimed in order (pairs with SHA-NI). */
    const struct range *ranges;
    size_t nranges;
} job_t;

typedef struct range {
    int fd;
    uint64_t off, len;
} range_t;

static void fail(job_t *j, int err, int e, uint64_t off) {
    pthread_mutex_lock(&j->mu);
    if (j->err == ERR_NONE) {
        j->err = err;
        j->err_errno = e;
        j->err_off = off;
    }
    pthread_mutex_unlock(&j->mu);
    atomic_store(&j->stop, 1);
}

/* Read exactly len bytes of fd at off; a short file is an error (truncated). */
static int read_full_fd(job_t *j, int fd, uint8_t *buf, size_t len, uint64_t off) {
    while (len) {
        ssize_t got = pread(fd, buf, len, (off_t)off);
        if (got < 0) {
            if (errno == EINTR) continue;
            fail(j, ERR_IO, errno, off);
            return -1;
        }
        if (got == 0) {
            fail(j, ERR_SHORT, 0, off);
            return -1;
        }
        buf += got;
        len -= (size_t)got;
        off += (uint64_t)got;
    }
    return atomic_load_explicit(&j->stop, memory_order_relaxed) ? -1 : 0;
}

static int read_full(job_t *j, uint8_t *buf, size_t len, uint64_t off) {
    return read_full_fd(j, j->fd, buf, len, off);
}

static int hash_range(job_t *j, uint8_t *mem, stream_t *s, uint64_t off, uint64_t len) {
    while (len) {
        size_t c = len < STREAM_CHUNK ? (size_t)len : STREAM_CHUNK;
        if (read_full(j, mem, c, off)) return -1;
        stream_update(s, mem, c);
        atomic_fetch_add_explicit(&j->done, c, memory_order_relaxed);
        off += c;
        len -= c;
    }
    return 0;
}

static int whole_file(job_t *j, uint8_t *mem) {
    stream_t s;
    stream_init(&s, j->k.one);
    if (hash_range(j, mem, &s, 0, j->size)) return -1;
    stream_final(&s, j->sha);
    return 0;
}

static uint64_t leaf_bytes(uint64_t size, uint64_t leaf_size, uint64_t leaf) {
    uint64_t rest = size - leaf * leaf_size;
    return rest < leaf_size ? rest : leaf_size;
}

static uint64_t leaf_len(const job_t *j, uint64_t leaf) {
    return leaf_bytes(j->size, j->leaf_size, leaf);
}

static int one_leaf(job_t *j, uint8_t *mem, size_t pos) {
    stream_t s;
    static const uint8_t zero = 0x00;
    uint64_t leaf = j->idx[pos];
    stream_init(&s, j->k.one);
    stream_update(&s, &zero, 1);
    if (hash_range(j, mem, &s, leaf * j->leaf_size, leaf_len(j, leaf))) return -1;
    stream_final(&s, j->out + 32 * pos);
    return 0;
}

/* Take leaf i for the whole-file worker if no other worker has it. */
static int claim_front(job_t *j, size_t i) {
    pthread_mutex_lock(&j->mu);
    int own = j->front == i && j->front < j->back;
    if (own) j->front++;
    pthread_mutex_unlock(&j->mu);
    return own;
}

/* Up to max leaves from the back for a leaf worker; returns how many (0: none left). */
static size_t claim_back(job_t *j, size_t max, size_t *first) {
    pthread_mutex_lock(&j->mu);
    size_t n = j->back - j->front < max ? j->back - j->front : max;
    j->back -= n;
    *first = j->back;
    pthread_mutex_unlock(&j->mu);
    return n;
}

/* The whole-file SHA-256 in one pass with the leaves: each chunk is read once
 * and feeds the whole-file stream and, for every leaf no other worker has
 * taken, that leaf's stream, both in one interleaved kernel call (two SHA-NI
 * streams cost little more than one). Leaf i's message 0x00 || leaf is the
 * chunk shifted by one byte: mem[63] holds the byte before the chunk at
 * mem + 64 (0x00 at the leaf's start), so the leaf's blocks start at mem + 63.
 * Chunks never cross a leaf boundary and, but for the file's last one, are
 * whole blocks, so neither stream ever holds a partial block between calls. */
static int one_pass(job_t *j, uint8_t *mem) {
    stream_t s, ls;
    uint8_t *buf = mem + 64;
    stream_init(&s, j->k.one);
    for (size_t leaf = 0; leaf < j->nidx; leaf++) {
        uint64_t start = leaf * j->leaf_size, len = leaf_len(j, leaf);
        if (!claim_front(j, leaf)) {
            if (hash_range(j, buf, &s, start, len)) return -1;
            continue;
        }
        stream_init(&ls, j->k.one);
        mem[63] = 0x00;
        for (uint64_t off = 0; off < len;) {
            size_t c = len - off < STREAM_CHUNK ? (size_t)(len - off) : STREAM_CHUNK;
            size_t nb = c / 64;
            if (read_full(j, buf, c, start + off)) return -1;
            if (j->k.two) {
                j->k.two(s.h, buf, ls.h, mem + 63, nb);
            } else {
                s.f(s.h, buf, nb);
                ls.f(ls.h, mem + 63, nb);
            }
            s.len += 64 * nb;
            ls.len += 64 * nb;
            off += c;
            if (off == len) {
                /* The leaf's last byte (and the file's partial block, at its end). */
                stream_update(&s, buf + 64 * nb, c - 64 * nb);
                stream_update(&ls, mem + 63 + 64 * nb, 1 + c - 64 * nb);
            } else {
                mem[63] = buf[c - 1];
            }
            atomic_fetch_add_explicit(&j->done, 2 * (unsigned long long)c, memory_order_relaxed);
        }
        stream_final(&ls, j->out + 32 * leaf);
    }
    stream_final(&s, j->sha);
    return 0;
}

/* n (<= lanes) full-size leaves at positions pos[0..n) in lock-step. Lane i's
 * message is 0x00 || leaf (L + 1 bytes, L a multiple of 64): L/64 full blocks
 * streamed through the lane buffers, then one final block holding the last
 * leaf byte and the padding. */
static int mb_leaves(job_t *j, uint8_t *mem, const size_t *pos, int n) {
    const int lanes = j->k.lanes;
    const uint64_t L = j->leaf_size;
    uint32_t st[8][TE_MAX_LANES];
    const uint8_t *ptr[TE_MAX_LANES];
    for (int i = 0; i < TE_MAX_LANES; i++) {
        ptr[i] = mem + (size_t)(i < lanes ? i : 0) * LANE_STRIDE;
        for (int w = 0; w < 8; w++) st[w][i] = te_sha256_h0[w];
    }
    for (uint64_t m = 0; m < L; m += LANE_CHUNK) {
        size_t c = L - m < LANE_CHUNK ? (size_t)(L - m) : LANE_CHUNK;
        for (int i = 0; i < n; i++) {
            uint8_t *b = mem + (size_t)i * LANE_STRIDE;
            uint64_t start = j->idx[pos[i]] * L;
            if (m == 0) {
                b[0] = 0x00;
                if (read_full(j, b + 1, c - 1, start)) return -1;
            } else if (read_full(j, b, c, start + m - 1)) {
                return -1;
            }
        }
        j->k.mb(st, ptr, c / 64);
        atomic_fetch_add_explicit(&j->done, (unsigned long long)c * n, memory_order_relaxed);
    }
    for (int i = 0; i < lanes; i++) {
        uint8_t *b = mem + (size_t)i * LANE_STRIDE;
        memset(b, 0, 64);
        if (i < n && read_full(j, b, 1, j->idx[pos[i]] * L + L - 1)) return -1;
        b[1] = 0x80;
        put_bitlen(b + 56, L + 1);
    }
    j->k.mb(st, ptr, 1);
    for (int i = 0; i < n; i++) {
        uint32_t h[8];
        for (int w = 0; w < 8; w++) h[w] = st[w][i];
        store_digest(j->out + 32 * pos[i], h);
    }
    return 0;
}

static int leaf_group(job_t *j, uint8_t *mem, size_t first, size_t count) {
    size_t full[TE_MAX_LANES];
    int nfull = 0;
    for (size_t p = first; p < first + count; p++) {
        if (j->k.mb && leaf_len(j, j->idx[p]) == j->leaf_size) {
            full[nfull++] = p;
        } else if (one_leaf(j, mem, p)) {
            return -1;
        }
    }
    /* Few lanes in use: a single stream (SHA-NI) beats a mostly idle vector,
     * unless the single stream is portable C. */
    if (nfull == 0) return 0;
    int min_lanes = j->k.one == te_compress_portable || j->k.lanes < 4 ? 2 : j->k.lanes / 2;
    if (nfull >= min_lanes) return mb_leaves(j, mem, full, nfull);
    for (int i = 0; i < nfull; i++)
        if (one_leaf(j, mem, full[i])) return -1;
    return 0;
}

static void *worker(void *arg) {
    job_t *j = arg;
    size_t bytes = (size_t)j->k.lanes * LANE_STRIDE;
    if (bytes < STREAM_CHUNK + 64) bytes = STREAM_CHUNK + 64; /* one_pass: a block before */
    uint8_t *mem = NULL;
    if (posix_memalign((void **)&mem, 64, bytes) != 0) {
        fail(j, ERR_NOMEM, 0, 0);
    } else {
        memset(mem, 0, bytes);
        int rc = 0;
        if (j->want_sha && !atomic_exchange(&j->sha_claimed, 1))
            rc = j->one_pass ? one_pass(j, mem) : whole_file(j, mem);
        while (rc == 0 && !atomic_load(&j->stop)) {
            size_t first, count;
            if (j->one_pass) {
                count = claim_back(j, j->group, &first);
                if (count == 0) break;
            } else {
                first = atomic_fetch_add(&j->next, j->group);
                if (first >= j->nidx) break;
                count = j->nidx - first < j->group ? j->nidx - first : j->group;
            }
            rc = leaf_group(j, mem, first, count);
        }
        free(mem);
    }
    pthread_mutex_lock(&j->mu);
    j->running--;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* ---- plain SHA-256 of byte ranges (OMS files and shards) ---------------- */

static int range_single(job_t *j, uint8_t *mem, const range_t *r, uint8_t out[32], stream_t *s,
                        uint64_t pos) {
    while (pos < r->len) {
        size_t c = r->len - pos < STREAM_CHUNK ? (size_t)(r->len - pos) : STREAM_CHUNK;
        if (read_full_fd(j, r->fd, mem, c, r->off + pos)) return -1;
        stream_update(s, mem, c);
        atomic_fetch_add_explicit(&j->done, c, memory_order_relaxed);
        pos += c;
    }
    stream_final(s, out);
    return 0;
}

/* Two ranges in one interleaved kernel (two SHA-NI streams cost about one):
 * chunk by chunk over the common length, then the longer one alone. Chunks
 * are whole blocks but for a range's last one, after which that range is
 * done, so neither stream holds a partial block when the kernel runs. */
static int range_pair(job_t *j, uint8_t *mem, const range_t *a, const range_t *b,
                      uint8_t oa[32], uint8_t ob[32]) {
    stream_t sa, sb;
    uint8_t *ba = mem, *bb = mem + STREAM_CHUNK;
    uint64_t pa = 0, pb = 0;
    stream_init(&sa, j->k.one);
    stream_init(&sb, j->k.one);
    while (pa < a->len && pb < b->len) {
        size_t ca = a->len - pa < STREAM_CHUNK ? (size_t)(a->len - pa) : STREAM_CHUNK;
        size_t cb = b->len - pb < STREAM_CHUNK ? (size_t)(b->len - pb) : STREAM_CHUNK;
        if (read_full_fd(j, a->fd, ba, ca, a->off + pa)) return -1;
        if (read_full_fd(j, b->fd, bb, cb, b->off + pb)) return -1;
        size_t nb = (ca < cb ? ca : cb) / 64;
        j->k.two(sa.h, ba, sb.h, bb, nb);
        sa.len += 64 * nb;
        sb.len += 64 * nb;
        stream_update(&sa, ba + 64 * nb, ca - 64 * nb);
        stream_update(&sb, bb + 64 * nb, cb - 64 * nb);
        atomic_fetch_add_explicit(&j->done, (unsigned long long)(ca + cb), memory_order_relaxed);
        pa += ca;
        pb += cb;
    }
    if (range_single(j, mem, a, oa, &sa, pa)) return -1;
    return range_single(j, mem, b, ob, &sb, pb);
}

/* A full group of `lanes` ranges of about one length (the shortest at least 3/4 of
 * the longest: a model's files or shards) in the multi-buffer kernel, lock-step
 * over the whole blocks they all have; each lane then finishes its own rest (the
 * longer lanes' extra bytes, every lane's partial block) on the single-stream
 * kernel from the lane's state. */
static int range_mb(job_t *j, uint8_t *mem, size_t first) {
    const int lanes = j->k.lanes;
    const range_t *r = j->ranges + first;
    uint64_t shortest = r[0].len;
    for (int i = 1; i < lanes; i++)
        if (r[i].len < shortest) shortest = r[i].len;
    const uint64_t full = shortest & ~(uint64_t)63;
    uint32_t st[8][TE_MAX_LANES];
    const uint8_t *ptr[TE_MAX_LANES];
    for (int i = 0; i < TE_MAX_LANES; i++) {
        ptr[i] = mem + (size_t)(i < lanes ? i : 0) * LANE_STRIDE;
        for (int w = 0; w < 8; w++) st[w][i] = te_sha256_h0[w];
    }
    for (uint64_t m = 0; m < full; m += LANE_CHUNK) {
        size_t c = full - m < LANE_CHUNK ? (size_t)(full - m) : LANE_CHUNK;
        for (int i = 0; i < lanes; i++)
            if (read_full_fd(j, r[i].fd, mem + (size_t)i * LANE_STRIDE, c, r[i].off + m)) return -1;
        j->k.mb(st, ptr, c / 64);
        atomic_fetch_add_explicit(&j->done, (unsigned long long)c * (unsigned)lanes,
                                  memory_order_relaxed);
    }
    for (int i = 0; i < lanes; i++) {
        stream_t s;
        stream_init(&s, j->k.one);
        for (int w = 0; w < 8; w++) s.h[w] = st[w][i];
        s.len = full;
        if (range_single(j, mem, &r[i], j->out + 32 * (first + (size_t)i), &s, full)) return -1;
    }
    return 0;
}

/* Multi-buffer groups only where they beat the single/paired stream: wide
 * vectors (16 lanes), or any vector kernel when there is no SHA-NI. */
static int use_mb(const kernels_t *k) {
    return k->mb != NULL && k->lanes > 2 && (k->two == NULL || k->lanes >= 16);
}

/* `lanes` ranges of at least one block each, the shortest at least 3/4 of the longest:
 * lock-step over the common blocks, then the rest alone, beats pairs (on AVX-512, 16
 * lanes: 0.53 against 0.83 CPU-s per GiB on the Rocket Lake development machine). */
static int near_equal(const range_t *r, int lanes) {
    uint64_t lo = r[0].len, hi = r[0].len;
    for (int i = 1; i < lanes; i++) {
        if (r[i].len < lo) lo = r[i].len;
        if (r[i].len > hi) hi = r[i].len;
    }
    return lo >= 64 && lo >= hi - hi / 4;
}

/* Claim the next unit of work: a multi-buffer group when the next `lanes`
 * ranges have about one length (the caller sorts by length, longest first),
 * else a pair or one. */
static size_t claim_ranges(job_t *j, size_t *first, int *mb) {
    size_t step = j->k.two ? 2 : 1;
    size_t i = atomic_load(&j->next);
    for (;;) {
        if (i >= j->nranges) return 0;
        size_t take = step;
        *mb = 0;
        if (use_mb(&j->k) && i + (size_t)j->k.lanes <= j->nranges &&
            near_equal(j->ranges + i, j->k.lanes)) {
            take = (size_t)j->k.lanes;
            *mb = 1;
        }
        if (i + take > j->nranges) take = j->nranges - i;
        if (atomic_compare_exchange_weak(&j->next, &i, i + take)) {
            *first = i;
            return take;
        }
    }
}

static void *range_worker(void *arg) {
    job_t *j = arg;
    uint8_t *mem = NULL;
    size_t bytes = (size_t)j->k.lanes * LANE_STRIDE;
    if (bytes < 2 * STREAM_CHUNK) bytes = 2 * STREAM_CHUNK;
    if (posix_memalign((void **)&mem, 64, bytes) != 0) {
        fail(j, ERR_NOMEM, 0, 0);
    } else {
        int rc = 0;
        while (rc == 0 && !atomic_load(&j->stop)) {
            size_t i, step;
            int mb;
            step = claim_ranges(j, &i, &mb);
            if (step == 0) break;
            if (mb) {
                rc = range_mb(j, mem, i);
            } else if (step == 2) {
                rc = range_pair(j, mem, &j->ranges[i], &j->ranges[i + 1], j->out + 32 * i,
                                j->out + 32 * (i + 1));
            } else {
                for (size_t k = i; rc == 0 && k < i + step; k++) {
                    stream_t s;
                    stream_init(&s, j->k.one);
                    rc = range_single(j, mem, &j->ranges[k], j->out + 32 * k, &s, 0);
                }
            }
        }
        free(mem);
    }
    pthread_mutex_lock(&j->mu);
    j->running--;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* ---- Python entry points ---------------------------------------------- */

static int wait_tick(job_t *j) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += TICK_NS;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec += 1;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&j->mu);
    if (j->running > 0) pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    int running = j->running;
    pthread_mutex_unlock(&j->mu);
    return running;
}

static int call_progress(PyObject *progress, unsigned long long done, unsigned long long total) {
    if (progress == Py_None) return 0;
    PyObject *r = PyObject_CallFunction(progress, "KK", done, total);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

static int cancel_requested(PyObject *cancel) {
    if (cancel == Py_None) return 0;
    PyObject *r = PyObject_CallMethod(cancel, "is_set", NULL);
    if (r == NULL) return -1;
    int set = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (set < 0) return -1;
    if (set) {
        PyErr_SetString(PyExc_InterruptedError, "hashing cancelled");
        return -1;
    }
    return 0;
}

static PyObject *hash_fd(PyObject *self, PyObject *args) {
    int fd, want_sha, threads;
    unsigned long long size, leaf_size;
    PyObject *indices, *progress, *cancel;
    const char *simd;
    (void)self;
    if (!PyArg_ParseTuple(args, "iKKpOisOO:hash_fd", &fd, &size, &leaf_size, &want_sha, &indices,
                          &threads, &simd, &progress, &cancel))
        return NULL;
    job_t j;
    memset(&j, 0, sizeof j);
    if (pick_kernels(simd, &j.k) != 0)
        return PyErr_Format(PyExc_ValueError, "SIMD path %s is unknown or not supported here", simd);
    if (leaf_size < 64 || leaf_size % 64 != 0 || size >= (1ULL << 62))
        return PyErr_Format(PyExc_ValueError, "bad size or leaf_size");
    if (threads < 1) return PyErr_Format(PyExc_ValueError, "threads must be at least 1");

    PyObject *seq = PySequence_Fast(indices, "leaf_indices must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t nidx = PySequence_Fast_GET_SIZE(seq);
    uint64_t nleaves = (size + leaf_size - 1) / leaf_size;
    uint64_t *idx = PyMem_Malloc(sizeof(uint64_t) * (size_t)(nidx ? nidx : 1));
    uint8_t *out = PyMem_Malloc(32 * (size_t)(nidx ? nidx : 1));
    unsigned long long total = want_sha ? size : 0;
    PyObject *result = NULL;
    if (idx == NULL || out == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < nidx; i++) {
        unsigned long long v = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (PyErr_Occurred()) goto done;
        if (v >= nleaves) {
            PyErr_Format(PyExc_ValueError, "leaf index %llu out of range", v);
            goto done;
        }
        idx[i] = v;
        total += leaf_bytes(size, leaf_size, v);
    }

    j.fd = fd;
    j.size = size;
    j.leaf_size = leaf_size;
    j.idx = idx;
    j.nidx = (size_t)nidx;
    j.out = out;
    j.want_sha = want_sha;
    j.one_pass = want_sha && (uint64_t)nidx == nleaves;
    for (size_t i = 0; j.one_pass && i < j.nidx; i++) j.one_pass = idx[i] == i;
    j.front = 0;
    j.back = j.nidx;
    /* Leaf workers: all threads, minus one busy with the whole-file stream. */
    size_t tree_workers = (size_t)threads - (want_sha && threads > 1 ? 1 : 0);
    size_t share = (j.nidx + tree_workers - 1) / tree_workers;
    j.group = share < (size_t)j.k.lanes ? (share ? share : 1) : (size_t)j.k.lanes;
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);

    size_t units = (want_sha ? 1 : 0) + (j.nidx + j.group - 1) / j.group;
    size_t nthreads = units < (size_t)threads ? units : (size_t)threads;
    pthread_t *tids = PyMem_Malloc(sizeof(pthread_t) * (nthreads ? nthreads : 1));
    if (tids == NULL) {
        PyErr_NoMemory();
        goto destroy;
    }
    size_t started = 0;
    Py_BEGIN_ALLOW_THREADS
    for (; started < nthreads; started++) {
        pthread_mutex_lock(&j.mu);
        j.running++;
        pthread_mutex_unlock(&j.mu);
        if (pthread_create(&tids[started], NULL, worker, &j) != 0) {
            pthread_mutex_lock(&j.mu);
            j.running--;
            pthread_mutex_unlock(&j.mu);
            break;
        }
    }
    Py_END_ALLOW_THREADS
    if (nthreads > 0 && started == 0) {
        PyErr_SetString(PyExc_OSError, "could not start any hashing thread");
        goto free_tids;
    }

    int py_failed = 0;
    for (;;) {
        int running;
        Py_BEGIN_ALLOW_THREADS
        running = wait_tick(&j);
        Py_END_ALLOW_THREADS
        if (running == 0) break;
        if (!py_failed && (PyErr_CheckSignals() < 0 || cancel_requested(cancel) < 0 ||
                           call_progress(progress, atomic_load(&j.done), total) < 0)) {
            py_failed = 1;
            atomic_store(&j.stop, 1);
        }
    }
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; i < started; i++) pthread_join(tids[i], NULL);
    Py_END_ALLOW_THREADS

    if (py_failed) goto free_tids;
    if (j.err == ERR_SHORT) {
        PyErr_Format(verification_error,
                     "file is shorter than its size when hashing started: read ended at offset "
                     "%llu of %llu (truncated while hashing?)",
                     (unsigned long long)j.err_off, size);
        goto free_tids;
    }
    if (j.err == ERR_IO) {
        errno = j.err_errno;
        PyErr_SetFromErrno(PyExc_OSError);
        goto free_tids;
    }
    if (j.err == ERR_NOMEM) {
        PyErr_NoMemory();
        goto free_tids;
    }
    if (call_progress(progress, total, total) < 0) goto free_tids;
    PyObject *leaves = PyList_New(nidx);
    if (leaves == NULL) goto free_tids;
    for (Py_ssize_t i = 0; i < nidx; i++) {
        PyObject *d = PyBytes_FromStringAndSize((const char *)out + 32 * i, 32);
        if (d == NULL) {
            Py_DECREF(leaves);
            goto free_tids;
        }
        PyList_SET_ITEM(leaves, i, d);
    }
    if (want_sha) {
        result = Py_BuildValue("(y#N)", (const char *)j.sha, (Py_ssize_t)32, leaves);
    } else {
        result = Py_BuildValue("(ON)", Py_None, leaves);
    }
free_tids:
    PyMem_Free(tids);
destroy:
    pthread_cond_destroy(&j.cv);
    pthread_mutex_destroy(&j.mu);
done:
    PyMem_Free(idx);
    PyMem_Free(out);
    Py_DECREF(seq);
    return result;
}

/* sha256_ranges(ranges, threads, simd, progress, cancel): plain SHA-256 of
 * each (fd, offset, length) range, on `threads` workers that claim ranges in
 * the given order (two at a time, interleaved, when the CPU has SHA-NI). */
static PyObject *sha256_ranges(PyObject *self, PyObject *args) {
    PyObject *ranges, *progress, *cancel;
    int threads;
    const char *simd;
    (void)self;
    if (!PyArg_ParseTuple(args, "OisOO:sha256_ranges", &ranges, &threads, &simd, &progress,
                          &cancel))
        return NULL;
    job_t j;
    memset(&j, 0, sizeof j);
    if (pick_kernels(simd, &j.k) != 0)
        return PyErr_Format(PyExc_ValueError, "SIMD path %s is unknown or not supported here", simd);
    if (threads < 1) return PyErr_Format(PyExc_ValueError, "threads must be at least 1");
    PyObject *seq = PySequence_Fast(ranges, "ranges must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    range_t *rs = PyMem_Malloc(sizeof(range_t) * (size_t)(n ? n : 1));
    uint8_t *out = PyMem_Malloc(32 * (size_t)(n ? n : 1));
    pthread_t *tids = NULL;
    PyObject *result = NULL;
    unsigned long long total = 0;
    int sync_ready = 0;
    if (rs == NULL || out == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int fd;
        unsigned long long off, len;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "iKK:range", &fd, &off, &len))
            goto done;
        if (fd < 0 || off >= (1ULL << 62) || len >= (1ULL << 62)) {
            PyErr_SetString(PyExc_ValueError, "bad range");
            goto done;
        }
        rs[i].fd = fd;
        rs[i].off = off;
        rs[i].len = len;
        total += len;
    }
    j.ranges = rs;
    j.nranges = (size_t)n;
    j.out = out;
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    sync_ready = 1;
    size_t step = j.k.two ? 2 : 1;
    size_t units = ((size_t)n + step - 1) / step; /* an upper bound: groups are larger */
    size_t nthreads = units < (size_t)threads ? units : (size_t)threads;
    tids = PyMem_Malloc(sizeof(pthread_t) * (nthreads ? nthreads : 1));
    if (tids == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    size_t started = 0;
    Py_BEGIN_ALLOW_THREADS
    for (; started < nthreads; started++) {
        pthread_mutex_lock(&j.mu);
        j.running++;
        pthread_mutex_unlock(&j.mu);
        if (pthread_create(&tids[started], NULL, range_worker, &j) != 0) {
            pthread_mutex_lock(&j.mu);
            j.running--;
            pthread_mutex_unlock(&j.mu);
            break;
        }
    }
    Py_END_ALLOW_THREADS
    if (nthreads > 0 && started == 0) {
        PyErr_SetString(PyExc_OSError, "could not start any hashing thread");
        goto done;
    }
    int py_failed = 0;
    for (;;) {
        int running;
        Py_BEGIN_ALLOW_THREADS
        running = wait_tick(&j);
        Py_END_ALLOW_THREADS
        if (running == 0) break;
        if (!py_failed && (PyErr_CheckSignals() < 0 || cancel_requested(cancel) < 0 ||
                           call_progress(progress, atomic_load(&j.done), total) < 0)) {
            py_failed = 1;
            atomic_store(&j.stop, 1);
        }
    }
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; i < started; i++) pthread_join(tids[i], NULL);
    Py_END_ALLOW_THREADS
    if (py_failed) goto done;
    if (j.err == ERR_SHORT) {
        PyErr_Format(verification_error,
                     "file is shorter than when hashing started: read ended at offset %llu "
                     "(truncated while hashing?)",
                     (unsigned long long)j.err_off);
        goto done;
    }
    if (j.err == ERR_IO) {
        errno = j.err_errno;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    if (j.err == ERR_NOMEM) {
        PyErr_NoMemory();
        goto done;
    }
    if (call_progress(progress, total, total) < 0) goto done;
    result = PyList_New(n);
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PyBytes_FromStringAndSize((const char *)out + 32 * i, 32);
        if (d == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, d);
    }
done:
    if (sync_ready) {
        pthread_cond_destroy(&j.cv);
        pthread_mutex_destroy(&j.mu);
    }
    PyMem_Free(tids);
    PyMem_Free(rs);
    PyMem_Free(out);
    Py_DECREF(seq);
    return result;
}

/* SHA-256 of each message, running the chosen kernel's lanes in lock-step
 * over the blocks all messages of a batch have; the tails finish one by one.
 * A test hook: it lets tests check every SIMD path against NIST vectors. */
static PyObject *sha256_many(PyObject *self, PyObject *args) {
    PyObject *messages;
    const char *simd;
    kernels_t k;
    (void)self;
    if (!PyArg_ParseTuple(args, "Os:sha256_many", &messages, &simd)) return NULL;
    if (pick_kernels(simd, &k) != 0)
        return PyErr_Format(PyExc_ValueError, "SIMD path %s is unknown or not supported here", simd);
    PyObject *seq = PySequence_Fast(messages, "messages must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *result = PyList_New(n);
    if (result == NULL) goto fail;
    int lanes = k.mb ? k.lanes : 1;
    for (Py_ssize_t first = 0; first < n; first += lanes) {
        int used = (int)(n - first < lanes ? n - first : lanes);
        Py_buffer views[TE_MAX_LANES];
        size_t blocks[TE_MAX_LANES], maxb = 0, minb = SIZE_MAX;
        for (int i = 0; i < used; i++) {
            if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, first + i), &views[i],
                                   PyBUF_SIMPLE) < 0) {
                for (int u = 0; u < i; u++) PyBuffer_Release(&views[u]);
                goto fail;
            }
            blocks[i] = ((size_t)views[i].len + 9 + 63) / 64;
            if (blocks[i] > maxb) maxb = blocks[i];
            if (blocks[i] < minb) minb = blocks[i];
        }
        uint8_t *mem = calloc((size_t)lanes, maxb * 64);
        if (mem == NULL) {
            for (int u = 0; u < used; u++) PyBuffer_Release(&views[u]);
            PyErr_NoMemory();
            goto fail;
        }
        uint32_t st[8][TE_MAX_LANES];
        const uint8_t *ptr[TE_MAX_LANES];
        for (int i = 0; i < TE_MAX_LANES; i++) {
            ptr[i] = mem + (size_t)(i < lanes ? i : 0) * maxb * 64;
            for (int w = 0; w < 8; w++) st[w][i] = te_sha256_h0[w];
        }
        for (int i = 0; i < used; i++) {
            uint8_t *b = mem + (size_t)i * maxb * 64;
            memcpy(b, views[i].buf, (size_t)views[i].len);
            b[views[i].len] = 0x80;
            put_bitlen(b + blocks[i] * 64 - 8, (uint64_t)views[i].len);
            PyBuffer_Release(&views[i]);
        }
        if (k.mb) {
            for (int i = used; i < lanes; i++) ptr[i] = ptr[0]; /* idle lanes redo lane 0 */
            k.mb(st, ptr, minb);
        } else {
            minb = 0;
        }
        for (int i = 0; i < used; i++) {
            uint32_t h[8];
            uint8_t d[32];
            for (int w = 0; w < 8; w++) h[w] = st[w][i];
            k.one(h, ptr[i] + minb * 64, blocks[i] - minb);
            store_digest(d, h);
            PyObject *b = PyBytes_FromStringAndSize((const char *)d, 32);
            if (b == NULL) {
                free(mem);
                goto fail;
            }
            PyList_SET_ITEM(result, first + i, b);
        }
        free(mem);
    }
    Py_DECREF(seq);
    return result;
fail:
    Py_XDECREF(result);
    Py_DECREF(seq);
    return NULL;
}

/* PCR-style extend chain: value = SHA-256(value || digest) for each 32-byte
 * digest, returning every running value. value || digest is exactly one
 * block, so each step is that block plus the constant padding block.
 * Digests are hashed, never interpreted. */
static PyObject *sha256_chain(PyObject *self, PyObject *args) {
    Py_buffer init;
    PyObject *digests;
    const char *simd;
    kernels_t k;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*Os:sha256_chain", &init, &digests, &simd)) return NULL;
    PyObject *seq = NULL, *result = NULL;
    if (pick_kernels(simd, &k) != 0) {
        PyErr_Format(PyExc_ValueError, "SIMD path %s is unknown or not supported here", simd);
        goto done;
    }
    if (init.len != 32) {
        PyErr_SetString(PyExc_ValueError, "initial value must be 32 bytes");
        goto done;
    }
    seq = PySequence_Fast(digests, "digests must be a sequence");
    if (seq == NULL) goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    result = PyList_New(n);
    if (result == NULL) goto done;
    uint8_t block[64], pad[64] = {0};
    pad[0] = 0x80;
    put_bitlen(pad + 56, 64);
    memcpy(block, init.buf, 32);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyBytes_Check(d) || PyBytes_GET_SIZE(d) != 32) {
            PyErr_SetString(PyExc_ValueError, "each digest must be 32 bytes");
            Py_CLEAR(result);
            goto done;
        }
        memcpy(block + 32, PyBytes_AS_STRING(d), 32);
        uint32_t h[8];
        memcpy(h, te_sha256_h0, sizeof h);
        k.one(h, block, 1); /* the path's single-stream kernel */
        k.one(h, pad, 1);
        store_digest(block, h);
        PyObject *v = PyBytes_FromStringAndSize((const char *)block, 32);
        if (v == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, v);
    }
done:
    Py_XDECREF(seq);
    PyBuffer_Release(&init);
    return result;
}

static PyMethodDef methods[] = {
    {"hash_fd", hash_fd, METH_VARARGS,
     "hash_fd(fd, size, leaf_size, want_sha256, leaf_indices, threads, simd, progress, cancel)"
     " -> (sha256 | None, [leaf digests])"},
    {"sha256_ranges", sha256_ranges, METH_VARARGS,
     "sha256_ranges(ranges, threads, simd, progress, cancel) -> [digests]: plain SHA-256 of each"
     " (fd, offset, length) range."},
    {"sha256_many", sha256_many, METH_VARARGS,
     "sha256_many(messages, simd) -> [digests]: SHA-256 of each message on one SIMD path."},
    {"sha256_chain", sha256_chain, METH_VARARGS,
     "sha256_chain(initial, digests, simd) -> [values]: value = SHA-256(value || digest)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "trustedge.hashing._speedups",
    "C implementation of trustedge blob hashing (see _native.py for the twin).", -1, methods,
    NULL, NULL, NULL, NULL,
};

static int append_name(PyObject *list, const char *name) {
    PyObject *s = PyUnicode_FromString(name);
    if (s == NULL) return -1;
    int rc = PyList_Append(list, s);
    Py_DECREF(s);
    return rc;
}

PyMODINIT_FUNC PyInit__speedups(void) {
    PyObject *errors = PyImport_ImportModule("trustedge.errors");
    if (errors == NULL) return NULL;
    verification_error = PyObject_GetAttrString(errors, "VerificationError");
    Py_DECREF(errors);
    if (verification_error == NULL) return NULL;
    PyObject *m = PyModule_Create(&speedups_module);
    if (m == NULL) return NULL;
    /* Leaf kernels this CPU runs, fastest first. */
    int cpu = te_cpu_features();
    PyObject *paths = PyList_New(0);
    if (paths == NULL) goto fail;
    if ((cpu & TE_CPU_AVX512) && append_name(paths, "avx512") < 0) goto fail;
    if ((cpu & TE_CPU_SHANI) && append_name(paths, "shani") < 0) goto fail;
    if ((cpu & TE_CPU_AVX2) && append_name(paths, "avx2") < 0) goto fail;
    if (append_name(paths, "portable") < 0) goto fail;
    PyObject *tuple = PyList_AsTuple(paths);
    Py_DECREF(paths);
    paths = NULL;
    if (tuple == NULL || PyModule_AddObject(m, "SIMD_PATHS", tuple) < 0) {
        Py_XDECREF(tuple);
        goto fail;
    }
    return m;
fail:
    Py_XDECREF(paths);
    Py_DECREF(m);
    return NULL;
}

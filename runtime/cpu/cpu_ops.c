/* The CPU path's ops: the matmul driver (activation quantization, row x token tiles, rows
 * split over the pool) and the small ops of a forward pass. The inner loops are the kernel
 * table of the pool's SIMD level (cpu_kern_*.c); this file only divides the work. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu/cpu_kern.h"
#include "base/util.h"

cpu_act cpu_act_of(uint32_t type) {
    switch (type) {
    case WTYPE_F32: case WTYPE_F16: case WTYPE_BF16: return CPU_ACT_F32;
    case WTYPE_Q4_0: case WTYPE_Q4_1: case WTYPE_Q5_0: case WTYPE_Q5_1: case WTYPE_Q8_0: return CPU_ACT_Q8;
    case WTYPE_Q4_K: case WTYPE_Q5_K: case WTYPE_Q6_K: return CPU_ACT_Q8K;
    default: return CPU_ACT_NONE;
    }
}

size_t cpu_act_row_bytes(cpu_act act, size_t n) {
    switch (act) {
    case CPU_ACT_F32: return n * sizeof(float);
    case CPU_ACT_Q8: return n / WTYPE_QK * sizeof(cpu_q8);
    case CPU_ACT_Q8K: return n / WTYPE_QK_K * sizeof(cpu_q8k);
    default: return 0;
    }
}

int cpu_type_supported(uint32_t type) {
    return cpu_act_of(type) != CPU_ACT_NONE && wtype_get(type) != NULL;
}

/* Splits n items into tasks of at least `min_chunk` items, about 4 per thread. */
static size_t cpu_chunk(const cpu_pool *pool, size_t n, size_t min_chunk) {
    size_t want = 4 * (size_t)cpu_pool_threads(pool);
    size_t chunk = (n + want - 1) / want;
    return chunk < min_chunk ? min_chunk : chunk;
}

static uint32_t cpu_tasks(size_t n, size_t chunk) { return (uint32_t)((n + chunk - 1) / chunk); }

/* ---------------------------------------------------------------- matmul ---- */

/* A task is a tile of rows times a chunk of tokens. The row tile (about CPU_TILE_BYTES of
 * weights) stays in L1 while the chunk's tokens pass over it CPU_NX_MAX at a time; the chunk's
 * activations (CPU_TILE_TOKENS rows) stay in L2 while the row tiles pass. So every weight byte
 * comes from memory once per chunk of tokens, and the token count never makes a task's
 * working set outgrow the caches. */
#define CPU_TILE_BYTES (16 * 1024)
#define CPU_TILE_ROWS_MAX 64
#define CPU_TILE_TOKENS 64

typedef struct mm_job {
    const cpu_kern *kern;
    cpu_dot_fn dot;
    cpu_act act;
    const unsigned char *w; /* (rows) rows of row_bytes */
    size_t row_bytes, rows, cols, n; /* n: elements the dot reads (cols, less the test hook) */
    const float *xf;         /* (n_tok, cols) input */
    const unsigned char *xq; /* (n_tok, x_stride) activations as the dot reads them */
    unsigned char *xq_out;   /* the same, while the quantizing tasks write it */
    size_t x_stride, n_tok, tile_rows, n_row_tiles;
    float *y;                /* (n_tok, rows) */
} mm_job;

static void mm_quant_task(void *ctx, uint32_t t, uint32_t thread) {
    const mm_job *j = ctx;
    const float *x = j->xf + (size_t)t * j->cols;
    void *dst = j->xq_out + (size_t)t * j->x_stride;
    if (j->act == CPU_ACT_Q8) j->kern->quant_q8(x, dst, j->cols);
    else j->kern->quant_q8k(x, dst, j->cols);
}

/* One tile of rows against one chunk of tokens, CPU_NX_MAX tokens per dot call. Tasks of one
 * token chunk are consecutive, so the threads share that chunk's activations. */
static void mm_tile_task(void *ctx, uint32_t task, uint32_t thread) {
    const mm_job *j = ctx;
    size_t r0 = task % j->n_row_tiles * j->tile_rows, r1 = r0 + j->tile_rows;
    size_t tok0 = task / j->n_row_tiles * CPU_TILE_TOKENS, tok1 = tok0 + CPU_TILE_TOKENS;
    if (r1 > j->rows) r1 = j->rows;
    if (tok1 > j->n_tok) tok1 = j->n_tok;
    for (size_t t0 = tok0; t0 < tok1; t0 += CPU_NX_MAX) {
        size_t nx = tok1 - t0 < CPU_NX_MAX ? tok1 - t0 : CPU_NX_MAX;
        const unsigned char *x = j->xq + t0 * j->x_stride;
        float *y = j->y + t0 * j->rows;
        for (size_t r = r0; r < r1; r++) {
            float s[CPU_NX_MAX];
            j->dot(j->n, j->w + r * j->row_bytes, x, j->x_stride, nx, s);
            for (size_t t = 0; t < nx; t++) y[t * j->rows + r] = s[t];
        }
    }
}

vkllm_status cpu_matmul(cpu_pool *pool, uint32_t type, const void *w, size_t rows, size_t cols,
                        const float *x, size_t n_tok, float *y) {
    const wtype_traits *tt = wtype_get(type);
    cpu_act act = cpu_act_of(type);
    const cpu_kern *kern = cpu_pool_kern(pool);
    if (!tt || act == CPU_ACT_NONE || !kern->dot[type])
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "cpu_matmul: weight type %s has no CPU kernel",
                       tt ? tt->name : "(unknown id)");
    if (cols % tt->block)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "cpu_matmul: row length %zu is not a multiple of the %s block size %u",
                       cols, tt->name, tt->block);
    if (rows == 0 || n_tok == 0) return VKLLM_OK;
    mm_job j = {.kern = kern, .dot = kern->dot[type], .act = act, .w = w, .rows = rows,
                .cols = cols, .n = cols, .xf = x, .n_tok = n_tok, .y = y};
    j.row_bytes = cols / tt->block * tt->bytes;
    if (cpu_pool_drop_last(pool) && cols) j.n = cols - tt->block;
    j.x_stride = cpu_act_row_bytes(act, cols);
    if (act == CPU_ACT_F32) {
        j.xq = (const unsigned char *)x;
    } else {
        if (!cpu_pool_reserve(pool, n_tok * j.x_stride, 0))
            return vkl_err(VKLLM_ERR_OUT_OF_MEMORY,
                           "cpu_matmul: cannot allocate %zu bytes of quantized activations",
                           n_tok * j.x_stride);
        j.xq = j.xq_out = cpu_pool_shared_scratch(pool);
        cpu_pool_run(pool, mm_quant_task, &j, (uint32_t)n_tok);
    }
    size_t balanced = rows / (4 * (size_t)cpu_pool_threads(pool)); /* >= 4 tasks a thread */
    size_t tile;
    if (n_tok <= CPU_NX_MAX) {
        /* One pass over the weights: nothing to keep in L1, so long runs of rows (few claims,
         * the prefetchers on one stream per thread) for as long as the threads stay balanced. */
        tile = balanced ? balanced : 1;
    } else {
        tile = j.row_bytes ? CPU_TILE_BYTES / j.row_bytes : CPU_TILE_ROWS_MAX;
        if (tile > CPU_TILE_ROWS_MAX) tile = CPU_TILE_ROWS_MAX;
        if (tile < 1) tile = 1;
        if (tile > balanced) tile = balanced ? balanced : 1;
    }
    j.tile_rows = tile;
    j.n_row_tiles = cpu_tasks(rows, tile);
    cpu_pool_run(pool, mm_tile_task, &j, (uint32_t)(j.n_row_tiles * cpu_tasks(n_tok, CPU_TILE_TOKENS)));
    return VKLLM_OK;
}

/* ---------------------------------------------------------------- embed ---- */

typedef struct embed_job {
    wtype_to_float_fn to_float;
    const unsigned char *w;
    size_t row_bytes, dim;
    const int32_t *tokens;
    float *out;
} embed_job;

static void embed_task(void *ctx, uint32_t t, uint32_t thread) {
    const embed_job *j = ctx;
    j->to_float(j->w + (size_t)j->tokens[t] * j->row_bytes, j->out + (size_t)t * j->dim, j->dim);
}

vkllm_status cpu_embed(cpu_pool *pool, float *out, uint32_t type, const void *w, size_t dim,
                       size_t n_vocab, const int32_t *tokens, size_t n_tok) {
    const wtype_traits *tt = wtype_get(type);
    if (!tt || !cpu_type_supported(type) || !tt->to_float)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "cpu_embed: weight type %s has no CPU decoder",
                       tt ? tt->name : "(unknown id)");
    if (dim % tt->block)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "cpu_embed: row length %zu is not a multiple of the %s block size %u", dim,
                       tt->name, tt->block);
    for (size_t t = 0; t < n_tok; t++)
        if (tokens[t] < 0 || (uint64_t)tokens[t] >= n_vocab)
            return vkl_err(VKLLM_ERR_INVALID_ARG,
                           "cpu_embed: token %zu has id %d, outside the vocabulary [0, %zu)", t,
                           (int)tokens[t], n_vocab);
    embed_job j = {.to_float = tt->to_float, .w = w, .row_bytes = dim / tt->block * tt->bytes,
                   .dim = dim, .tokens = tokens, .out = out};
    cpu_pool_run(pool, embed_task, &j, (uint32_t)n_tok);
    return VKLLM_OK;
}

/* ---------------------------------------------------------------- elementwise ---- */

typedef struct ew_job {
    float *out;
    const float *a, *b;
    size_t n, chunk;
    float eps;
} ew_job;

/* Sum of squares in double in index order, as ref_rmsnorm: rows are short, so this is cheap. */
static void rmsnorm_task(void *ctx, uint32_t r, uint32_t thread) {
    const ew_job *j = ctx;
    const float *x = j->a + (size_t)r * j->n;
    float *o = j->out + (size_t)r * j->n;
    double ss = 0.0;
    for (size_t i = 0; i < j->n; i++) ss += (double)x[i] * (double)x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)j->n + (double)j->eps));
    for (size_t i = 0; i < j->n; i++) o[i] = x[i] * scale * j->b[i];
}

void cpu_rmsnorm(cpu_pool *pool, float *out, const float *x, const float *weight, size_t n_rows,
                 size_t n, float eps) {
    if (n == 0) return;
    ew_job j = {.out = out, .a = x, .b = weight, .n = n, .eps = eps};
    cpu_pool_run(pool, rmsnorm_task, &j, (uint32_t)n_rows);
}

static void swiglu_task(void *ctx, uint32_t task, uint32_t thread) {
    const ew_job *j = ctx;
    size_t i0 = (size_t)task * j->chunk, i1 = i0 + j->chunk < j->n ? i0 + j->chunk : j->n;
    for (size_t i = i0; i < i1; i++) {
        float g = j->a[i];
        j->out[i] = g / (1.0f + expf(-g)) * j->b[i]; /* expf overflow gives g / inf = -0 */
    }
}

void cpu_swiglu(cpu_pool *pool, float *out, const float *gate, const float *up, size_t n) {
    ew_job j = {.out = out, .a = gate, .b = up, .n = n, .chunk = cpu_chunk(pool, n, 4096)};
    cpu_pool_run(pool, swiglu_task, &j, cpu_tasks(n, j.chunk));
}

static void add_task(void *ctx, uint32_t task, uint32_t thread) {
    const ew_job *j = ctx;
    size_t i0 = (size_t)task * j->chunk, i1 = i0 + j->chunk < j->n ? i0 + j->chunk : j->n;
    for (size_t i = i0; i < i1; i++) j->out[i] = j->a[i] + j->b[i];
}

void cpu_add(cpu_pool *pool, float *out, const float *a, const float *b, size_t n) {
    ew_job j = {.out = out, .a = a, .b = b, .n = n, .chunk = cpu_chunk(pool, n, 16384)};
    cpu_pool_run(pool, add_task, &j, cpu_tasks(n, j.chunk));
}

/* ---------------------------------------------------------------- attention ---- */

typedef struct rope_job {
    float *x;
    size_t n_heads, head_dim, rot_dim, pos0;
    double freq_base, freq_scale;
    int neox;
} rope_job;

/* The angle is computed exactly as ref_rope computes it, so the two agree to the rounding of
 * the outputs. One pow per pair and token: cheap next to the products around it. */
static void rope_task(void *ctx, uint32_t t, uint32_t thread) {
    const rope_job *j = ctx;
    size_t half = j->rot_dim / 2;
    double p = (double)(j->pos0 + t) * j->freq_scale;
    float *xt = j->x + (size_t)t * j->n_heads * j->head_dim;
    for (size_t i = 0; i < half; i++) {
        double theta = p * pow(j->freq_base, -2.0 * (double)i / (double)j->rot_dim);
        double c = cos(theta), s = sin(theta);
        size_t i0 = j->neox ? i : 2 * i, i1 = j->neox ? i + half : 2 * i + 1;
        for (size_t h = 0; h < j->n_heads; h++) {
            float *v = xt + h * j->head_dim;
            double a = v[i0], b = v[i1];
            v[i0] = (float)(a * c - b * s);
            v[i1] = (float)(a * s + b * c);
        }
    }
}

void cpu_rope(cpu_pool *pool, float *x, size_t n_tok, size_t n_heads, size_t head_dim,
              size_t rot_dim, size_t pos0, float freq_base, float freq_scale, int neox) {
    rope_job j = {.x = x, .n_heads = n_heads, .head_dim = head_dim, .rot_dim = rot_dim,
                  .pos0 = pos0, .freq_base = freq_base, .freq_scale = freq_scale, .neox = neox};
    if (rot_dim / 2 == 0) return;
    cpu_pool_run(pool, rope_task, &j, (uint32_t)n_tok);
}

typedef struct kv_job {
    const cpu_kern *kern;
    void *cache;
    const float *src;
    size_t n, chunk;
    int f16;
} kv_job;

static void kv_task(void *ctx, uint32_t task, uint32_t thread) {
    const kv_job *j = ctx;
    size_t i0 = (size_t)task * j->chunk, n = j->chunk < j->n - i0 ? j->chunk : j->n - i0;
    if (j->f16) j->kern->f32_to_f16((uint16_t *)j->cache + i0, j->src + i0, n);
    else memcpy((float *)j->cache + i0, j->src + i0, n * sizeof(float));
}

void cpu_kv_write(cpu_pool *pool, void *cache, int cache_f16, const float *src, size_t pos0,
                  size_t n_tok, size_t kv_dim) {
    size_t off = pos0 * kv_dim; /* the rows are contiguous in both layouts */
    kv_job j = {.kern = cpu_pool_kern(pool), .src = src, .n = n_tok * kv_dim, .f16 = cache_f16,
                .cache = cache_f16 ? (void *)((uint16_t *)cache + off) : (void *)((float *)cache + off)};
    if (j.n == 0) return;
    j.chunk = cpu_chunk(pool, j.n, 8192);
    cpu_pool_run(pool, kv_task, &j, cpu_tasks(j.n, j.chunk));
}

typedef struct attn_job {
    cpu_pool *pool;
    const cpu_kern *kern;
    float *out;
    const float *q;
    const unsigned char *k, *v; /* (n_ctx, n_kv_head, head_dim) elements of esz bytes */
    size_t esz, n_head, n_kv_head, head_dim, pos0, drop;
    float scale;
    int f16;
} attn_job;

/* One (token, query head): scores, softmax, weighted sum of V rows, all in f32. */
static void attn_task(void *ctx, uint32_t task, uint32_t thread) {
    const attn_job *j = ctx;
    size_t t = task / j->n_head, h = task % j->n_head;
    size_t n_pos = j->pos0 + t + 1 - j->drop;
    size_t hd = j->head_dim, kvh = h / (j->n_head / j->n_kv_head);
    size_t pos_bytes = j->n_kv_head * hd * j->esz, head_off = kvh * hd * j->esz;
    float *acc = cpu_pool_thread_scratch(j->pool, thread); /* (head_dim) then (n_pos) scores */
    float *score = acc + ((hd + 15) & ~(size_t)15);
    const float *qh = j->q + ((size_t)t * j->n_head + h) * hd;
    cpu_dot_fn dot = j->kern->dot[j->f16 ? WTYPE_F16 : WTYPE_F32];
    float max = -INFINITY;
    for (size_t p = 0; p < n_pos; p++) {
        float s;
        dot(hd, j->k + p * pos_bytes + head_off, qh, 0, 1, &s);
        score[p] = s * j->scale;
        if (score[p] > max) max = score[p];
    }
    float sum = 0.0f;
    for (size_t p = 0; p < n_pos; p++) {
        score[p] = expf(score[p] - max);
        sum += score[p];
    }
    float inv = 1.0f / sum;
    memset(acc, 0, hd * sizeof *acc);
    for (size_t p = 0; p < n_pos; p++) {
        const unsigned char *v = j->v + p * pos_bytes + head_off;
        if (j->f16) j->kern->axpy_f16(acc, score[p] * inv, (const uint16_t *)v, hd);
        else j->kern->axpy_f32(acc, score[p] * inv, (const float *)v, hd);
    }
    memcpy(j->out + ((size_t)t * j->n_head + h) * hd, acc, hd * sizeof *acc);
}

vkllm_status cpu_attention(cpu_pool *pool, float *out, const float *q, const void *k_cache,
                           const void *v_cache, int cache_f16, size_t n_tok, size_t pos0,
                           size_t n_head, size_t n_kv_head, size_t head_dim, float scale) {
    if (n_head == 0 || n_kv_head == 0 || n_head % n_kv_head)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "cpu_attention: %zu query heads cannot share %zu KV heads evenly", n_head,
                       n_kv_head);
    if (n_tok == 0 || head_dim == 0) return VKLLM_OK;
    size_t n_pos = pos0 + n_tok;
    size_t need = (((head_dim + 15) & ~(size_t)15) + n_pos) * sizeof(float);
    if (!cpu_pool_reserve(pool, 0, need))
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY,
                       "cpu_attention: cannot allocate scores for %zu positions", n_pos);
    attn_job j = {.pool = pool, .kern = cpu_pool_kern(pool), .out = out, .q = q, .k = k_cache,
                  .v = v_cache, .esz = cache_f16 ? 2 : 4, .n_head = n_head,
                  .n_kv_head = n_kv_head, .head_dim = head_dim, .pos0 = pos0,
                  .drop = cpu_pool_drop_last(pool) ? 1 : 0, .scale = scale, .f16 = cache_f16};
    cpu_pool_run(pool, attn_task, &j, (uint32_t)(n_tok * n_head));
    return VKLLM_OK;
}

/* ---------------------------------------------------------------- yardstick ---- */

typedef struct read_job {
    const uint64_t *buf;
    size_t words_per_task, words;
    uint64_t *sink; /* (n_tasks): keeps the sums alive */
} read_job;

static void read_task(void *ctx, uint32_t task, uint32_t thread) {
    (void)thread;
    const read_job *j = ctx;
    size_t a = (size_t)task * j->words_per_task, b = a + j->words_per_task;
    if (b > j->words) b = j->words;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = a;
    for (; i + 4 <= b; i += 4) s0 += j->buf[i], s1 += j->buf[i + 1], s2 += j->buf[i + 2], s3 += j->buf[i + 3];
    for (; i < b; i++) s0 += j->buf[i];
    j->sink[task] = s0 + s1 + s2 + s3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

vkllm_status cpu_measure_read(uint32_t n_threads, uint64_t bytes, uint32_t passes, cpu_read_result *out) {
    memset(out, 0, sizeof *out);
    if (passes == 0 || passes > 64) passes = 7;
    size_t words = (size_t)(bytes / 8);
    if (words == 0) return vkl_err(VKLLM_ERR_INVALID_ARG, "cpu_measure_read: %llu bytes", (unsigned long long)bytes);
    cpu_pool *pool = NULL;
    vkllm_status st = cpu_pool_create(n_threads, &pool);
    if (st) return st;
    uint32_t n_tasks = 16 * cpu_pool_threads(pool);
    uint64_t *buf = vkl_malloc(words * 8);
    uint64_t *sink = vkl_calloc(n_tasks, sizeof *sink);
    double *gbps = vkl_calloc(passes, sizeof *gbps);
    if (!buf || !sink || !gbps) {
        st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "cpu_measure_read: cannot allocate %llu bytes", (unsigned long long)bytes);
    } else {
        for (size_t i = 0; i < words; i++) buf[i] = i; /* every page backed before timing */
        read_job j = {.buf = buf, .words_per_task = (words + n_tasks - 1) / n_tasks, .words = words, .sink = sink};
        for (uint32_t p = 0; p <= passes; p++) {
            double t0 = vkl_now_ms();
            cpu_pool_run(pool, read_task, &j, n_tasks);
            double ms = vkl_now_ms() - t0;
            if (p > 0) gbps[p - 1] = ms > 0 ? (double)words * 8 / (ms * 1e6) : 0;
        }
        qsort(gbps, passes, sizeof *gbps, cmp_double);
        *out = (cpu_read_result){gbps[passes / 2], gbps[0], gbps[passes - 1], (uint64_t)words * 8, passes};
    }
    free(gbps);
    free(sink);
    free(buf);
    cpu_pool_free(pool);
    return st;
}

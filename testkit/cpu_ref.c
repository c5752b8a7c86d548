/* CPU reference ops: plain loops that read like the maths, used as the oracle for every GPU
 * kernel and as a slow but exact forward pass in tests. Sums run in double in index order;
 * weights are dequantized one row at a time through the wtype table, so memory stays O(cols). */
#include "testkit/cpu_ref.h"

#include <math.h>
#include <stdlib.h>

#include "runtime/format/wtype.h"
#include "base/util.h"

void ref_add(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void ref_mul(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

void ref_rmsnorm(float *out, const float *x, const float *weight, size_t n, float eps) {
    if (n == 0) return;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) ss += (double)x[i] * (double)x[i];
    double scale = 1.0 / sqrt(ss / (double)n + (double)eps);
    for (size_t i = 0; i < n; i++) out[i] = (float)((double)x[i] * scale * (double)weight[i]);
}

void ref_rmsnorm_rows(float *out, const float *x, const float *weight, size_t n_rows, size_t n,
                      float eps) {
    for (size_t r = 0; r < n_rows; r++) ref_rmsnorm(out + r * n, x + r * n, weight, n, eps);
}

void ref_softmax(float *x, size_t n) {
    if (n == 0) return;
    float max = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = exp((double)x[i] - (double)max);
        x[i] = (float)e;
        sum += e;
    }
    for (size_t i = 0; i < n; i++) x[i] = (float)((double)x[i] / sum);
}

float ref_silu(float x) {
    /* exp(-x) overflows to inf for x << 0, and x / inf is the correct limit (-0). */
    return (float)((double)x / (1.0 + exp(-(double)x)));
}

void ref_swiglu(float *out, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (float)((double)ref_silu(gate[i]) * (double)up[i]);
}

void ref_f32_to_f16(uint16_t *out, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = wtype_f32_to_f16(x[i]);
}

void ref_f16_to_f32(float *out, const uint16_t *x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = wtype_f16_to_f32(x[i]);
}

size_t ref_argmax(const float *x, size_t n) {
    size_t best = n; /* n: nothing but NaN seen yet */
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i]) && (best == n || x[i] > x[best])) best = i;
    return best == n ? 0 : best;
}

/* ---------------------------------------------------------------- weights ---- */

/* Looks up a decodable type and the byte length of one row of cols elements. */
static vkllm_status ref_row_layout(const char *op, uint32_t type, size_t cols,
                                   wtype_to_float_fn *to_float, size_t *row_bytes) {
    const wtype_traits *t = wtype_get(type);
    if (!t)
        return vkl_err(VKLLM_ERR_UNSUPPORTED,
                       "%s: weight type id %u is not in the type table (runtime/format/wtype.c)", op,
                       type);
    if (!t->to_float)
        return vkl_err(VKLLM_ERR_UNSUPPORTED,
                       "%s: weight type %s has no CPU decoder in this build: add its to_float "
                       "codec to runtime/format/wtype.c",
                       op, t->name);
    if (cols % t->block)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "%s: row length %zu is not a multiple of the %s block size %u", op, cols,
                       t->name, t->block);
    *to_float = t->to_float;
    *row_bytes = cols / t->block * t->bytes;
    return VKLLM_OK;
}

static double ref_dot(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

/* Both products: each row is dequantized once and dotted with every token's input. */
static vkllm_status ref_rows_dot(const char *op, float *out, const void *w, uint32_t type,
                                 size_t rows, size_t cols, size_t n_tok, const float *x) {
    wtype_to_float_fn to_float = NULL;
    size_t row_bytes = 0;
    vkllm_status st = ref_row_layout(op, type, cols, &to_float, &row_bytes);
    if (st != VKLLM_OK) return st;
    float *row = malloc((cols ? cols : 1) * sizeof *row); /* (cols) one dequantized row */
    if (!row)
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "%s: cannot allocate a %zu-float row", op, cols);
    const unsigned char *wb = w;
    for (size_t r = 0; r < rows; r++) {
        to_float(wb + r * row_bytes, row, cols);
        for (size_t t = 0; t < n_tok; t++)
            out[t * rows + r] = (float)ref_dot(row, x + t * cols, cols);
    }
    free(row);
    return VKLLM_OK;
}

vkllm_status ref_matvec(float *out, const void *w, uint32_t type, size_t rows, size_t cols,
                        const float *x) {
    return ref_rows_dot("ref_matvec", out, w, type, rows, cols, 1, x);
}

vkllm_status ref_matmul(float *out, const void *w, uint32_t type, size_t rows, size_t cols,
                        size_t n_tok, const float *x) {
    return ref_rows_dot("ref_matmul", out, w, type, rows, cols, n_tok, x);
}

vkllm_status ref_embed(float *out, const void *w, uint32_t type, size_t dim, size_t n_vocab,
                       int32_t token) {
    if (token < 0 || (uint64_t)token >= n_vocab)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "ref_embed: token id %d is outside the vocabulary [0, %zu)", (int)token,
                       n_vocab);
    wtype_to_float_fn to_float = NULL;
    size_t row_bytes = 0;
    vkllm_status st = ref_row_layout("ref_embed", type, dim, &to_float, &row_bytes);
    if (st != VKLLM_OK) return st;
    to_float((const unsigned char *)w + (size_t)token * row_bytes, out, dim);
    return VKLLM_OK;
}

/* ---------------------------------------------------------------- attention ---- */

void ref_rope(float *x, size_t n_heads, size_t head_dim, size_t rot_dim, int64_t pos,
              float freq_base, float freq_scale, int neox) {
    size_t half = rot_dim / 2;
    double p = (double)pos * (double)freq_scale;
    for (size_t i = 0; i < half; i++) {
        double theta = p * pow((double)freq_base, -2.0 * (double)i / (double)rot_dim);
        double c = cos(theta), s = sin(theta);
        /* The two elements of pair i: adjacent in the LLaMA form, half a rotation apart in NeoX. */
        size_t i0 = neox ? i : 2 * i;
        size_t i1 = neox ? i + half : 2 * i + 1;
        for (size_t h = 0; h < n_heads; h++) {
            float *v = x + h * head_dim;
            double a = v[i0], b = v[i1];
            v[i0] = (float)(a * c - b * s);
            v[i1] = (float)(a * s + b * c);
        }
    }
}

/* One attention body for both cache formats: exactly one of kf/kh (and vf/vh) is non-NULL. */
static vkllm_status ref_attention_any(float *out, const float *q, const float *kf,
                                      const uint16_t *kh, const float *vf, const uint16_t *vh,
                                      size_t n_head, size_t n_kv_head, size_t head_dim,
                                      size_t n_past) {
    if (n_head == 0 || n_kv_head == 0 || n_head % n_kv_head)
        return vkl_err(VKLLM_ERR_INVALID_ARG,
                       "ref_attention: %zu query heads cannot share %zu KV heads evenly", n_head,
                       n_kv_head);
    size_t n_pos = n_past + 1;
    size_t group = n_head / n_kv_head;
    size_t pos_stride = n_kv_head * head_dim; /* elements between two positions of the cache */
    double *att = malloc((n_pos + head_dim) * sizeof *att); /* (n_pos) weights, (head_dim) acc */
    if (!att)
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY,
                       "ref_attention: cannot allocate scores for %zu positions", n_pos);
    double *acc = att + n_pos;
    double scale = 1.0 / sqrt((double)head_dim);
    for (size_t h = 0; h < n_head; h++) {
        const float *qh = q + h * head_dim;
        size_t kv_off = (h / group) * head_dim;
        double max = -INFINITY;
        for (size_t t = 0; t < n_pos; t++) {
            size_t base = t * pos_stride + kv_off;
            double s = 0.0;
            for (size_t d = 0; d < head_dim; d++) {
                double k = kf ? (double)kf[base + d] : (double)wtype_f16_to_f32(kh[base + d]);
                s += (double)qh[d] * k;
            }
            att[t] = s * scale;
            if (att[t] > max) max = att[t];
        }
        double sum = 0.0;
        for (size_t t = 0; t < n_pos; t++) {
            att[t] = exp(att[t] - max);
            sum += att[t];
        }
        for (size_t d = 0; d < head_dim; d++) acc[d] = 0.0;
        for (size_t t = 0; t < n_pos; t++) {
            size_t base = t * pos_stride + kv_off;
            double a = att[t] / sum;
            for (size_t d = 0; d < head_dim; d++) {
                double v = vf ? (double)vf[base + d] : (double)wtype_f16_to_f32(vh[base + d]);
                acc[d] += a * v;
            }
        }
        for (size_t d = 0; d < head_dim; d++) out[h * head_dim + d] = (float)acc[d];
    }
    free(att);
    return VKLLM_OK;
}

vkllm_status ref_attention(float *out, const float *q, const float *k_cache, const float *v_cache,
                           size_t n_head, size_t n_kv_head, size_t head_dim, size_t n_past) {
    return ref_attention_any(out, q, k_cache, NULL, v_cache, NULL, n_head, n_kv_head, head_dim,
                             n_past);
}

vkllm_status ref_attention_f16(float *out, const float *q, const uint16_t *k_cache,
                               const uint16_t *v_cache, size_t n_head, size_t n_kv_head,
                               size_t head_dim, size_t n_past) {
    return ref_attention_any(out, q, NULL, k_cache, NULL, v_cache, n_head, n_kv_head, head_dim,
                             n_past);
}

void ref_quant_act(float *x, size_t n, size_t block) {
    for (size_t b = 0; block && b + block <= n; b += block) {
        float amax = 0.0f;
        for (size_t j = 0; j < block; j++) amax = fmaxf(amax, fabsf(x[b + j]));
        float id = amax > 0.0f ? 127.0f / amax : 0.0f, d = amax / 127.0f;
        for (size_t j = 0; j < block; j++) x[b + j] = d * nearbyintf(x[b + j] * id);
    }
}

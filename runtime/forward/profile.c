/* Per-op GPU time: marks of a batch's dispatch ranges summed into a table by op and type. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/forward/profile.h"
#include "base/util.h"

vkllm_status prof_mark_add(prof_marks *mk, const char *op, const char *type, uint32_t first, uint32_t end,
                           uint64_t bytes, uint64_t flops) {
    if (mk->n == mk->cap) {
        uint32_t cap = mk->cap ? mk->cap * 2 : 256;
        prof_mark *m = vkl_realloc(mk->m, cap * sizeof *m);
        if (!m) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
        mk->m = m;
        mk->cap = cap;
    }
    mk->m[mk->n++] = (prof_mark){op, type ? type : "", first, end, bytes, flops};
    return VKLLM_OK;
}

void prof_marks_free(prof_marks *mk) {
    free(mk->m);
    *mk = (prof_marks){0};
}

/* The row for op and type, appended when new; NULL when out of memory. */
static vkllm_profile_entry *row(prof *p, const char *op, const char *type) {
    for (uint32_t i = 0; i < p->n; i++)
        if (!strcmp(p->e[i].op, op) && !strcmp(p->e[i].type, type)) return &p->e[i];
    if (p->n == p->cap) {
        uint32_t cap = p->cap ? p->cap * 2 : 16;
        vkllm_profile_entry *e = vkl_realloc(p->e, cap * sizeof *e);
        if (!e) return NULL;
        p->e = e;
        p->cap = cap;
    }
    vkllm_profile_entry *r = &p->e[p->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->op, sizeof r->op, "%s", op);
    snprintf(r->type, sizeof r->type, "%s", type);
    return r;
}

static vkllm_status add(prof *p, const vkllm_profile_entry *src) {
    vkllm_profile_entry *r = row(p, src->op, src->type);
    if (!r) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    r->calls += src->calls;
    r->ms += src->ms;
    r->bytes += src->bytes;
    r->flops += src->flops;
    return VKLLM_OK;
}

vkllm_status prof_collect(prof *p, prof_marks *mk, const vk_batch *b) {
    vkllm_status st = VKLLM_OK;
    for (uint32_t i = 0; !st && i < mk->n; i++) {
        const prof_mark *m = &mk->m[i];
        vkllm_profile_entry e = {.calls = 1, .bytes = m->bytes, .flops = m->flops};
        snprintf(e.op, sizeof e.op, "%s", m->op);
        snprintf(e.type, sizeof e.type, "%s", m->type);
        for (uint32_t d = m->first; d < m->end; d++) {
            double ms = vk_batch_dispatch_ms(b, d);
            if (ms > 0) e.ms += ms;
        }
        st = add(p, &e);
    }
    mk->n = 0;
    return st;
}

void prof_reset(prof *p) { p->n = 0; }

void prof_free(prof *p) {
    if (!p) return;
    free(p->e);
    *p = (prof){0};
}

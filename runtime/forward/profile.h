/* Per-op GPU time for vkllm_context_get_profile. While recording a batch the forward pass
 * notes which of its dispatches each op issued (a mark: op name, weight type, the bytes it
 * must move and the flops it must do); once the batch's fence has signalled, each mark's
 * dispatch times (vk_batch_dispatch_ms) are added to a table with one row per op and type. */
#ifndef VKLLM_PROFILE_H
#define VKLLM_PROFILE_H

#include "vk/vk.h"
#include "vkllm.h"

typedef struct prof_mark {
    const char *op;      /* a string literal: "matvec", "rmsnorm" ... */
    const char *type;    /* a weight type name, or "" */
    uint32_t first, end; /* dispatches [first, end) of the batch */
    uint64_t bytes, flops;
} prof_mark;

/* The marks of one batch being recorded or in flight. */
typedef struct prof_marks {
    prof_mark *m;
    uint32_t n, cap;
} prof_marks;

/* The accumulated table, in the order ops first appeared: one per context, which every
 * stage (device) of the context adds to. */
typedef struct prof {
    vkllm_profile_entry *e;
    uint32_t n, cap;
} prof;

/* Notes that dispatches [first, end) of the batch being recorded were one call of op. */
vkllm_status prof_mark_add(prof_marks *mk, const char *op, const char *type, uint32_t first, uint32_t end,
                           uint64_t bytes, uint64_t flops);
/* Adds the GPU time of every mark in b (waited for) to p, then forgets the marks. Dispatches
 * without a timestamp (the batch ran out of queries) add calls and bytes but no time. */
vkllm_status prof_collect(prof *p, prof_marks *mk, const vk_batch *b);
void prof_marks_free(prof_marks *mk);
void prof_reset(prof *p);
void prof_free(prof *p);

#endif

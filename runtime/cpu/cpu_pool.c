/* The CPU path's thread pool: n_threads - 1 workers started once and woken per run (a short
 * spin, then a condition variable, so decode's hundreds of small runs a token cost no system
 * calls while idle workers still sleep). Tasks are claimed from a counter tagged with the
 * run's generation, and the caller waits for the tasks, not for the workers: a worker the OS
 * has descheduled (a shared machine) delays a run only if it holds a task. The pool also owns
 * the SIMD level and the scratch the ops need. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu/cpu_kern.h"
#include "base/util.h"

/* Spins of a waiting worker before it sleeps (~tens of microseconds). */
#define CPU_POOL_SPIN 20000
/* Task index of a finished run: no worker can claim from it any more. */
#define CPU_RUN_CLOSED 0xffffffffu

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ volatile("yield")
#else
#define cpu_relax() ((void)0)
#endif

typedef struct cpu_worker {
    cpu_pool *pool;
    uint32_t index;
    pthread_t thread;
} cpu_worker;

struct cpu_pool {
    uint32_t n_threads;
    cpu_simd simd;
    const cpu_kern *kern;
    int drop_last;

    /* The current run. Atomic because a late worker may read them while the caller already
     * writes the next run's; the tagged counter tells it they are not its run's. */
    _Atomic(cpu_task_fn) fn;
    _Atomic(void *) ctx;
    atomic_uint n_tasks;
    atomic_int quit;
    /* Each counter on a cache line of its own: every claim and every finished task writes one,
     * and sharing a line would make them bounce between the cores twice per task. */
    _Alignas(64) atomic_uint_fast64_t claim; /* generation << 32 | next task (CPU_RUN_CLOSED when done) */
    _Alignas(64) atomic_uint tasks_done;
    _Alignas(64) char pad_end;

    pthread_mutex_t lock;       /* guards sleeping and the condition */
    pthread_cond_t wake;
    uint32_t sleeping;
    cpu_worker *workers;        /* (n_threads - 1) */
    uint32_t n_started;

    void *shared;               /* (shared_cap) bytes, e.g. quantized activations */
    size_t shared_cap;
    void **per_thread;          /* (n_threads) blocks of per_thread_cap bytes */
    size_t per_thread_cap;
};

static uint32_t claim_gen(uint64_t c) { return (uint32_t)(c >> 32); }

/* Runs tasks of generation gen until none is left (or the run is another's). */
static void cpu_pool_do_tasks(cpu_pool *p, uint32_t gen, uint32_t thread) {
    cpu_task_fn fn = atomic_load(&p->fn);
    void *ctx = atomic_load(&p->ctx);
    uint32_t n = atomic_load(&p->n_tasks);
    uint64_t c = atomic_load(&p->claim);
    for (;;) {
        /* A claim that succeeds is of a run still open, so fn, ctx and n read after seeing
         * its generation are that run's: the caller rewrites them only after closing it. */
        if (claim_gen(c) != gen || (uint32_t)c >= n) return;
        if (!atomic_compare_exchange_weak(&p->claim, &c, c + 1)) continue;
        fn(ctx, (uint32_t)c, thread);
        atomic_fetch_add(&p->tasks_done, 1);
        c = atomic_load(&p->claim);
    }
}

static void *cpu_worker_main(void *arg) {
    cpu_worker *w = arg;
    cpu_pool *p = w->pool;
    uint32_t seen = claim_gen(atomic_load(&p->claim));
    for (;;) {
        uint32_t g = claim_gen(atomic_load(&p->claim));
        for (int i = 0; g == seen && i < CPU_POOL_SPIN && !atomic_load(&p->quit); i++) {
            cpu_relax();
            g = claim_gen(atomic_load(&p->claim));
        }
        if (g == seen) {
            pthread_mutex_lock(&p->lock);
            p->sleeping++;
            while ((g = claim_gen(atomic_load(&p->claim))) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->wake, &p->lock);
            p->sleeping--;
            pthread_mutex_unlock(&p->lock);
        }
        if (atomic_load(&p->quit)) break;
        seen = g;
        cpu_pool_do_tasks(p, g, w->index);
    }
    return NULL;
}

vkllm_status cpu_pool_create(uint32_t n_threads, cpu_pool **out) {
    *out = NULL;
    cpu_simd simd = cpu_simd_best();
    const char *env = getenv("VKLLM_CPU_SIMD");
    if (env && *env) {
        if (!cpu_simd_parse(env, &simd))
            return vkl_err(VKLLM_ERR_INVALID_ARG,
                           "VKLLM_CPU_SIMD=%s is not a SIMD level: use scalar, neon, avx2, "
                           "avx2_vnni, avx512 or avx512_vnni", env);
        if (!cpu_simd_supported(simd))
            return vkl_err(VKLLM_ERR_UNSUPPORTED,
                           "VKLLM_CPU_SIMD=%s: this CPU or build cannot run that level (best "
                           "here: %s)", env, cpu_simd_name(cpu_simd_best()));
    }
    if (n_threads == 0) n_threads = cpu_physical_cores();
    cpu_pool *p = NULL; /* aligned as its counters are */
    if (posix_memalign((void **)&p, 64, sizeof *p) == 0) memset(p, 0, sizeof *p);
    else p = NULL;
    void **per_thread = calloc(n_threads, sizeof *per_thread);
    cpu_worker *workers = calloc(n_threads, sizeof *workers);
    if (!p || !per_thread || !workers) {
        free(p), free(per_thread), free(workers);
        return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "cpu_pool_create: cannot allocate a pool of %u threads",
                       n_threads);
    }
    p->n_threads = n_threads;
    p->simd = simd;
    p->kern = cpu_kern_get(simd);
    p->per_thread = per_thread;
    p->workers = workers;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (uint32_t i = 1; i < n_threads; i++) {
        cpu_worker *w = &workers[i - 1];
        w->pool = p;
        w->index = i;
        int rc = pthread_create(&w->thread, NULL, cpu_worker_main, w);
        if (rc != 0) {
            cpu_pool_free(p);
            return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "cpu_pool_create: cannot start worker %u of %u: %s",
                           i, n_threads - 1, strerror(rc));
        }
        p->n_started++;
    }
    *out = p;
    return VKLLM_OK;
}

void cpu_pool_free(cpu_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (uint32_t i = 0; i < p->n_started; i++) pthread_join(p->workers[i].thread, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    for (uint32_t i = 0; i < p->n_threads; i++) free(p->per_thread[i]);
    free(p->per_thread);
    free(p->shared);
    free(p->workers);
    free(p);
}

uint32_t cpu_pool_threads(const cpu_pool *p) { return p->n_threads; }

void cpu_pool_run(cpu_pool *p, cpu_task_fn fn, void *ctx, uint32_t n_tasks) {
    if (n_tasks == 0) return;
    if (p->n_started == 0 || n_tasks == 1) { /* nothing to share: no wake-up, no wait */
        for (uint32_t t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    uint32_t gen = claim_gen(atomic_load(&p->claim)) + 1;
    atomic_store(&p->fn, fn);
    atomic_store(&p->ctx, ctx);
    atomic_store(&p->n_tasks, n_tasks);
    atomic_store(&p->tasks_done, 0);
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->claim, (uint64_t)gen << 32); /* opens the run */
    if (p->sleeping) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    cpu_pool_do_tasks(p, gen, 0);
    for (unsigned spins = 0; atomic_load(&p->tasks_done) < n_tasks; spins++) {
        if (spins < CPU_POOL_SPIN) cpu_relax();
        else sched_yield(); /* the thread holding the last task was descheduled */
    }
    atomic_store(&p->claim, (uint64_t)gen << 32 | CPU_RUN_CLOSED);
}

vkllm_status cpu_pool_set_simd(cpu_pool *p, cpu_simd level) {
    if (!cpu_simd_supported(level))
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "SIMD level %s cannot run here (best: %s)",
                       cpu_simd_name(level), cpu_simd_name(cpu_simd_best()));
    p->simd = level;
    p->kern = cpu_kern_get(level);
    return VKLLM_OK;
}

cpu_simd cpu_pool_simd(const cpu_pool *p) { return p->simd; }
void cpu_pool_set_drop_last(cpu_pool *p, int on) { p->drop_last = on; }
int cpu_pool_drop_last(const cpu_pool *p) { return p->drop_last; }
const cpu_kern *cpu_pool_kern(const cpu_pool *p) { return p->kern; }

/* 64-byte aligned blocks, so SIMD loads of scratch never split a cache line needlessly. */
static void *cpu_alloc(size_t bytes) {
    void *ptr = NULL;
    if (posix_memalign(&ptr, 64, bytes ? bytes : 64) != 0) return NULL;
    return ptr;
}

int cpu_pool_reserve(cpu_pool *p, size_t shared_bytes, size_t per_thread_bytes) {
    if (shared_bytes > p->shared_cap) {
        size_t cap = shared_bytes + shared_bytes / 4;
        void *s = cpu_alloc(cap);
        if (!s) return 0;
        free(p->shared);
        p->shared = s;
        p->shared_cap = cap;
    }
    if (per_thread_bytes > p->per_thread_cap) {
        size_t cap = per_thread_bytes + per_thread_bytes / 4;
        for (uint32_t i = 0; i < p->n_threads; i++) {
            void *s = cpu_alloc(cap);
            if (!s) return 0; /* the blocks replaced so far are larger: still consistent */
            free(p->per_thread[i]);
            p->per_thread[i] = s;
        }
        p->per_thread_cap = cap;
    }
    return 1;
}

void *cpu_pool_shared_scratch(cpu_pool *p) { return p->shared; }
void *cpu_pool_thread_scratch(cpu_pool *p, uint32_t thread) { return p->per_thread[thread]; }

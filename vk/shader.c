/* Run-time GLSL -> SPIR-V compilation with glslang's C interface, and the persistent SPIR-V
 * cache. A variant is the embedded source with a preamble of #defines; the cache key hashes
 * the expanded source, the defines, the glslang version and the target. Any unreadable,
 * truncated or foreign cache file is simply a miss. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glslang/Include/glslang_c_interface.h>
#include <glslang/Public/resource_limits_c.h>
#include <glslang/build_info.h>

#include "vk/internal.h"
#include "vk/shader_sources.h"
#include "base/util.h"
#include "vk/vk.h"

#define SPV_MAGIC 0x56535056u /* "VPSV" */
#define SPV_FORMAT 1u
#define MAX_INCLUDE_DEPTH 8

typedef struct spv_header {
    uint32_t magic, format;
    uint64_t key;
    uint64_t words;
    uint64_t checksum;
    double compile_ms; /* what this entry cost to make; a hit reports it as saved */
} spv_header;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static vk_shader_stats g_stats;
static char g_cache_dir[1024];
static int g_cache_enabled;

static int mkdir_p(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
    return 0;
}

/* vkllm_set_cache_dir's choice, taken by init_once; g_cache_chosen 0: the environment's. */
static char g_cache_choice[1024];
static int g_cache_chosen, g_cache_inited;

vkllm_status vk_set_cache_dir(const char *path) {
    if (path && strlen(path) >= sizeof g_cache_choice)
        return vkl_err(VKLLM_ERR_INVALID_ARG, "cache folder path of %zu bytes; at most %zu", strlen(path),
                       sizeof g_cache_choice - 1);
    pthread_mutex_lock(&g_lock);
    vkllm_status st = VKLLM_OK;
    if (g_cache_inited) {
        /* Fixed once in use; the same choice again is no change. */
        const char *now = g_cache_enabled ? g_cache_dir : "";
        if (path ? strcmp(path, now) != 0 : g_cache_chosen)
            st = vkl_err(VKLLM_ERR_INVALID_ARG, "the cache folder is already in use (%s): set it before the first "
                         "model load", g_cache_enabled ? g_cache_dir : "no cache");
    } else {
        g_cache_chosen = path != NULL;
        snprintf(g_cache_choice, sizeof g_cache_choice, "%s", path ? path : "");
    }
    pthread_mutex_unlock(&g_lock);
    return st;
}

static void init_once(void) {
    glslang_initialize_process();
    pthread_mutex_lock(&g_lock);
    g_cache_inited = 1;
    int chosen = g_cache_chosen;
    pthread_mutex_unlock(&g_lock);
    const char *env = chosen ? g_cache_choice : getenv("VKLLM_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (env) snprintf(g_cache_dir, sizeof g_cache_dir, "%s", env);
    else if (xdg && *xdg) snprintf(g_cache_dir, sizeof g_cache_dir, "%s/vkllm", xdg);
    else if (home && *home) snprintf(g_cache_dir, sizeof g_cache_dir, "%s/.cache/vkllm", home);
    g_cache_enabled = g_cache_dir[0] != 0;
    if (g_cache_enabled && mkdir_p(g_cache_dir) != 0) {
        vkl_log(VKLLM_LOG_WARN, "cannot create cache directory %s (%s); compiling without a cache",
                g_cache_dir, strerror(errno));
        g_cache_enabled = 0;
    } else if (g_cache_enabled && access(g_cache_dir, W_OK) != 0) {
        /* Still read: entries already there are hits. Nothing new is kept. */
        vkl_log(VKLLM_LOG_WARN, "cache directory %s is not writable (%s); new shaders and pipelines "
                "will not be cached", g_cache_dir, strerror(errno));
    }
}

const char *vk_cache_dir(void) {
    pthread_once(&g_once, init_once);
    return g_cache_enabled ? g_cache_dir : NULL;
}

void vk_shader_get_stats(vk_shader_stats *out) {
    pthread_mutex_lock(&g_lock);
    *out = g_stats;
    pthread_mutex_unlock(&g_lock);
}

/* Exposed to pipeline.c through vk_shader_note_pipeline_cache. */
void vk_shader_note_pipeline_cache(uint64_t bytes);
void vk_shader_note_pipeline_cache(uint64_t bytes) {
    pthread_mutex_lock(&g_lock);
    g_stats.pipeline_cache_loaded++;
    g_stats.pipeline_cache_bytes = bytes;
    pthread_mutex_unlock(&g_lock);
}

void vk_shader_note_pipeline(double create_ms, int cache_hit) {
    pthread_mutex_lock(&g_lock);
    g_stats.pipelines_created++;
    g_stats.pipeline_create_ms += create_ms;
    if (cache_hit > 0) g_stats.pipeline_cache_hits++;
    pthread_mutex_unlock(&g_lock);
}

static const vk_shader_source *find_source(const char *name) {
    for (unsigned i = 0; i < vk_shader_source_count; i++)
        if (!strcmp(vk_shader_sources[i].name, name)) return &vk_shader_sources[i];
    return NULL;
}

/* A growable string. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *s, const char *t, size_t n) {
    if (s->oom) return;
    if (s->n + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->n + n + 1) cap *= 2;
        char *p = realloc(s->p, cap);
        if (!p) {
            s->oom = 1;
            return;
        }
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->n, t, n);
    s->n += n;
    s->p[s->n] = 0;
}
static void sb_str(sbuf *s, const char *t) { sb_put(s, t, strlen(t)); }

/* Appends text with `#include "x.glsl"` lines replaced by the embedded file (glslang's C
 * interface in this version has no include callback). */
static vkllm_status expand(sbuf *s, const char *name, const char *text, size_t len, int depth) {
    if (depth > MAX_INCLUDE_DEPTH)
        return vkl_err(VKLLM_ERR_SHADER, "shader %s: includes nested deeper than %d", name, MAX_INCLUDE_DEPTH);
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl + 1 : end;
        const char *q = p;
        while (q < le && (*q == ' ' || *q == '\t')) q++;
        if ((size_t)(le - q) > 9 && !strncmp(q, "#include", 8)) {
            const char *a = memchr(q, '"', (size_t)(le - q));
            const char *b = a ? memchr(a + 1, '"', (size_t)(le - a - 1)) : NULL;
            if (!a || !b || b - a - 1 >= 128)
                return vkl_err(VKLLM_ERR_SHADER, "shader %s: malformed #include line", name);
            char inc[128];
            memcpy(inc, a + 1, (size_t)(b - a - 1));
            inc[b - a - 1] = 0;
            const vk_shader_source *src = find_source(inc);
            if (!src) return vkl_err(VKLLM_ERR_SHADER, "shader %s: included file %s is not embedded", name, inc);
            vkllm_status st = expand(s, inc, src->text, src->len, depth + 1);
            if (st) return st;
            sb_str(s, "\n");
        } else if ((size_t)(le - q) > 10 && !strncmp(q, "#extension GL_GOOGLE_include_directive", 38)) {
            sb_str(s, "\n");
        } else {
            sb_put(s, p, (size_t)(le - p));
        }
        p = le;
    }
    return VKLLM_OK;
}

/* Builds the full source: #version line, then one #define per "NAME=VALUE" item of defines,
 * then the rest of the file with includes expanded. */
static vkllm_status assemble(const char *name, const char *defines, sbuf *out) {
    const vk_shader_source *src = find_source(name);
    if (!src) return vkl_err(VKLLM_ERR_SHADER, "shader %s is not embedded in this build", name);
    const char *text = src->text;
    const char *nl = strchr(text, '\n');
    if (strncmp(text, "#version", 8) != 0 || !nl)
        return vkl_err(VKLLM_ERR_SHADER, "shader %s must start with a #version line", name);
    sb_put(out, text, (size_t)(nl - text + 1));
    if (defines && *defines) {
        const char *p = defines;
        while (*p) {
            const char *e = strchr(p, ';');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (n) {
                const char *eq = memchr(p, '=', n);
                sb_str(out, "#define ");
                if (eq) {
                    sb_put(out, p, (size_t)(eq - p));
                    sb_str(out, " ");
                    sb_put(out, eq + 1, n - (size_t)(eq - p) - 1);
                } else {
                    sb_put(out, p, n);
                }
                sb_str(out, "\n");
            }
            p += n + (e ? 1 : 0);
        }
    }
    sb_str(out, "#line 2\n");
    vkllm_status st = expand(out, name, nl + 1, src->len - (size_t)(nl + 1 - text), 0);
    if (!st && out->oom) st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
    return st;
}

static void cache_path(char *buf, size_t cap, uint64_t key) {
    snprintf(buf, cap, "%s/spirv-%016llx.bin", g_cache_dir, (unsigned long long)key);
}

int vk_spirv_cache_read(FILE *f, uint64_t key, vk_spirv *out, double *cost_ms) {
    spv_header h;
    int ok = fread(&h, sizeof h, 1, f) == 1 && h.magic == SPV_MAGIC && h.format == SPV_FORMAT &&
             h.key == key && h.words > 0 && h.words < (64u << 20);
    uint32_t *w = NULL;
    if (ok) {
        w = malloc(h.words * 4);
        ok = w && fread(w, 4, h.words, f) == h.words && fgetc(f) == EOF &&
             vkl_hash64(w, h.words * 4, VKL_HASH_SEED) == h.checksum && w[0] == 0x07230203u;
    }
    if (!ok) {
        free(w);
        return 0;
    }
    out->words = w;
    out->count = h.words;
    *cost_ms = h.compile_ms;
    return 1;
}

static int cache_load(uint64_t key, vk_spirv *out, double *cost_ms) {
    char path[1200];
    cache_path(path, sizeof path, key);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int ok = vk_spirv_cache_read(f, key, out, cost_ms);
    fclose(f);
    if (!ok) vkl_log(VKLLM_LOG_DEBUG, "SPIR-V cache file %s is unusable; recompiling", path);
    return ok;
}

static void cache_store(uint64_t key, const vk_spirv *spv, double cost_ms) {
    char path[1200], tmp[1300];
    cache_path(path, sizeof path, key);
    /* Unique per process and call: threads of one process may store at the same time. */
    static atomic_uint serial;
    snprintf(tmp, sizeof tmp, "%s.%ld.%u.tmp", path, (long)getpid(), atomic_fetch_add(&serial, 1));
    FILE *f = fopen(tmp, "wb");
    if (!f) return;
    spv_header h = {SPV_MAGIC, SPV_FORMAT, key, spv->count,
                    vkl_hash64(spv->words, spv->count * 4, VKL_HASH_SEED), cost_ms};
    int ok = fwrite(&h, sizeof h, 1, f) == 1 && fwrite(spv->words, 4, spv->count, f) == spv->count;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        vk_cache_write_failed(path, errno);
        remove(tmp);
    }
}

void vk_cache_write_failed(const char *path, int err) {
    /* Once per process: a full disk would otherwise say it for every shader. */
    static atomic_int told;
    if (atomic_exchange(&told, 1)) return;
    vkl_log(VKLLM_LOG_WARN, "cannot write cache file %s (%s); running on without storing shaders and "
            "pipelines there", path, strerror(err ? err : EIO));
}

static vkllm_status glslang_compile(const char *name, const char *defines, const char *code, vk_spirv *out) {
    glslang_input_t in = {
        .language = GLSLANG_SOURCE_GLSL,
        .stage = GLSLANG_STAGE_COMPUTE,
        .client = GLSLANG_CLIENT_VULKAN,
        .client_version = GLSLANG_TARGET_VULKAN_1_2,
        .target_language = GLSLANG_TARGET_SPV,
        .target_language_version = GLSLANG_TARGET_SPV_1_5,
        .code = code,
        .default_version = 450,
        .default_profile = GLSLANG_NO_PROFILE,
        .messages = GLSLANG_MSG_DEFAULT_BIT | GLSLANG_MSG_SPV_RULES_BIT | GLSLANG_MSG_VULKAN_RULES_BIT,
        .resource = glslang_default_resource(),
    };
    glslang_shader_t *sh = glslang_shader_create(&in);
    if (!sh) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "glslang_shader_create failed");
    vkllm_status st = VKLLM_OK;
    glslang_program_t *prog = NULL;
    if (!glslang_shader_preprocess(sh, &in) || !glslang_shader_parse(sh, &in)) {
        st = vkl_err(VKLLM_ERR_SHADER, "shader %s [defines: %s] failed to compile:\n%s", name,
                     defines && *defines ? defines : "none", glslang_shader_get_info_log(sh));
        goto done;
    }
    prog = glslang_program_create();
    glslang_program_add_shader(prog, sh);
    if (!glslang_program_link(prog, GLSLANG_MSG_SPV_RULES_BIT | GLSLANG_MSG_VULKAN_RULES_BIT)) {
        st = vkl_err(VKLLM_ERR_SHADER, "shader %s [defines: %s] failed to link:\n%s", name,
                     defines && *defines ? defines : "none", glslang_program_get_info_log(prog));
        goto done;
    }
    glslang_program_SPIRV_generate(prog, GLSLANG_STAGE_COMPUTE);
    out->count = glslang_program_SPIRV_get_size(prog);
    out->words = malloc(out->count * 4);
    if (!out->words) {
        st = vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory");
        goto done;
    }
    glslang_program_SPIRV_get(prog, out->words);
done:
    if (prog) glslang_program_delete(prog);
    glslang_shader_delete(sh);
    return st;
}

/* glslang is thread-safe once initialized, but its first compile fills process-wide tables
 * (the built-in symbol tables) that other glslang users have seen raced; that one compile runs
 * alone and later ones in parallel. */
static pthread_mutex_t g_first_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_glslang_warm;

static vkllm_status compile_any_thread(const char *name, const char *defines, const char *code, vk_spirv *out) {
    if (!atomic_load(&g_glslang_warm)) {
        pthread_mutex_lock(&g_first_lock);
        if (!atomic_load(&g_glslang_warm)) {
            vkllm_status st = glslang_compile(name, defines, code, out);
            atomic_store(&g_glslang_warm, 1);
            pthread_mutex_unlock(&g_first_lock);
            return st;
        }
        pthread_mutex_unlock(&g_first_lock);
    }
    return glslang_compile(name, defines, code, out);
}

vkllm_status vk_compile_shader_ex(const char *name, const char *defines, vk_spirv *out, vk_compile_info *info) {
    vk_compile_info local;
    if (!info) info = &local;
    info->cache_hit = 0;
    info->ms = 0;
    out->words = NULL;
    out->count = 0;
    pthread_once(&g_once, init_once);
    sbuf src = {0};
    vkllm_status st = assemble(name, defines, &src);
    if (st) {
        free(src.p);
        return st;
    }
    uint64_t key = vkl_hash64(src.p, src.n, VKL_HASH_SEED);
    const char *target = "vulkan1.2/spv1.5";
    key = vkl_hash64(target, strlen(target), key);
    const uint32_t ver[3] = {GLSLANG_VERSION_MAJOR, GLSLANG_VERSION_MINOR, GLSLANG_VERSION_PATCH};
    key = vkl_hash64(ver, sizeof ver, key);

    double cost = 0, t0 = vkl_now_ms();
    if (g_cache_enabled && cache_load(key, out, &cost)) {
        info->cache_hit = 1;
        info->ms = vkl_now_ms() - t0;
        pthread_mutex_lock(&g_lock);
        g_stats.spirv_hits++;
        g_stats.saved_ms += cost;
        pthread_mutex_unlock(&g_lock);
        vkl_log(VKLLM_LOG_DEBUG, "shader %s [%s]: SPIR-V cache hit (saved %.1f ms of compile)", name,
                defines ? defines : "", cost);
        free(src.p);
        return VKLLM_OK;
    }
    st = compile_any_thread(name, defines, src.p, out);
    double ms = vkl_now_ms() - t0;
    info->ms = ms;
    pthread_mutex_lock(&g_lock);
    g_stats.spirv_misses++;
    g_stats.compile_ms += ms;
    pthread_mutex_unlock(&g_lock);
    free(src.p);
    if (st) return st;
    vkl_log(VKLLM_LOG_DEBUG, "shader %s [%s]: compiled in %.1f ms (cache miss)", name,
            defines ? defines : "", ms);
    if (g_cache_enabled) cache_store(key, out, ms);
    return VKLLM_OK;
}

vkllm_status vk_compile_shader(const char *name, const char *defines, vk_spirv *out) {
    return vk_compile_shader_ex(name, defines, out, NULL);
}

/* Kernel tuning (runtime/kern/tune.c): every variant of the table, the set the tuner chooses from,
 * matches the CPU reference at awkward shapes (for every weight type with VKLLM_TEST_FULL=1;
 * the tuner itself also checks each variant on the device before it may choose it); a profile written for the
 * device makes kern_matvec_default / kern_matmul_default return its choices (and the products
 * stay right); VKLLM_TUNE=0, stale profiles (other driver, device, format) and corrupt ones
 * (truncated, garbage, mistyped, huge or impossible values) leave the built-in choices, with a
 * warning; lookups from several threads agree. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "gpu_harness.h"
#include "testkit/cpu_ref.h"
#include "runtime/kern/tune.h"
#include "runtime/format/wtype.h"
#include "base/util.h"

#define NMSE_MAX 1e-9 /* as test_kernels_matmul.c */
#define NMSE_IDOT 6e-5 /* integer dot products round x to 8 bits (test_kernels_matmul.c) */

static const uint32_t all_types[] = {WTYPE_F32, WTYPE_F16, WTYPE_BF16, WTYPE_Q8_0, WTYPE_Q4_0, WTYPE_Q4_1,
                                     WTYPE_Q5_0, WTYPE_Q5_1, WTYPE_Q4_K, WTYPE_Q5_K, WTYPE_Q6_K};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

static th_rng rng = {11};
static char g_dir[512];

/* ------------------------------------------------------------ warnings seen ---- */

static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_warnings;
static char g_last_warning[1024];

static void on_log(vkllm_log_level level, const char *msg, void *user) {
    (void)user;
    if (level != VKLLM_LOG_WARN) return;
    pthread_mutex_lock(&g_log_lock);
    g_warnings++;
    snprintf(g_last_warning, sizeof g_last_warning, "%s", msg);
    pthread_mutex_unlock(&g_log_lock);
}

/* ------------------------------------------------------------- every variant ---- */

/* y = W x (n_tok 0) or Y = X W^T through one variant; the NMSE against the CPU. mv / mm NULL:
 * kern_matvec / kern_matmul, i.e. the default (a profile's choice when there is one). */
static double product(th_gpu *g, uint32_t type, uint32_t rows, uint32_t cols, uint32_t n_tok,
                      const kern_matvec_cfg *mv, const kern_matmul_cfg *mm) {
    uint32_t nt = n_tok ? n_tok : 1;
    size_t nw = (size_t)rows * cols, nx = (size_t)nt * cols, ny = (size_t)nt * rows;
    uint64_t wbytes = wtype_row_bytes(type, cols) * rows;
    float *wf = malloc(nw * 4), *x = malloc(nx * 4), *ref = malloc(ny * 4), *got = malloc(ny * 4);
    void *w = malloc(wbytes);
    th_fill_uniform(&rng, wf, nw, -1, 1);
    th_fill_uniform(&rng, x, nx, -1, 1);
    wtype_get(type)->from_float(wf, w, nw);
    CHECK_OK(ref_matmul(ref, w, type, rows, cols, nt, x));
    vk_buf bw = th_buf_from(g, w, wbytes), bx = th_buf_from(g, x, nx * 4), by = th_buf_zero(g, ny * 4);
    uint64_t sbytes = kern_int_dot_scratch_bytes(cols, nt);
    vk_buf scratch = th_buf_zero(g, sbytes ? sbytes : 4);
    kern_ctx k = th_begin(g, NULL);
    k.scratch = &scratch;
    vkllm_status st;
    if (n_tok == 0) st = mv ? kern_matvec_ex(&k, mv, type, &bw, 0, &bx, 0, &by, 0, rows, cols)
                            : kern_matvec(&k, type, &bw, 0, &bx, 0, &by, 0, rows, cols);
    else st = mm ? kern_matmul_ex(&k, mm, type, &bw, 0, &bx, 0, &by, 0, rows, cols, n_tok)
                 : kern_matmul(&k, type, &bw, 0, &bx, 0, &by, 0, rows, cols, n_tok);
    CHECK_OK(st);
    th_run(&k);
    th_buf_to(g, &by, got, ny * 4);
    double e = st ? 1.0 : th_nmse(ref, got, ny);
    vk_buf_free(g->dev, &bw);
    vk_buf_free(g->dev, &bx);
    vk_buf_free(g->dev, &by);
    vk_buf_free(g->dev, &scratch);
    free(wf), free(x), free(ref), free(got), free(w);
    return e;
}

static uint32_t block_of(uint32_t type) {
    uint32_t b = wtype_get(type)->block;
    return b == 1 ? 32 : b;
}

/* Rows not a multiple of any tile or workgroup, an odd number of blocks per row (the by-row
 * kernel's 2-byte-aligned types fall back there) or an even one, a token count that leaves a
 * partial tile. On lavapipe each run costs about a second of shader compilation, so by default
 * each variant runs for one type, picked so that each kernel family (coalesced, tiled, by-row)
 * meets float, 32-element and K-quant types; VKLLM_TEST_FULL=1 runs every variant for every
 * type (about 5 minutes). */
static void test_every_variant(th_gpu *g, int full) {
    const vkllm_device_info *info = vk_device_props(g->dev);
    uint32_t n_mv = 0, n_mm = 0;
    for (uint32_t v = 0; v < tune_matvec_count; v++) {
        const kern_matvec_cfg *c = &tune_matvec_variants[v];
        for (uint32_t i = 0, ran = 0; i < N_TYPES && (full || !ran); i++) {
            uint32_t type = all_types[(v * 3 + 1 + i) % N_TYPES], b = block_of(type), blocks = v % 2 ? 3 : 2;
            if (!tune_matvec_usable(info, type, c)) continue;
            char label[48];
            double e = product(g, type, 67, blocks * b, 0, c, NULL);
            CHECK_MSG(e <= (c->int_dot ? NMSE_IDOT : NMSE_MAX), "matvec %s %s 67x%u: nmse %.3g",
                      wtype_get(type)->name, tune_matvec_label(c, label, sizeof label), blocks * b, e);
            ran = 1;
            n_mv++;
        }
    }
    for (uint32_t v = 0; v < tune_matmul_count; v++) {
        const kern_matmul_cfg *c = &tune_matmul_variants[v];
        for (uint32_t i = 0, ran = 0; i < N_TYPES && (full || !ran); i++) {
            uint32_t type = all_types[(v * 3 + 4 + i) % N_TYPES], b = block_of(type), blocks = v % 2 ? 3 : 2;
            if (!tune_matmul_usable(info, type, c)) continue;
            char label[48];
            double e = product(g, type, 67, blocks * b, 19, NULL, c);
            CHECK_MSG(e <= (c->int_dot ? NMSE_IDOT : NMSE_MAX), "matmul %s %s 67x%ux19: nmse %.3g",
                      wtype_get(type)->name, tune_matmul_label(c, label, sizeof label), blocks * b, e);
            ran = 1;
            n_mm++;
        }
    }
    /* lavapipe runs every variant of the table (integer dot products included). */
    uint32_t want_mv = 0, want_mm = 0;
    for (uint32_t v = 0; v < tune_matvec_count; v++) {
        uint32_t n = 0;
        for (size_t t = 0; t < N_TYPES; t++) n += tune_matvec_usable(info, all_types[t], &tune_matvec_variants[v]);
        want_mv += full ? n : n > 0;
        CHECK_MSG(n > 0 || (tune_matvec_variants[v].int_dot && !info->integer_dot_product), "matvec variant %u runs for no type", v);
    }
    for (uint32_t v = 0; v < tune_matmul_count; v++) {
        uint32_t n = 0;
        for (size_t t = 0; t < N_TYPES; t++) n += tune_matmul_usable(info, all_types[t], &tune_matmul_variants[v]);
        want_mm += full ? n : n > 0;
        CHECK_MSG(n > 0 || (tune_matmul_variants[v].int_dot && !info->integer_dot_product), "matmul variant %u runs for no type", v);
    }
    CHECK_MSG(n_mv == want_mv && n_mm == want_mm, "%u matvec and %u matmul variant runs, expected %u and %u", n_mv,
              n_mm, want_mv, want_mm);
    if (!info->integer_dot_product) printf("note: %s has no integer dot product; those variants did not run\n", info->name);
}

/* ------------------------------------------------------------------ profiles ---- */

static char g_path[1200];

static void write_text(const char *text, size_t len) {
    FILE *f = fopen(g_path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(text, 1, len, f) == len);
    fclose(f);
}

/* A non-default choice for q4_0's matvec and q6_K's matmul on this device. */
static tune_profile sample_profile(th_gpu *g) {
    kern_ctx k = {.dev = g->dev};
    tune_profile p = {0};
    kern_matvec_cfg d = tune_builtin_matvec(&k, WTYPE_Q4_0);
    for (uint32_t v = 0; v < tune_matvec_count; v++)
        if (!tune_matvec_equal(&tune_matvec_variants[v], &d) && !tune_matvec_variants[v].int_dot &&
            tune_matvec_usable(vk_device_props(g->dev), WTYPE_Q4_0, &tune_matvec_variants[v]))
            p.mv[WTYPE_Q4_0] = tune_matvec_variants[v];
    p.mv_types = 1u << WTYPE_Q4_0;
    kern_matmul_cfg dm = tune_builtin_matmul(&k, WTYPE_Q6_K);
    p.mm[WTYPE_Q6_K] = tune_matmul_variants[2]; /* 64x32x32 4x2 */
    CHECK(!tune_matmul_equal(&p.mm[WTYPE_Q6_K], &dm));
    p.mm_types = 1u << WTYPE_Q6_K;
    p.mv_alt[WTYPE_Q4_0] = p.mv[WTYPE_Q4_0];
    p.mm_alt[WTYPE_Q6_K] = p.mm[WTYPE_Q6_K];
    return p;
}

static int mv_is_builtin(th_gpu *g, uint32_t type) {
    kern_ctx k = {.dev = g->dev};
    kern_matvec_cfg a = kern_matvec_default(&k, type), b = tune_builtin_matvec(&k, type);
    return tune_matvec_equal(&a, &b);
}

static int mm_is_builtin(th_gpu *g, uint32_t type) {
    kern_ctx k = {.dev = g->dev};
    kern_matmul_cfg a = kern_matmul_default(&k, type), b = tune_builtin_matmul(&k, type);
    return tune_matmul_equal(&a, &b);
}

static void test_profile_used(th_gpu *g) {
    tune_profile p = sample_profile(g);
    char *text = tune_profile_json(&p, vk_device_props(g->dev), NULL);
    CHECK(text != NULL);
    if (!text) return;
    CHECK_OK(tune_profile_write_text(g_path, text));
    free(text);
    tune_forget();
    int w0 = g_warnings;
    kern_ctx k = {.dev = g->dev};
    kern_matvec_cfg mv = kern_matvec_default(&k, WTYPE_Q4_0);
    kern_matmul_cfg mm = kern_matmul_default(&k, WTYPE_Q6_K);
    CHECK_MSG(tune_matvec_equal(&mv, &p.mv[WTYPE_Q4_0]), "matvec q4_0: by_row %u wg %u rows %u, not the profile's",
              mv.by_row, mv.wg, mv.rows);
    CHECK(tune_matmul_equal(&mm, &p.mm[WTYPE_Q6_K]));
    /* Types and ops the profile does not name keep the built-in choice. */
    CHECK(mv_is_builtin(g, WTYPE_Q6_K) && mm_is_builtin(g, WTYPE_Q4_0) && mv_is_builtin(g, WTYPE_F16));
    CHECK_MSG(g_warnings == w0, "a valid profile was warned about: %s", g_last_warning);
    /* The default paths follow the profile and stay right. */
    double e = product(g, WTYPE_Q4_0, 129, 4 * 32, 0, NULL, NULL);
    CHECK_MSG(e <= NMSE_MAX, "kern_matvec q4_0 through the profile: nmse %.3g", e);
    e = product(g, WTYPE_Q6_K, 70, 2 * 256, 33, NULL, NULL);
    CHECK_MSG(e <= NMSE_MAX, "kern_matmul q6_K through the profile: nmse %.3g", e);

    /* An integer dot product choice counts only where the caller lends scratch memory; others
     * get the profile's best without. */
    tune_profile pi = p;
    pi.mv[WTYPE_Q4_0] = (kern_matvec_cfg){.int_dot = 1, .wg = 64, .rows = 2};
    pi.mv_alt[WTYPE_Q4_0] = p.mv[WTYPE_Q4_0];
    if (tune_matvec_usable(vk_device_props(g->dev), WTYPE_Q4_0, &pi.mv[WTYPE_Q4_0])) {
        text = tune_profile_json(&pi, vk_device_props(g->dev), NULL);
        CHECK_OK(tune_profile_write_text(g_path, text));
        free(text);
        tune_forget();
        vk_buf scratch = th_buf_zero(g, 256);
        kern_ctx ks = {.dev = g->dev, .scratch = &scratch};
        kern_matvec_cfg with = kern_matvec_default(&ks, WTYPE_Q4_0);
        CHECK(with.int_dot == 1 && with.wg == 64 && with.rows == 2);
        kern_matvec_cfg without = kern_matvec_default(&(kern_ctx){.dev = g->dev}, WTYPE_Q4_0);
        CHECK(tune_matvec_equal(&without, &p.mv[WTYPE_Q4_0]));
        /* An integer dot product choice without its alternative is refused. */
        text = tune_profile_json(&pi, vk_device_props(g->dev), NULL);
        char *alt = strstr(text, "\"without_int_dot\"");
        CHECK(alt != NULL);
        if (alt) memcpy(alt, "\"without_int_dox\"", 17);
        write_text(text, strlen(text));
        free(text);
        tune_forget();
        int w1 = g_warnings;
        CHECK(mv_is_builtin(g, WTYPE_Q4_0) && g_warnings == w1 + 1);
        CHECK_MSG(strstr(g_last_warning, "without_int_dot is not an object"), "%s", g_last_warning);
        vk_buf_free(g->dev, &scratch);
        text = tune_profile_json(&p, vk_device_props(g->dev), NULL);
        CHECK_OK(tune_profile_write_text(g_path, text));
        free(text);
        tune_forget();
    }

    /* VKLLM_TUNE=0: the file is there but not read. */
    setenv("VKLLM_TUNE", "0", 1);
    tune_forget();
    CHECK(mv_is_builtin(g, WTYPE_Q4_0) && mm_is_builtin(g, WTYPE_Q6_K));
    unsetenv("VKLLM_TUNE");
    tune_forget();
    CHECK(!mv_is_builtin(g, WTYPE_Q4_0));
}

/* Writes text as the device's profile; the lookups must fall back to the built-in choices with
 * one warning containing `why`. */
static void expect_ignored(th_gpu *g, const char *name, const char *text, size_t len, const char *why) {
    write_text(text, len);
    tune_forget();
    int w0 = g_warnings;
    int builtin = mv_is_builtin(g, WTYPE_Q4_0) && mm_is_builtin(g, WTYPE_Q6_K) && mv_is_builtin(g, WTYPE_Q8_0);
    CHECK_MSG(builtin, "%s: a profile choice was used", name);
    CHECK_MSG(g_warnings == w0 + 1, "%s: %d warnings, expected 1 (once per device, not per lookup)", name,
              g_warnings - w0);
    CHECK_MSG(strstr(g_last_warning, "ignoring the tuning profile") && strstr(g_last_warning, why),
              "%s: warning \"%s\" lacks \"%s\"", name, g_last_warning, why);
}

/* The valid sample profile with `edit` applied to its JSON tree, as text. */
static char *edited(th_gpu *g, void (*edit)(cJSON *root)) {
    tune_profile p = sample_profile(g);
    char *text = tune_profile_json(&p, vk_device_props(g->dev), NULL);
    cJSON *root = cJSON_Parse(text);
    free(text);
    edit(root);
    text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

static cJSON *dev_of(cJSON *r) { return cJSON_GetObjectItem(r, "device"); }
static cJSON *mv_q4(cJSON *r) { return cJSON_GetObjectItem(cJSON_GetObjectItem(r, "matvec"), "q4_0"); }
static void set_num(cJSON *o, const char *k, double v) { cJSON_ReplaceItemInObject(o, k, cJSON_CreateNumber(v)); }
static void ed_driver(cJSON *r) { set_num(dev_of(r), "driver_version", cJSON_GetObjectItem(dev_of(r), "driver_version")->valuedouble + 1); }
static void ed_driver_info(cJSON *r) { cJSON_ReplaceItemInObject(dev_of(r), "driver_info", cJSON_CreateString("Mesa 1.0")); }
static void ed_uuid(cJSON *r) { cJSON_ReplaceItemInObject(dev_of(r), "uuid", cJSON_CreateString("00112233445566778899aabbccddeeff")); }
static void ed_version(cJSON *r) { set_num(r, "version", TUNE_FORMAT_VERSION + 1); }
static void ed_wg_string(cJSON *r) { cJSON_ReplaceItemInObject(mv_q4(r), "wg", cJSON_CreateString("64")); }
static void ed_wg_huge(cJSON *r) { set_num(mv_q4(r), "wg", 1e300); }
static void ed_rows_2_32(cJSON *r) { set_num(mv_q4(r), "rows", 4294967296.0); }
static void ed_wg_neg(cJSON *r) { set_num(mv_q4(r), "wg", -64); }
static void ed_wg_frac(cJSON *r) { set_num(mv_q4(r), "wg", 64.5); }
static void ed_wg_npot(cJSON *r) { set_num(mv_q4(r), "wg", 48); }
static void ed_wg_big(cJSON *r) { set_num(mv_q4(r), "wg", 2048); }
static void ed_type(cJSON *r) { cJSON_AddItemToObject(cJSON_GetObjectItem(r, "matvec"), "q9_9", cJSON_Duplicate(mv_q4(r), 1)); }
static void ed_cfg_array(cJSON *r) { cJSON_ReplaceItemInObject(cJSON_GetObjectItem(r, "matvec"), "q4_0", cJSON_CreateArray()); }
static void ed_no_field(cJSON *r) { cJSON_DeleteItemFromObject(mv_q4(r), "rows"); }
static void ed_matmul_num(cJSON *r) { cJSON_ReplaceItemInObject(r, "matmul", cJSON_CreateNumber(3)); }
static void ed_format(cJSON *r) { cJSON_ReplaceItemInObject(r, "format", cJSON_CreateString("other")); }
static void ed_no_device(cJSON *r) { cJSON_DeleteItemFromObject(r, "device"); }
static void ed_mm_bk(cJSON *r) {
    cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "matmul"), "q6_K");
    set_num(c, "bk", 8); /* not a multiple of the K-quants' 16-value unit, and not in the table */
}

static void test_profile_ignored(th_gpu *g) {
    static const struct { const char *name; void (*edit)(cJSON *); const char *why; } cases[] = {
        {"other driver version", ed_driver, "stale"},
        {"other driver info", ed_driver_info, "stale"},
        {"other device", ed_uuid, "stale"},
        {"other format version", ed_version, "stale"},
        {"wg as a string", ed_wg_string, "integer fields"},
        {"wg 1e300", ed_wg_huge, "integer fields"},
        {"rows 2^32", ed_rows_2_32, "integer fields"},
        {"wg -64", ed_wg_neg, "integer fields"},
        {"wg 64.5", ed_wg_frac, "integer fields"},
        {"wg 48", ed_wg_npot, "not one this version knows"},
        {"wg 2048", ed_wg_big, "not one this version knows"},
        {"unknown type", ed_type, "unknown weight type \"q9_9\""},
        {"cfg an array", ed_cfg_array, "not an object"},
        {"a field missing", ed_no_field, "integer fields"},
        {"matmul a number", ed_matmul_num, "not an object"},
        {"other format", ed_format, "not a vkllm tuning profile"},
        {"no device", ed_no_device, "\"device\" needs"},
        {"bk 8 for q6_K", ed_mm_bk, "not one this version knows"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = edited(g, cases[i].edit);
        CHECK(text != NULL);
        if (text) expect_ignored(g, cases[i].name, text, strlen(text), cases[i].why);
        free(text);
    }
    /* Raw damage: truncated at several points, garbage, empty, not an object, NUL bytes. */
    tune_profile p = sample_profile(g);
    char *text = tune_profile_json(&p, vk_device_props(g->dev), NULL);
    size_t len = strlen(text);
    size_t cuts[] = {0, 1, len / 3, len / 2, len - 2};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "truncated at %zu", cuts[i]);
        expect_ignored(g, name, text, cuts[i], "not valid JSON");
    }
    free(text);
    char garbage[300];
    for (size_t i = 0; i < sizeof garbage; i++) garbage[i] = (char)(th_next(&rng) & 0xff);
    garbage[0] = '\x89';
    expect_ignored(g, "garbage", garbage, sizeof garbage, "not valid JSON");
    expect_ignored(g, "an array", "[1, 2, 3]", 9, "not a vkllm tuning profile");
    expect_ignored(g, "a string", "\"vkllm-tune\"", 12, "not a vkllm tuning profile");

    /* Limits: the same valid file read as by a device with 64 invocations per workgroup. */
    vkllm_device_info small = *vk_device_props(g->dev);
    small.max_workgroup_invocations = 64;
    p.mv[WTYPE_Q4_0] = p.mv_alt[WTYPE_Q4_0] = (kern_matvec_cfg){.wg = 128, .rows = 2};
    text = tune_profile_json(&p, &small, NULL);
    tune_profile out;
    CHECK(tune_profile_parse(text, strlen(text), &small, &out) == VKLLM_ERR_BAD_FILE);
    CHECK_MSG(strstr(vkllm_last_error(), "beyond this device's limits"), "limits: %s", vkllm_last_error());
    CHECK(out.mv_types == 0 && out.mm_types == 0);
    CHECK(tune_profile_parse(text, strlen(text), vk_device_props(g->dev), &out) == VKLLM_OK);
    CHECK(out.mv_types == 1u << WTYPE_Q4_0 && out.mv[WTYPE_Q4_0].wg == 128);
    free(text);

    /* A directory where the file should be: unreadable, a warning, no crash. */
    unlink(g_path);
    CHECK(mkdir(g_path, 0755) == 0);
    tune_forget();
    int w0 = g_warnings;
    CHECK(mv_is_builtin(g, WTYPE_Q4_0));
    CHECK(g_warnings == w0 + 1);
    rmdir(g_path);
    /* No file at all: the built-in choices, silently. */
    tune_forget();
    w0 = g_warnings;
    CHECK(mv_is_builtin(g, WTYPE_Q4_0) && g_warnings == w0);
}

/* ------------------------------------------------------------------ threads ---- */

typedef struct lookup_job {
    th_gpu *g;
    int wrong;
} lookup_job;

static void *lookup_thread(void *arg) {
    lookup_job *j = arg;
    kern_ctx k = {.dev = j->g->dev};
    for (int i = 0; i < 2000; i++) {
        kern_matvec_cfg c = kern_matvec_default(&k, WTYPE_Q4_0);
        if (c.wg != 64 || c.rows != 4 || c.by_row) j->wrong++;
        if (i % 500 == 0) sched_yield();
    }
    return NULL;
}

static void test_threads(th_gpu *g) {
    tune_profile p = {.mv_types = 1u << WTYPE_Q4_0};
    p.mv[WTYPE_Q4_0] = p.mv_alt[WTYPE_Q4_0] = (kern_matvec_cfg){.wg = 64, .rows = 4};
    char *text = tune_profile_json(&p, vk_device_props(g->dev), NULL);
    CHECK_OK(tune_profile_write_text(g_path, text));
    free(text);
    tune_forget();
    pthread_t th[4];
    lookup_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (lookup_job){g, 0};
        CHECK(pthread_create(&th[i], NULL, lookup_thread, &jobs[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_MSG(jobs[i].wrong == 0, "thread %d saw %d lookups without the profile's choice", i, jobs[i].wrong);
    }
    unlink(g_path);
    tune_forget();
}

int main(void) {
    /* Profiles go to a folder of this test's own, never the shared cache that other tests
     * running at the same time read. */
    char name[64];
    snprintf(name, sizeof name, "tune-%ld", (long)getpid());
    th_tmp_path(name, g_dir, sizeof g_dir);
    mkdir(g_dir, 0755);
    setenv("VKLLM_TUNE_DIR", g_dir, 1);
    unsetenv("VKLLM_TUNE");
    vkllm_set_log_callback(on_log, NULL);

    th_gpu g;
    if (th_gpu_open(&g, NULL) != 0) return th_finish();
    CHECK(tune_profile_path(g_dir, vk_device_props(g.dev), g_path, sizeof g_path));
    test_profile_used(&g);
    test_profile_ignored(&g);
    test_threads(&g);
    const char *full = getenv("VKLLM_TEST_FULL");
    test_every_variant(&g, full && !strcmp(full, "1"));
    th_gpu_close(&g);
    vkllm_set_log_callback(NULL, NULL);
    unlink(g_path);
    rmdir(g_dir);
    return th_finish();
}

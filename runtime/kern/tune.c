/* The variant table of the weight-reading kernels, the per-device profile file (JSON, one
 * chosen variant per op and weight type) and its thread-safe lookup. A profile is trusted only
 * for the device, driver and format it names and only for variants of this table that the
 * device can run; anything else is a warning and the built-in defaults. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "runtime/kern/tune.h"
#include "base/util.h"
#include "vk/vk.h"

/* ------------------------------------------------------------ variant table ---- */

/* matvec.comp (coalesced, for GPUs): more rows per workgroup reuse each x load more often,
 * more invocations hide more latency. Then the by-row kernels (matvec_rows.comp,
 * matvec_rows_k.comp for the K-quants: whole rows per invocation, for CPU devices) at a few
 * workgroup sizes and rows per invocation. Last, the integer dot product kernel
 * (matvec_idot.comp on x rounded to 8 bits, quantized types on devices with
 * shaderIntegerDotProduct only), with shared and with owned rows. */
const kern_matvec_cfg tune_matvec_variants[] = {
    {.wg = 32, .rows = 1},  {.wg = 64, .rows = 1},  {.wg = 64, .rows = 2},  {.wg = 64, .rows = 4},
    {.wg = 128, .rows = 2}, {.wg = 128, .rows = 4}, {.wg = 256, .rows = 4}, {.wg = 256, .rows = 8},
    {.by_row = 1, .wg = 8, .rows = 4}, {.by_row = 1, .wg = 8, .rows = 8}, {.by_row = 1, .wg = 8, .rows = 16},
    {.by_row = 1, .wg = 32, .rows = 16}, {.by_row = 1, .wg = 8, .rows = 32},
    {.int_dot = 1, .wg = 64, .rows = 2}, {.int_dot = 1, .by_row = 1, .wg = 8, .rows = 4},
    {.int_dot = 1, .by_row = 1, .wg = 32, .rows = 8},
};
const uint32_t tune_matvec_count = sizeof tune_matvec_variants / sizeof tune_matvec_variants[0];

/* matmul.comp tiles: the GPU default, smaller and larger register tiles, shallower K steps
 * (the CPU default is 64x64x16). Then the by-row kernels with 4..16 tokens per invocation.
 * Last, the integer dot product kernel (see above) with rows x tokens tiles of at most 64. */
const kern_matmul_cfg tune_matmul_variants[] = {
    {.bm = 64, .bn = 64, .bk = 32, .tm = 4, .tn = 4},
    {.bm = 32, .bn = 32, .bk = 32, .tm = 4, .tn = 4},
    {.bm = 64, .bn = 32, .bk = 32, .tm = 4, .tn = 2},
    {.bm = 128, .bn = 64, .bk = 32, .tm = 8, .tn = 4},
    {.bm = 64, .bn = 64, .bk = 16, .tm = 4, .tn = 4},
    {.bm = 128, .bn = 128, .bk = 16, .tm = 8, .tn = 8},
    {.by_row = 1, .bm = 64, .tm = 8, .tn = 8},
    {.by_row = 1, .bm = 128, .tm = 16, .tn = 8},
    {.by_row = 1, .bm = 64, .tm = 4, .tn = 16},
    {.by_row = 1, .bm = 128, .tm = 16, .tn = 16},
    {.int_dot = 1, .bm = 32, .tm = 2, .tn = 4},
    {.int_dot = 1, .by_row = 1, .bm = 32, .tm = 2, .tn = 8},
    {.int_dot = 1, .by_row = 1, .bm = 64, .tm = 4, .tn = 16},
};
const uint32_t tune_matmul_count = sizeof tune_matmul_variants / sizeof tune_matmul_variants[0];

const char *tune_matvec_label(const kern_matvec_cfg *c, char *buf, size_t cap) {
    const char *idot = c->int_dot ? "idot " : "";
    if (c->by_row) snprintf(buf, cap, "%sby-row wg%u rl%u", idot, c->wg, c->rows);
    else snprintf(buf, cap, "%swg%u rows%u", idot, c->wg, c->rows);
    return buf;
}

const char *tune_matmul_label(const kern_matmul_cfg *c, char *buf, size_t cap) {
    if (c->int_dot && c->by_row) snprintf(buf, cap, "idot by-row %u rl%u nt%u", c->bm, c->tm, c->tn);
    else if (c->int_dot) snprintf(buf, cap, "idot wg%u %ux%u", c->bm, c->tm, c->tn);
    else if (c->by_row) snprintf(buf, cap, "by-row %u rl%u nt%u", c->bm, c->tm, c->tn);
    else snprintf(buf, cap, "%ux%ux%u %ux%u", c->bm, c->bn, c->bk, c->tm, c->tn);
    return buf;
}

int tune_matvec_equal(const kern_matvec_cfg *a, const kern_matvec_cfg *b) {
    return a->by_row == b->by_row && a->wg == b->wg && a->rows == b->rows && a->int_dot == b->int_dot;
}

int tune_matmul_equal(const kern_matmul_cfg *a, const kern_matmul_cfg *b) {
    if (a->by_row != b->by_row || a->int_dot != b->int_dot || a->bm != b->bm || a->tm != b->tm || a->tn != b->tn)
        return 0;
    return a->by_row || a->int_dot || (a->bn == b->bn && a->bk == b->bk); /* ignored by those kernels */
}

/* The types the GPU kernels decode, and the values per decode unit of each (a tiled K step
 * must be a multiple). */
static uint32_t unit_values(uint32_t type) {
    switch (type) {
    case WTYPE_F32: case WTYPE_F16: case WTYPE_BF16: return 4;
    case WTYPE_Q4_0: case WTYPE_Q4_1: case WTYPE_Q5_0: case WTYPE_Q5_1: case WTYPE_Q8_0: return 8;
    case WTYPE_Q4_K: case WTYPE_Q5_K: case WTYPE_Q6_K: return 16;
    default: return 0;
    }
}

int tune_type_known(uint32_t type) { return unit_values(type) != 0; }

static int pow2(uint32_t v) { return v && !(v & (v - 1)); }

static int wg_fits(const vkllm_device_info *info, uint64_t wg) {
    return wg && wg <= info->max_workgroup_invocations && wg <= info->max_workgroup_size[0];
}

/* matvec_idot.comp: the type and device support it, a tile of at most 64 rows x tokens, and
 * with shared rows at most 64 subgroups a workgroup (kern_matmul.c checks the same). */
static int idot_usable(const vkllm_device_info *info, uint32_t type, uint32_t by_row, uint32_t wg, uint32_t rl,
                       uint32_t nt) {
    uint32_t sg = info->subgroup_min_size ? info->subgroup_min_size : 1;
    return kern_int_dot_supported(info, type) && (uint64_t)rl * nt <= 64 && (by_row || (wg + sg - 1) / sg <= 64);
}

int tune_matvec_usable(const vkllm_device_info *info, uint32_t type, const kern_matvec_cfg *c) {
    if (c->int_dot > 1 || (c->int_dot && !idot_usable(info, type, c->by_row, c->wg, c->rows, 1))) return 0;
    return unit_values(type) && pow2(c->wg) && wg_fits(info, c->wg) && c->rows >= 1 && c->rows <= 64;
}

int tune_matmul_usable(const vkllm_device_info *info, uint32_t type, const kern_matmul_cfg *c) {
    uint32_t unit = unit_values(type);
    if (!unit || !c->tm || !c->tn || c->tm > 64 || c->tn > 64 || !c->bm || c->bm % c->tm || c->int_dot > 1) return 0;
    if (c->int_dot) {
        uint32_t wg = c->by_row ? c->bm / c->tm : c->bm;
        return idot_usable(info, type, c->by_row, wg, c->tm, c->tn) && pow2(wg) && wg_fits(info, wg);
    }
    if (c->by_row) return pow2(c->bm / c->tm) && wg_fits(info, c->bm / c->tm);
    if (!c->bn || c->bn % c->tn || !c->bk || c->bk % unit || c->bm > 1024 || c->bn > 1024 || c->bk > 1024)
        return 0;
    uint64_t wg = (uint64_t)(c->bm / c->tm) * (c->bn / c->tn);
    uint64_t shared = (uint64_t)c->bk * (c->bm + 1 + c->bn + 1) * 4 + 128 * 4; /* as kern_matmul.c counts */
    return pow2((uint32_t)wg) && wg_fits(info, wg) && shared <= info->max_shared_memory;
}

/* ------------------------------------------------------------------ profiles ---- */

static void uuid_hex(const uint8_t uuid[16], char out[33]) {
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", uuid[i]);
}

int tune_profile_path(const char *dir, const vkllm_device_info *info, char *buf, size_t cap) {
    char uuid[33];
    uuid_hex(info->device_uuid, uuid);
    int n = snprintf(buf, cap, "%s/tune-%04x-%04x-%s.json", dir, info->vendor_id, info->device_id, uuid);
    return n > 0 && (size_t)n < cap;
}

/* The weight type called `name` (wtype's names, any case), or WTYPE_COUNT. */
static uint32_t type_by_name(const char *name) {
    for (uint32_t t = 0; t < WTYPE_COUNT; t++) {
        const wtype_traits *w = wtype_get(t);
        if (w && w->name && unit_values(t) && !strcasecmp(name, w->name)) return t;
    }
    return WTYPE_COUNT;
}

/* An integer field of obj in [lo, hi]; 0 when absent, not a number, fractional or out of range. */
static int get_u32(const cJSON *obj, const char *key, uint32_t lo, uint32_t hi, uint32_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= lo && d <= hi) || d != (double)(uint32_t)d) return 0;
    *out = (uint32_t)d;
    return 1;
}

/* An optional 0/1 field: absent is 0. */
static int get_flag(const cJSON *obj, const char *key, uint32_t *out) {
    *out = 0;
    return !cJSON_GetObjectItemCaseSensitive(obj, key) || get_u32(obj, key, 0, 1, out);
}

static const char *get_str(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

#define CFG_MAX 4096u /* no field of a variant comes near this */

/* One variant object of the file (`where` names it in messages): known to the table and
 * runnable on the device for type t. */
static vkllm_status parse_mv(const cJSON *e, const char *where, uint32_t t, const vkllm_device_info *info,
                             kern_matvec_cfg *c) {
    char label[64];
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(e)) return vkl_err(VKLLM_ERR_BAD_FILE, "%s is not an object", where);
    if (!get_u32(e, "by_row", 0, 1, &c->by_row) || !get_u32(e, "wg", 1, CFG_MAX, &c->wg) ||
        !get_u32(e, "rows", 1, CFG_MAX, &c->rows) || !get_flag(e, "int_dot", &c->int_dot))
        return vkl_err(VKLLM_ERR_BAD_FILE, "%s needs integer fields by_row (0 or 1), wg and rows (int_dot 0 or 1 "
                       "if present)", where);
    int known = 0;
    for (uint32_t i = 0; i < tune_matvec_count; i++) known |= tune_matvec_equal(c, &tune_matvec_variants[i]);
    if (!known || !tune_matvec_usable(info, t, c))
        return vkl_err(VKLLM_ERR_BAD_FILE, "%s: variant %s is %s", where, tune_matvec_label(c, label, sizeof label),
                       known ? "beyond this device's limits" : "not one this version knows");
    return VKLLM_OK;
}

static vkllm_status parse_mm(const cJSON *e, const char *where, uint32_t t, const vkllm_device_info *info,
                             kern_matmul_cfg *c) {
    char label[64];
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(e)) return vkl_err(VKLLM_ERR_BAD_FILE, "%s is not an object", where);
    if (!get_u32(e, "by_row", 0, 1, &c->by_row) || !get_u32(e, "bm", 1, CFG_MAX, &c->bm) ||
        !get_u32(e, "bn", 0, CFG_MAX, &c->bn) || !get_u32(e, "bk", 0, CFG_MAX, &c->bk) ||
        !get_u32(e, "tm", 1, CFG_MAX, &c->tm) || !get_u32(e, "tn", 1, CFG_MAX, &c->tn) ||
        !get_flag(e, "int_dot", &c->int_dot))
        return vkl_err(VKLLM_ERR_BAD_FILE, "%s needs integer fields by_row (0 or 1), bm, bn, bk, tm and tn (int_dot "
                       "0 or 1 if present)", where);
    int known = 0;
    for (uint32_t i = 0; i < tune_matmul_count; i++) known |= tune_matmul_equal(c, &tune_matmul_variants[i]);
    if (!known || !tune_matmul_usable(info, t, c))
        return vkl_err(VKLLM_ERR_BAD_FILE, "%s: variant %s is %s", where, tune_matmul_label(c, label, sizeof label),
                       known ? "beyond this device's limits" : "not one this version knows");
    return VKLLM_OK;
}

/* "matvec" / "matmul": type name -> variant; an integer dot product choice carries in
 * "without_int_dot" the best variant for callers that lend no scratch memory. */
static vkllm_status parse_choices(const cJSON *root, tune_op op, const vkllm_device_info *info, tune_profile *p) {
    const char *opname = op == TUNE_MATVEC ? "matvec" : "matmul";
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(root, opname);
    if (!set) return VKLLM_OK; /* no choices for this op */
    if (!cJSON_IsObject(set)) return vkl_err(VKLLM_ERR_BAD_FILE, "\"%s\" is not an object", opname);
    const cJSON *e;
    cJSON_ArrayForEach(e, set) {
        uint32_t t = e->string ? type_by_name(e->string) : WTYPE_COUNT;
        if (t == WTYPE_COUNT)
            return vkl_err(VKLLM_ERR_BAD_FILE, "%s choice for unknown weight type \"%.32s\"", opname,
                           e->string ? e->string : "");
        char where[96];
        snprintf(where, sizeof where, "%s.%s", opname, e->string);
        const cJSON *alt = cJSON_GetObjectItemCaseSensitive(e, "without_int_dot");
        vkllm_status st;
        uint32_t idot;
        if (op == TUNE_MATVEC) {
            if ((st = parse_mv(e, where, t, info, &p->mv[t]))) return st;
            idot = p->mv[t].int_dot;
            p->mv_alt[t] = p->mv[t];
            strncat(where, ".without_int_dot", sizeof where - strlen(where) - 1);
            if (idot && (st = parse_mv(alt, where, t, info, &p->mv_alt[t]))) return st;
            if (p->mv_alt[t].int_dot) return vkl_err(VKLLM_ERR_BAD_FILE, "%s has int_dot set", where);
            p->mv_types |= 1u << t;
        } else {
            if ((st = parse_mm(e, where, t, info, &p->mm[t]))) return st;
            idot = p->mm[t].int_dot;
            p->mm_alt[t] = p->mm[t];
            strncat(where, ".without_int_dot", sizeof where - strlen(where) - 1);
            if (idot && (st = parse_mm(alt, where, t, info, &p->mm_alt[t]))) return st;
            if (p->mm_alt[t].int_dot) return vkl_err(VKLLM_ERR_BAD_FILE, "%s has int_dot set", where);
            p->mm_types |= 1u << t;
        }
    }
    return VKLLM_OK;
}

/* The file's device and driver against this device: VKLLM_ERR_UNSUPPORTED when another. */
static vkllm_status check_identity(const cJSON *root, const vkllm_device_info *info) {
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(root, "device");
    uint32_t vendor, device, driver;
    const char *uuid = get_str(dev, "uuid"), *drv_info = get_str(dev, "driver_info");
    if (!cJSON_IsObject(dev) || !uuid || !drv_info || !get_u32(dev, "vendor_id", 0, UINT32_MAX, &vendor) ||
        !get_u32(dev, "device_id", 0, UINT32_MAX, &device) ||
        !get_u32(dev, "driver_version", 0, UINT32_MAX, &driver))
        return vkl_err(VKLLM_ERR_BAD_FILE, "\"device\" needs uuid, vendor_id, device_id, driver_version and "
                       "driver_info");
    char want[33];
    uuid_hex(info->device_uuid, want);
    if (strcmp(uuid, want) || vendor != info->vendor_id || device != info->device_id)
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "it was made for device %04x:%04x uuid %.32s, not this one "
                       "(%04x:%04x uuid %s)", vendor, device, uuid, info->vendor_id, info->device_id, want);
    if (driver != info->driver_version || strcmp(drv_info, info->driver_info))
        return vkl_err(VKLLM_ERR_UNSUPPORTED, "it was made with driver version %u (%.64s); this device has %u "
                       "(%.64s): run the tuner again", driver, drv_info, info->driver_version, info->driver_info);
    return VKLLM_OK;
}

vkllm_status tune_profile_parse(const char *text, size_t len, const vkllm_device_info *info, tune_profile *out) {
    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) return vkl_err(VKLLM_ERR_BAD_FILE, "not valid JSON");
    vkllm_status st = VKLLM_OK;
    const char *format = get_str(root, "format");
    uint32_t version;
    if (!cJSON_IsObject(root) || !format || strcmp(format, "vkllm-tune"))
        st = vkl_err(VKLLM_ERR_BAD_FILE, "not a vkllm tuning profile (no \"format\": \"vkllm-tune\")");
    else if (!get_u32(root, "version", 0, UINT32_MAX, &version))
        st = vkl_err(VKLLM_ERR_BAD_FILE, "no integer \"version\"");
    else if (version != TUNE_FORMAT_VERSION)
        st = vkl_err(VKLLM_ERR_UNSUPPORTED, "its format version is %u, this version reads %u: run the tuner "
                     "again", version, TUNE_FORMAT_VERSION);
    else if (!(st = check_identity(root, info)) && !(st = parse_choices(root, TUNE_MATVEC, info, out)))
        st = parse_choices(root, TUNE_MATMUL, info, out);
    cJSON_Delete(root);
    if (st) memset(out, 0, sizeof *out);
    return st;
}

vkllm_status tune_profile_load(const char *path, const vkllm_device_info *info, tune_profile *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return vkl_err(VKLLM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    char *buf = malloc(TUNE_MAX_FILE_BYTES + 1);
    size_t n = buf ? fread(buf, 1, TUNE_MAX_FILE_BYTES + 1, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (!buf) return vkl_err(VKLLM_ERR_OUT_OF_MEMORY, "out of host memory reading %s", path);
    vkllm_status st;
    if (err) st = vkl_err(VKLLM_ERR_IO, "cannot read %s", path);
    else if (n > TUNE_MAX_FILE_BYTES) st = vkl_err(VKLLM_ERR_BAD_FILE, "%s is larger than %u bytes", path, TUNE_MAX_FILE_BYTES);
    else if ((st = tune_profile_parse(buf, n, info, out))) vkl_err_context("%s", path);
    free(buf);
    return st;
}

static void add_mv(cJSON *c, const kern_matvec_cfg *v) {
    cJSON_AddNumberToObject(c, "by_row", v->by_row);
    cJSON_AddNumberToObject(c, "wg", v->wg);
    cJSON_AddNumberToObject(c, "rows", v->rows);
    cJSON_AddNumberToObject(c, "int_dot", v->int_dot);
}

static void add_mm(cJSON *c, const kern_matmul_cfg *v) {
    cJSON_AddNumberToObject(c, "by_row", v->by_row);
    cJSON_AddNumberToObject(c, "bm", v->bm);
    cJSON_AddNumberToObject(c, "bn", v->bn);
    cJSON_AddNumberToObject(c, "bk", v->bk);
    cJSON_AddNumberToObject(c, "tm", v->tm);
    cJSON_AddNumberToObject(c, "tn", v->tn);
    cJSON_AddNumberToObject(c, "int_dot", v->int_dot);
}

char *tune_profile_json(const tune_profile *p, const vkllm_device_info *info, const cJSON *results) {
    char uuid[33];
    uuid_hex(info->device_uuid, uuid);
    cJSON *root = cJSON_CreateObject(), *dev = cJSON_CreateObject();
    cJSON *mv = cJSON_CreateObject(), *mm = cJSON_CreateObject();
    char *text = NULL;
    if (!root || !dev || !mv || !mm) goto done;
    cJSON_AddStringToObject(root, "format", "vkllm-tune");
    cJSON_AddNumberToObject(root, "version", TUNE_FORMAT_VERSION);
    cJSON_AddItemToObject(root, "device", dev);
    cJSON_AddStringToObject(dev, "name", info->name);
    cJSON_AddNumberToObject(dev, "vendor_id", info->vendor_id);
    cJSON_AddNumberToObject(dev, "device_id", info->device_id);
    cJSON_AddStringToObject(dev, "uuid", uuid);
    cJSON_AddStringToObject(dev, "driver_name", info->driver_name);
    cJSON_AddNumberToObject(dev, "driver_version", info->driver_version);
    cJSON_AddStringToObject(dev, "driver_info", info->driver_info);
    dev = NULL;
    for (uint32_t t = 0; t < WTYPE_COUNT; t++) {
        if (p->mv_types >> t & 1) {
            cJSON *c = cJSON_AddObjectToObject(mv, wtype_get(t)->name);
            add_mv(c, &p->mv[t]);
            if (p->mv[t].int_dot) add_mv(cJSON_AddObjectToObject(c, "without_int_dot"), &p->mv_alt[t]);
        }
        if (p->mm_types >> t & 1) {
            cJSON *c = cJSON_AddObjectToObject(mm, wtype_get(t)->name);
            add_mm(c, &p->mm[t]);
            if (p->mm[t].int_dot) add_mm(cJSON_AddObjectToObject(c, "without_int_dot"), &p->mm_alt[t]);
        }
    }
    cJSON_AddItemToObject(root, "matvec", mv);
    cJSON_AddItemToObject(root, "matmul", mm);
    mv = mm = NULL;
    if (results) cJSON_AddItemToObject(root, "results", cJSON_Duplicate(results, 1));
    text = cJSON_Print(root);
done:
    cJSON_Delete(root);
    cJSON_Delete(dev);
    cJSON_Delete(mv);
    cJSON_Delete(mm);
    return text;
}

vkllm_status tune_profile_write_text(const char *path, const char *text) {
    char tmp[1100];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) return vkl_err(VKLLM_ERR_INVALID_ARG, "profile path %s is too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return vkl_err(VKLLM_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    size_t len = strlen(text);
    int bad = fwrite(text, 1, len, f) != len || fputc('\n', f) == EOF;
    if (fclose(f) != 0) bad = 1;
    if (bad || rename(tmp, path) != 0) {
        vkllm_status st = vkl_err(VKLLM_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
        return st;
    }
    return VKLLM_OK;
}

/* ---------------------------------------------------------------- the lookup ---- */

const char *tune_dir(char *buf, size_t cap) {
    const char *env = getenv("VKLLM_TUNE_DIR"), *dir = env && *env ? env : vk_cache_dir();
    if (!dir || (size_t)snprintf(buf, cap, "%s", dir) >= cap) return NULL;
    return buf;
}

/* One device identity's profile, read on its first lookup. Keyed by identity, not by the
 * vk_device pointer: every opening of the device shares it, and a closed opening leaves
 * nothing behind to free or to be found by a later opening at the same address. */
typedef struct tune_slot {
    int used;
    int have;  /* 0: no profile (none, disabled, stale or corrupt) */
    uint8_t uuid[16];
    uint32_t vendor_id, device_id, driver_version;
    tune_profile prof;
} tune_slot;

#define TUNE_SLOTS 16
static pthread_mutex_t g_tune_lock = PTHREAD_MUTEX_INITIALIZER;
static tune_slot g_slots[TUNE_SLOTS];
static _Thread_local int g_bypass; /* tune_builtin_*: act as if no profile existed */

static void read_slot(tune_slot *s, const vkllm_device_info *info) {
    const char *env = getenv("VKLLM_TUNE");
    if (env && !strcmp(env, "0")) return;
    char dir[1024], path[1200];
    if (!tune_dir(dir, sizeof dir) || !tune_profile_path(dir, info, path, sizeof path)) return;
    if (access(path, F_OK) != 0) {
        vkl_log(VKLLM_LOG_DEBUG, "%s: no tuning profile at %s; using the built-in kernel choices", info->name, path);
        return;
    }
    char saved[512];
    vkl_err_save(saved, sizeof saved); /* a refused profile is a warning, not this thread's error */
    vkllm_status st = tune_profile_load(path, info, &s->prof);
    if (st) {
        vkl_log(VKLLM_LOG_WARN, "%s: ignoring the tuning profile (%s) and using the built-in kernel choices: %s",
                info->name, st == VKLLM_ERR_UNSUPPORTED ? "stale" : "unreadable", vkl_last_error());
    } else {
        s->have = 1;
        vkl_log(VKLLM_LOG_INFO, "%s: kernel choices from the tuning profile %s", info->name, path);
    }
    vkl_err_restore(saved);
}

/* The slot of dev's device, read now if it is new; NULL when the table is full. Locked. */
static const tune_slot *slot_of(const vk_device *dev) {
    const vkllm_device_info *info = vk_device_props(dev);
    tune_slot *free_slot = NULL;
    for (int i = 0; i < TUNE_SLOTS; i++) {
        tune_slot *s = &g_slots[i];
        if (!s->used) {
            if (!free_slot) free_slot = s;
            continue;
        }
        if (!memcmp(s->uuid, info->device_uuid, 16) && s->vendor_id == info->vendor_id &&
            s->device_id == info->device_id && s->driver_version == info->driver_version)
            return s;
    }
    if (!free_slot) return NULL;
    memset(free_slot, 0, sizeof *free_slot);
    free_slot->used = 1;
    memcpy(free_slot->uuid, info->device_uuid, 16);
    free_slot->vendor_id = info->vendor_id;
    free_slot->device_id = info->device_id;
    free_slot->driver_version = info->driver_version;
    read_slot(free_slot, info);
    return free_slot;
}

/* An integer dot product choice needs scratch memory for the 8-bit activations; a caller
 * that lends none gets the profile's best variant without them. */
int tune_lookup_matvec(const kern_ctx *k, uint32_t type, kern_matvec_cfg *out) {
    if (g_bypass || !k || !k->dev || type >= WTYPE_COUNT) return 0;
    pthread_mutex_lock(&g_tune_lock);
    const tune_slot *s = slot_of(k->dev);
    int have = s && s->have && (s->prof.mv_types >> type & 1);
    if (have) *out = k->scratch && k->scratch->block ? s->prof.mv[type] : s->prof.mv_alt[type];
    pthread_mutex_unlock(&g_tune_lock);
    return have;
}

int tune_lookup_matmul(const kern_ctx *k, uint32_t type, kern_matmul_cfg *out) {
    if (g_bypass || !k || !k->dev || type >= WTYPE_COUNT) return 0;
    pthread_mutex_lock(&g_tune_lock);
    const tune_slot *s = slot_of(k->dev);
    int have = s && s->have && (s->prof.mm_types >> type & 1);
    if (have) *out = k->scratch && k->scratch->block ? s->prof.mm[type] : s->prof.mm_alt[type];
    pthread_mutex_unlock(&g_tune_lock);
    return have;
}

void tune_forget(void) {
    pthread_mutex_lock(&g_tune_lock);
    memset(g_slots, 0, sizeof g_slots);
    pthread_mutex_unlock(&g_tune_lock);
}

kern_matvec_cfg tune_builtin_matvec(const kern_ctx *k, uint32_t type) {
    g_bypass = 1;
    kern_matvec_cfg c = kern_matvec_default(k, type);
    g_bypass = 0;
    return c;
}

kern_matmul_cfg tune_builtin_matmul(const kern_ctx *k, uint32_t type) {
    g_bypass = 1;
    kern_matmul_cfg c = kern_matmul_default(k, type);
    g_bypass = 0;
    return c;
}

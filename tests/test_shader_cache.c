/* The persistent caches: a second run of the same kernels compiles nothing (SPIR-V hits and
 * an accepted pipeline-cache blob), and corrupted, truncated or foreign cache files are
 * misses that leave results correct. Each "run" is a child process of this binary. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu_harness.h"

typedef struct run_stats {
    unsigned hits, misses, pcache, ok;
    double saved_ms, compile_ms;
} run_stats;

/* The child: compiles and runs a few kernels, checks results, prints its cache counters. */
static int child(void) {
    th_gpu g;
    unsigned ok = 0;
    if (th_gpu_open(&g, NULL) == 0) {
        enum { N = 1000 };
        float a[N], b[N], o[N];
        for (int i = 0; i < N; i++) a[i] = (float)i, b[i] = 2.0f;
        vk_buf ba = th_buf_from(&g, a, sizeof a), bb = th_buf_from(&g, b, sizeof b), bo = th_buf_zero(&g, sizeof o);
        kern_ctx k = th_begin(&g, NULL);
        CHECK_OK(kern_binary(&k, KERN_ADD, &ba, &bb, &bo, N));
        CHECK_OK(kern_binary(&k, KERN_MUL, &bo, &bb, &bo, N));
        CHECK_OK(kern_swiglu(&k, &ba, &bb, &ba, N));
        th_run(&k);
        th_buf_to(&g, &bo, o, sizeof o);
        ok = 1;
        for (int i = 0; i < N; i++) ok &= o[i] == ((float)i + 2.0f) * 2.0f;
        vk_buf_free(g.dev, &ba);
        vk_buf_free(g.dev, &bb);
        vk_buf_free(g.dev, &bo);
    }
    th_gpu_close(&g);
    vk_shader_stats s;
    vk_shader_get_stats(&s);
    printf("STATS %u %u %u %u %.3f %.3f\n", s.spirv_hits, s.spirv_misses, s.pipeline_cache_loaded,
           ok && th_failures == 0, s.saved_ms, s.compile_ms);
    return th_failures ? 1 : 0;
}

static run_stats run_child(void) {
    run_stats r = {0};
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/proc/%ld/exe child", (long)getpid());
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (!p) return r;
    char line[256];
    int got = 0;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "STATS %u %u %u %u %lf %lf", &r.hits, &r.misses, &r.pcache, &r.ok, &r.saved_ms,
                   &r.compile_ms) == 6)
            got = 1;
    int rc = pclose(p);
    CHECK_MSG(got && rc == 0, "child run failed (rc %d)", rc);
    return r;
}

static void damage_files(const char *dir) {
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d) return;
    struct dirent *e;
    int i = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t size = 0;
        char *data = th_read_file(path, &size);
        if (!data) continue;
        FILE *f = fopen(path, "wb");
        if (!f) {
            free(data);
            continue;
        }
        switch (i++ % 4) {
        case 0: fwrite(data, 1, size / 2, f); break;                    /* truncated */
        case 1: data[size - 1] ^= 0x5a; fwrite(data, 1, size, f); break; /* flipped payload byte */
        case 2: fputs("not a cache file", f); break;                     /* foreign */
        case 3: data[0] ^= 0xff; fwrite(data, 1, size, f); break;         /* bad magic */
        }
        fclose(f);
        free(data);
    }
    closedir(d);
    CHECK(i > 0);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "child")) return child();

    char dir[512], cmd[600];
    th_tmp_path("shader-cache-test", dir, sizeof dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    setenv("VKLLM_CACHE_DIR", dir, 1);

    run_stats cold = run_child();
    printf("cold run: %u SPIR-V misses, %u hits, %.1f ms compiling\n", cold.misses, cold.hits, cold.compile_ms);
    CHECK(cold.ok && cold.misses >= 3 && cold.hits == 0);

    run_stats warm = run_child();
    printf("warm run: %u misses, %u hits, pipeline cache loaded %u, %.1f ms of compile saved\n",
           warm.misses, warm.hits, warm.pcache, warm.saved_ms);
    CHECK(warm.ok && warm.misses == 0 && warm.hits == cold.misses);
    CHECK(warm.pcache == 1);
    CHECK(warm.saved_ms > 0);

    damage_files(dir);
    run_stats hurt = run_child();
    printf("after corrupting every cache file: %u misses, %u hits, results %s\n", hurt.misses, hurt.hits,
           hurt.ok ? "correct" : "WRONG");
    CHECK(hurt.ok && hurt.misses >= 1);

    run_stats healed = run_child();
    CHECK(healed.ok && healed.misses == 0);
    return th_finish();
}

/*
 * tests/plugin/test_loader.c - the real loader against real plugins (sim) and deliberately broken fake
 * ones: each failure mode is a warning naming the file and the reason, the good plugins still load, the
 * filter keeps and drops by name, and unknown filter names are reported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hcrt/hcrt.h"
#include "test.h"

static const hcrt_backend_info_t *find(hcrt_context_t *ctx, const char *name, hcrt_backend_info_t *info)
{
    int n = 0;
    hcrt_backend_count(ctx, &n);
    for (int i = 0; i < n; i++) {
        info->struct_size = sizeof(*info);
        if (hcrt_backend_get_info(ctx, i, info) == HCRT_OK && strcmp(info->name, name) == 0)
            return info;
    }
    return NULL;
}

/* Creates a context with stderr captured into `log` (so the warnings can be checked). */
static hcrt_context_t *init_capture(const char *backends, char *log, size_t loglen, hcrt_status_t *st_out)
{
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    dup2(fileno(tmp), 2);
    hcrt_context_params_t p;
    hcrt_context_params_init(&p);
    p.flags = HCRT_INIT_NO_MPI;
    p.backends = backends;
    hcrt_context_t *ctx = NULL;
    *st_out = hcrt_init(&p, &ctx);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(log, 1, loglen - 1, tmp);
    log[n] = '\0';
    fclose(tmp);
    fputs(log, stderr); /* keep it visible in the test log */
    return ctx;
}

struct expect {
    const char *name;
    hcrt_backend_status_t status;
    const char *reason_part; /* must appear in the reason and, for broken ones, in the warning */
};

int main(void)
{
    const char *fake_dir = getenv("HCRT_FAKE_PLUGIN_DIR");
    const char *path = getenv("HCRT_BACKEND_PATH");
    if (!fake_dir || !path) {
        fprintf(stderr, "HCRT_FAKE_PLUGIN_DIR and HCRT_BACKEND_PATH must be set (run through meson test)\n");
        return 1;
    }
    char newpath[8192];
    snprintf(newpath, sizeof(newpath), "%s:%s", fake_dir, path);
    setenv("HCRT_BACKEND_PATH", newpath, 1);
    setenv("HCRT_LOG_LEVEL", "warn", 1);

    static char log[65536];
    hcrt_status_t st;
    hcrt_context_t *ctx = init_capture(NULL, log, sizeof(log), &st);
    CHECK_MSG(st == HCRT_OK && ctx != NULL, "hcrt_init with broken plugins: %s", hcrt_status_name(st));
    if (!ctx)
        TEST_DONE();

    const struct expect expects[] = {
        {"fakegood", HCRT_BACKEND_LOADED, ""},
        {"fakenosym", HCRT_BACKEND_BROKEN, "missing symbol 'hcrt_backend_v1'"},
        {"fakebadabi", HCRT_BACKEND_BROKEN, "wrong ABI version 99"},
        {"fakeshort", HCRT_BACKEND_BROKEN, "short table"},
        {"fakenullop", HCRT_BACKEND_BROKEN, "mandatory op 'memcpy' is NULL"},
        {"fakebadname", HCRT_BACKEND_BROKEN, "does not match the file name"},
        {"fakefailinit", HCRT_BACKEND_BROKEN, "fake runtime refused to start"},
        {"fakenodev", HCRT_BACKEND_UNAVAILABLE, "fakeErrorNoDevice"},
        {"fakeundef", HCRT_BACKEND_BROKEN, "dlopen failed"},
        {"fakebadcompute", HCRT_BACKEND_LOADED, ""},
        {"sim", HCRT_BACKEND_LOADED, ""},
        {"cpu", HCRT_BACKEND_LOADED, ""},
    };
    for (size_t i = 0; i < sizeof(expects) / sizeof(expects[0]); i++) {
        hcrt_backend_info_t info;
        const hcrt_backend_info_t *got = find(ctx, expects[i].name, &info);
        CHECK_MSG(got != NULL, "backend %s not listed", expects[i].name);
        if (!got)
            continue;
        CHECK_MSG(got->status == expects[i].status, "backend %s: status %d, expected %d (reason: %s)", got->name,
                  got->status, expects[i].status, got->reason);
        CHECK_MSG(strstr(got->reason, expects[i].reason_part) != NULL, "backend %s: reason '%s' lacks '%s'",
                  got->name, got->reason, expects[i].reason_part);
        if (expects[i].status == HCRT_BACKEND_BROKEN) {
            /* The warning names the file and the reason. */
            char file[256];
            snprintf(file, sizeof(file), "libhcrt-backend-%s.so", expects[i].name);
            char *line = strstr(log, file);
            CHECK_MSG(line != NULL, "no warning naming %s", file);
            if (line) {
                char *eol = strchr(line, '\n');
                size_t len = eol ? (size_t)(eol - line) : strlen(line);
                char buf[1024];
                snprintf(buf, sizeof(buf), "%.*s", (int)len, line);
                CHECK_MSG(strstr(buf, expects[i].reason_part) != NULL, "warning for %s lacks the reason: %s", file,
                          buf);
                CHECK_MSG(strstr(log, "WARN") != NULL, "broken plugin not reported at warn level");
            }
        }
        if (expects[i].status == HCRT_BACKEND_LOADED)
            CHECK_MSG(got->device_count > 0, "backend %s loaded without devices", got->name);
    }
    /* The good fake contributes a usable device. */
    hcrt_device_t *dev = NULL;
    CHECK_OK(ctx, hcrt_device_find(ctx, "fakegood", 0, &dev));
    CHECK_STATUS(ctx, hcrt_device_find(ctx, "fakebadabi", 0, &dev), HCRT_ERR_NOT_FOUND);
    CHECK(strstr(hcrt_last_error(ctx), "not loaded") != NULL);
    CHECK_STATUS(ctx, hcrt_device_find(ctx, "nosuchbackend", 0, &dev), HCRT_ERR_NOT_FOUND);
    /* Compute: the good fake has none; the malformed extension is ignored with a warning naming the file,
     * the plugin itself still loads; cpu and sim have it. */
    hcrt_backend_info_t ci;
    const hcrt_backend_info_t *cg = find(ctx, "fakegood", &ci);
    CHECK(cg && !cg->compute && strstr(cg->compute_detail, "no compute extension") != NULL);
    cg = find(ctx, "fakebadcompute", &ci);
    CHECK_MSG(cg && !cg->compute && strstr(cg->compute_detail, "compute op 'gemm' is NULL") != NULL, "detail: %s",
              cg ? cg->compute_detail : "(not listed)");
    CHECK_MSG(strstr(log, "libhcrt-backend-fakebadcompute.so: compute extension ignored") != NULL,
              "no warning for the malformed compute table");
    cg = find(ctx, "sim", &ci);
    CHECK(cg && cg->compute && cg->compute_detail[0] == '\0');
    cg = find(ctx, "cpu", &ci);
    CHECK(cg && cg->compute);
    if (dev) {
        float x[4] = {0};
        CHECK(!hcrt_device_has_compute(dev));
        CHECK_STATUS(ctx, hcrt_compute_relu(dev, x, x, 4, NULL), HCRT_ERR_NOT_SUPPORTED);
        CHECK_MSG(strstr(hcrt_last_error(ctx), "fakegood") && strstr(hcrt_last_error(ctx), "no compute extension"),
                  "detail: %s", hcrt_last_error(ctx));
    }
    hcrt_device_t *badc = NULL;
    CHECK_OK(ctx, hcrt_device_find(ctx, "fakebadcompute", 0, &badc));
    if (badc) {
        float x[4] = {0};
        CHECK(!hcrt_device_has_compute(badc));
        CHECK_STATUS(ctx, hcrt_compute_relu(badc, x, x, 4, NULL), HCRT_ERR_NOT_SUPPORTED);
        CHECK(strstr(hcrt_last_error(ctx), "compute op 'gemm' is NULL") != NULL);
    }
    /* A backend failure comes back with the backend named in the detail. */
    if (dev) {
        void *a = NULL, *b = NULL;
        CHECK_OK(ctx, hcrt_mem_alloc(dev, 64, &a));
        CHECK_OK(ctx, hcrt_mem_alloc(dev, 64, &b));
        CHECK_STATUS(ctx, hcrt_reduce(dev, a, b, 4, HCRT_F32, HCRT_OP_SUM, NULL), HCRT_ERR_NOT_SUPPORTED);
        CHECK(strstr(hcrt_last_error(ctx), "fakegood") != NULL);
        hcrt_mem_free(dev, a);
        hcrt_mem_free(dev, b);
    }
    hcrt_finalize(ctx);

    /* Filter: keep only sim (cpu is always there); the fakes are "filtered" and not even opened. */
    ctx = init_capture("sim", log, sizeof(log), &st);
    CHECK(st == HCRT_OK && ctx);
    if (ctx) {
        hcrt_backend_info_t info;
        const hcrt_backend_info_t *got = find(ctx, "sim", &info);
        CHECK(got && got->status == HCRT_BACKEND_LOADED);
        got = find(ctx, "fakenosym", &info);
        CHECK(got && got->status == HCRT_BACKEND_FILTERED && strstr(got->reason, "HCRT_BACKENDS") != NULL);
        CHECK_MSG(strstr(log, "libhcrt-backend-fakenosym.so") == NULL, "filtered plugin was opened: %s", log);
        got = find(ctx, "cpu", &info);
        CHECK(got && got->status == HCRT_BACKEND_LOADED);
        hcrt_finalize(ctx);
    }

    /* Negated filter: everything but sim and the fakes. */
    ctx = init_capture("^sim,fakegood", log, sizeof(log), &st);
    CHECK(st == HCRT_OK && ctx);
    if (ctx) {
        hcrt_backend_info_t info;
        const hcrt_backend_info_t *got = find(ctx, "sim", &info);
        CHECK(got && got->status == HCRT_BACKEND_FILTERED);
        got = find(ctx, "fakegood", &info);
        CHECK(got && got->status == HCRT_BACKEND_FILTERED);
        got = find(ctx, "fakebadabi", &info);
        CHECK(got && got->status == HCRT_BACKEND_BROKEN);
        hcrt_finalize(ctx);
    }

    /* A name that matches no plugin (a typo) is a configuration error naming it, never a silent run on
     * whatever else loads; in a negated list too. */
    const char *typos[] = {"sim,nosuchthing", "^nosuchthing", "nosuchthing"};
    for (size_t i = 0; i < sizeof(typos) / sizeof(typos[0]); i++) {
        ctx = init_capture(typos[i], log, sizeof(log), &st);
        CHECK_MSG(st == HCRT_ERR_CONFIG && ctx == NULL, "filter '%s': %s", typos[i], hcrt_status_name(st));
        CHECK_MSG(strstr(hcrt_last_error(NULL), "'nosuchthing'") != NULL &&
                      strstr(hcrt_last_error(NULL), "HCRT_BACKENDS") != NULL,
                  "unknown backend name not named: %s", hcrt_last_error(NULL));
        hcrt_finalize(ctx);
    }

    /* The environment variable works like params->backends. */
    setenv("HCRT_BACKENDS", "^fakegood", 1);
    ctx = init_capture(NULL, log, sizeof(log), &st);
    CHECK(st == HCRT_OK && ctx);
    if (ctx) {
        hcrt_backend_info_t info;
        const hcrt_backend_info_t *got = find(ctx, "fakegood", &info);
        CHECK(got && got->status == HCRT_BACKEND_FILTERED);
        got = find(ctx, "sim", &info);
        CHECK(got && got->status == HCRT_BACKEND_LOADED);
        hcrt_finalize(ctx);
    }
    TEST_DONE();
}

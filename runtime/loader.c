/*
 * runtime/loader.c - finds, checks and loads backend plugins.
 *
 * Loading fails soft and loud: a broken plugin (dlopen error, missing table, wrong ABI, short table,
 * missing mandatory op, failing init) is a warning naming the file and the reason, it is closed, and the
 * rest still load. A plugin whose vendor runtime works but sees no device is "unavailable", with the
 * vendor's reason, which hcrt-info shows. The cpu backend is built in and always present: it is the host,
 * which every staging path needs, so HCRT_BACKENDS does not remove it.
 *
 * Where plugins are looked for, in order (the first file of a name wins): HCRT_BACKEND_PATH; the build
 * tree's plugin folders when this libhcrt is the build tree's own (tools run from the build tree need no
 * setting); LIBDIR/hcrt next to this libhcrt (an install moved as a whole, or installed with --destdir);
 * the install directory the library was configured for (HCRT_PLUGIN_DIR).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

#define PREFIX "libhcrt-backend-"
#define SUFFIX ".so"

#ifndef HCRT_PLUGIN_DIR
#define HCRT_PLUGIN_DIR "/usr/local/lib/hcrt"
#endif
/* Set by meson: the build directory and its plugin folders (colon-separated). */
#ifndef HCRT_BUILD_ROOT
#define HCRT_BUILD_ROOT ""
#endif
#ifndef HCRT_BUILD_PLUGIN_PATH
#define HCRT_BUILD_PLUGIN_PATH ""
#endif

/* ---- services handed to plugins ---- */

static void svc_log(void *host, int level, const char *fmt, ...)
{
    hcrt__backend_t *be = host;
    if (level > hcrt__log_threshold || !hcrt__log_enabled(level, be->name))
        return;
    va_list ap;
    va_start(ap, fmt);
    hcrt__log_vemit(level, be->name, fmt, ap);
    va_end(ap);
}

static bool svc_log_enabled(void *host, int level)
{
    hcrt__backend_t *be = host;
    return level <= hcrt__log_threshold && hcrt__log_enabled(level, be->name);
}

static const char *svc_config_get(void *host, const char *name)
{
    hcrt__backend_t *be = host;
    int i = hcrt__config_index(name);
    if (i < 0)
        return NULL;
    return be->ctx->config[i].str;
}

/* ---- filter ---- */

bool hcrt__backend_filter_match(const char *filter, const char *name)
{
    if (filter == NULL || filter[0] == '\0')
        return true;
    bool negate = filter[0] == '^';
    const char *p = negate ? filter + 1 : filter;
    size_t n = strlen(name);
    bool listed = false;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && p[0] == ' ') {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ')
            len--;
        if (len == n && strncmp(p, name, n) == 0)
            listed = true;
        if (!end)
            break;
        p = end + 1;
    }
    return negate ? !listed : listed;
}

/* ---- table checks ---- */

#define MANDATORY(field) {#field, offsetof(hcrt_backend_v1_t, field)}
static const struct {
    const char *name;
    size_t offset;
} mandatory_ops[] = {
    MANDATORY(init),           MANDATORY(finalize),      MANDATORY(last_error),     MANDATORY(device_count),
    MANDATORY(device_props),   MANDATORY(health),        MANDATORY(mem_alloc),      MANDATORY(mem_free),
    MANDATORY(host_alloc),     MANDATORY(host_free),     MANDATORY(memset),         MANDATORY(memcpy),
    MANDATORY(memcpy_peer),    MANDATORY(stream_create), MANDATORY(stream_destroy), MANDATORY(stream_sync),
    MANDATORY(event_create),   MANDATORY(event_destroy), MANDATORY(event_record),   MANDATORY(event_sync),
    MANDATORY(event_query),    MANDATORY(event_elapsed), MANDATORY(reduce),         MANDATORY(scale),
};

/* Checks a table found in a plugin; on failure writes the reason. */
static bool table_ok(const hcrt_backend_v1_t *t, const char *expect_name, char *why, size_t len)
{
    if (t->struct_size < HCRT_BACKEND_V1_MIN_SIZE) {
        snprintf(why, len, "short table: struct_size %zu, ABI v1 needs at least %zu", t->struct_size,
                 (size_t)HCRT_BACKEND_V1_MIN_SIZE);
        return false;
    }
    if (t->abi_version != HCRT_BACKEND_ABI_VERSION) {
        snprintf(why, len, "wrong ABI version %u (this runtime speaks %u)", t->abi_version,
                 HCRT_BACKEND_ABI_VERSION);
        return false;
    }
    if (t->name == NULL || strcmp(t->name, expect_name) != 0) {
        snprintf(why, len, "table name '%s' does not match the file name '%s'", t->name ? t->name : "(null)",
                 expect_name);
        return false;
    }
    for (size_t i = 0; i < sizeof(mandatory_ops) / sizeof(mandatory_ops[0]); i++) {
        void *fn;
        memcpy(&fn, (const char *)t + mandatory_ops[i].offset, sizeof(fn));
        if (fn == NULL) {
            snprintf(why, len, "mandatory op '%s' is NULL", mandatory_ops[i].name);
            return false;
        }
    }
    return true;
}

/* ---- loading ---- */

/* The array is allocated once, full size: plugins keep pointers to their entry's services, so it must
 * never move. */
#define MAX_BACKENDS 64

static hcrt__backend_t *add_backend(hcrt_context_t *ctx, const char *name, const char *path)
{
    if (!ctx->backends) {
        ctx->backends = calloc(MAX_BACKENDS, sizeof(*ctx->backends));
        if (!ctx->backends)
            return NULL;
    }
    if (ctx->nbackends >= MAX_BACKENDS)
        return NULL;
    hcrt__backend_t *be = &ctx->backends[ctx->nbackends];
    memset(be, 0, sizeof(*be));
    be->name = strdup(name);
    be->path = strdup(path);
    if (!be->name || !be->path) {
        free(be->name);
        free(be->path);
        return NULL;
    }
    ctx->nbackends++;
    return be;
}

static bool have_backend(const hcrt_context_t *ctx, const char *name)
{
    for (int i = 0; i < ctx->nbackends; i++)
        if (strcmp(ctx->backends[i].name, name) == 0)
            return true;
    return false;
}

/* Runs init() and device_count() of a checked table; sets status/reason. */
static void start_backend(hcrt__backend_t *be)
{
    be->svc.struct_size = sizeof(be->svc);
    be->svc.host = be;
    be->svc.log = svc_log;
    be->svc.log_enabled = svc_log_enabled;
    be->svc.config_get = svc_config_get;
    hcrt_status_t st = be->ops->init(&be->svc, &be->state);
    if (st == HCRT_ERR_NO_DEVICE) {
        be->status = HCRT_BACKEND_UNAVAILABLE;
        snprintf(be->reason, sizeof(be->reason), "%s", be->ops->last_error(NULL));
        if (be->reason[0] == '\0')
            snprintf(be->reason, sizeof(be->reason), "no device");
        be->state = NULL;
        HCRT_INFO("loader", "backend %s (%s) unavailable: %s", be->name, be->path, be->reason);
        return;
    }
    if (st != HCRT_OK) {
        be->status = HCRT_BACKEND_BROKEN;
        snprintf(be->reason, sizeof(be->reason), "init failed: %s: %s", hcrt_status_name(st),
                 be->ops->last_error(NULL));
        be->state = NULL;
        HCRT_WARN("loader", "backend plugin %s: %s", be->path, be->reason);
        return;
    }
    int n = 0;
    st = be->ops->device_count(be->state, &n);
    if (st != HCRT_OK || n <= 0) {
        be->status = HCRT_BACKEND_UNAVAILABLE;
        snprintf(be->reason, sizeof(be->reason), "%s",
                 st != HCRT_OK ? be->ops->last_error(be->state) : "no device");
        be->ops->finalize(be->state);
        be->state = NULL;
        HCRT_INFO("loader", "backend %s (%s) unavailable: %s", be->name, be->path, be->reason);
        return;
    }
    be->ndev = n;
    be->status = HCRT_BACKEND_LOADED;
    HCRT_DEBUG("loader", "backend %s loaded from %s with %d device(s)", be->name, be->path, n);
}

static void load_plugin(hcrt_context_t *ctx, const char *dir, const char *file, const char *filter)
{
    size_t flen = strlen(file);
    char name[64];
    size_t nlen = flen - strlen(PREFIX) - strlen(SUFFIX);
    if (nlen == 0 || nlen >= sizeof(name))
        return;
    memcpy(name, file + strlen(PREFIX), nlen);
    name[nlen] = '\0';
    if (strcmp(name, "cpu") == 0 || have_backend(ctx, name)) {
        HCRT_DEBUG("loader", "skipping %s/%s: backend '%s' already found earlier in the path", dir, file, name);
        return;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    hcrt__backend_t *be = add_backend(ctx, name, path);
    if (!be) {
        HCRT_WARN("loader", "out of memory recording backend plugin %s", path);
        return;
    }
    be->ctx = ctx;
    if (!hcrt__backend_filter_match(filter, name)) {
        be->status = HCRT_BACKEND_FILTERED;
        snprintf(be->reason, sizeof(be->reason), "excluded by HCRT_BACKENDS=%s", filter);
        HCRT_DEBUG("loader", "backend %s: %s", name, be->reason);
        return;
    }
    be->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!be->dl) {
        const char *e = dlerror();
        be->status = HCRT_BACKEND_BROKEN;
        snprintf(be->reason, sizeof(be->reason), "dlopen failed: %s", e ? e : "unknown error");
        HCRT_WARN("loader", "backend plugin %s: %s", path, be->reason);
        return;
    }
    dlerror();
    const hcrt_backend_v1_t *t = dlsym(be->dl, HCRT_BACKEND_SYMBOL_V1);
    if (!t) {
        be->status = HCRT_BACKEND_BROKEN;
        snprintf(be->reason, sizeof(be->reason), "missing symbol '%s'", HCRT_BACKEND_SYMBOL_V1);
        goto broken;
    }
    if (!table_ok(t, name, be->reason, sizeof(be->reason))) {
        be->status = HCRT_BACKEND_BROKEN;
        goto broken;
    }
    be->ops = t;
    start_backend(be);
    if (be->status == HCRT_BACKEND_LOADED) {
        hcrt__compute_attach(be);
        return;
    }
    /* Unavailable or failed init: nothing of it is used, so let the library go. */
    be->ops = NULL;
    dlclose(be->dl);
    be->dl = NULL;
    return;
broken:
    HCRT_WARN("loader", "backend plugin %s: %s", path, be->reason);
    dlclose(be->dl);
    be->dl = NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Loads every libhcrt-backend-*.so of one directory, in name order (so device order is stable). */
static void scan_dir(hcrt_context_t *ctx, const char *dir, const char *filter)
{
    DIR *d = opendir(dir);
    if (!d) {
        HCRT_DEBUG("loader", "plugin directory %s not readable", dir);
        return;
    }
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 256) {
        size_t len = strlen(e->d_name);
        if (len > strlen(PREFIX) + strlen(SUFFIX) && strncmp(e->d_name, PREFIX, strlen(PREFIX)) == 0 &&
            strcmp(e->d_name + len - strlen(SUFFIX), SUFFIX) == 0) {
            names[n] = strdup(e->d_name);
            if (names[n])
                n++;
        }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(names[0]), cmp_str);
    for (int i = 0; i < n; i++) {
        load_plugin(ctx, dir, names[i], filter);
        free(names[i]);
    }
}

/* Scans every directory of a colon-separated list. */
static void scan_path(hcrt_context_t *ctx, const char *path, const char *filter)
{
    char *copy = strdup(path ? path : "");
    if (!copy) {
        HCRT_WARN("loader", "out of memory reading the plugin path %s", path);
        return;
    }
    char *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save))
        if (dir[0])
            scan_dir(ctx, dir, filter);
    free(copy);
}

/* The directory this libhcrt was loaded from (resolved), into dir; false when unknown. */
static bool own_dir(char *dir, size_t len)
{
    Dl_info info;
    char real[PATH_MAX];
    if (dladdr((void *)&hcrt__loader_load, &info) == 0 || info.dli_fname == NULL ||
        realpath(info.dli_fname, real) == NULL)
        return false;
    char *slash = strrchr(real, '/');
    if (slash == NULL)
        return false;
    *slash = '\0';
    snprintf(dir, len, "%s", real[0] ? real : "/");
    return true;
}

/* The plugin folders to search after HCRT_BACKEND_PATH, colon-separated (see the top of this file). */
static void default_plugin_path(char *out, size_t len)
{
    char lib[PATH_MAX], root[PATH_MAX];
    out[0] = '\0';
    if (!own_dir(lib, sizeof(lib))) {
        snprintf(out, len, "%s", HCRT_PLUGIN_DIR);
        return;
    }
    if (HCRT_BUILD_ROOT[0] && realpath(HCRT_BUILD_ROOT, root) != NULL && strcmp(root, lib) == 0)
        snprintf(out, len, "%s:", HCRT_BUILD_PLUGIN_PATH);
    size_t used = strlen(out);
    snprintf(out + used, len - used, "%s/hcrt:%s", lib, HCRT_PLUGIN_DIR);
}

/* Every name of an HCRT_BACKENDS filter must be a backend that exists: a typo would otherwise run the job
 * on whatever else loads. */
static hcrt_status_t check_filter_names(hcrt_context_t *ctx, const char *filter, const char *searched)
{
    if (filter == NULL || filter[0] == '\0')
        return HCRT_OK;
    char *list = strdup(filter[0] == '^' ? filter + 1 : filter);
    if (list == NULL)
        return hcrt__error(NULL, HCRT_ERR_NO_MEMORY, "hcrt_init: out of memory checking HCRT_BACKENDS");
    hcrt_status_t st = HCRT_OK;
    char *sp = NULL;
    for (char *w = strtok_r(list, ", ", &sp); w; w = strtok_r(NULL, ", ", &sp)) {
        if (have_backend(ctx, w))
            continue;
        char found[512] = "";
        for (int i = 0; i < ctx->nbackends; i++) {
            size_t used = strlen(found);
            snprintf(found + used, sizeof(found) - used, "%s%s", i ? ", " : "", ctx->backends[i].name);
        }
        st = hcrt__error(NULL, HCRT_ERR_CONFIG,
                         "hcrt_init: HCRT_BACKENDS='%s' names backend '%s', which matches no plugin (found: %s; "
                         "searched HCRT_BACKEND_PATH='%s' and %s)",
                         filter, w, found, hcrt__config_str(ctx, "HCRT_BACKEND_PATH"), searched);
        break;
    }
    free(list);
    return st;
}

hcrt_status_t hcrt__loader_load(hcrt_context_t *ctx, const char *filter)
{
    hcrt__backend_t *cpu = add_backend(ctx, "cpu", "(built in)");
    if (!cpu)
        return hcrt__error(NULL, HCRT_ERR_NO_MEMORY, "hcrt_init: out of memory loading backends");
    cpu->ctx = ctx;
    cpu->ops = &hcrt__cpu_backend;
    start_backend(cpu);
    if (cpu->status != HCRT_BACKEND_LOADED)
        return hcrt__error(NULL, HCRT_ERR_BACKEND, "hcrt_init: the built-in cpu backend failed: %s", cpu->reason);
    hcrt__compute_attach(cpu);

    char defaults[3 * PATH_MAX];
    default_plugin_path(defaults, sizeof(defaults));
    scan_path(ctx, hcrt__config_str(ctx, "HCRT_BACKEND_PATH"), filter);
    scan_path(ctx, defaults, filter);
    return check_filter_names(ctx, filter, defaults);
}

void hcrt__loader_unload(hcrt_context_t *ctx)
{
    for (int i = ctx->nbackends - 1; i >= 0; i--) {
        hcrt__backend_t *be = &ctx->backends[i];
        if (be->ops && be->state)
            be->ops->finalize(be->state);
        if (be->dl)
            dlclose(be->dl);
        free(be->name);
        free(be->path);
    }
    free(ctx->backends);
    ctx->backends = NULL;
    ctx->nbackends = 0;
}

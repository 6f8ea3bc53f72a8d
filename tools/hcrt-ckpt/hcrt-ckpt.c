/*
 * hcrt-ckpt - inspect, verify, compare and clean checkpoint directories without MPI (format in
 * docs/checkpoint-format.md, the flow in docs/architecture.md). It reads exactly what a restore reads and
 * trusts nothing in it.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hcrt/hcrt.h"
#include "tools/hcrt-ckpt/ckpt_tool.h"

static const char usage[] =
    "usage: hcrt-ckpt COMMAND ...\n"
    "\n"
    "  list DIR                      steps in DIR: committed or partial, size, world size, backends, age\n"
    "  verify DIR [STEP]             recompute every checksum of STEP (default: every committed step)\n"
    "  show DIR STEP                 tensors, dtypes, shapes, shards and ranks of a step\n"
    "  diff DIR1 STEP1 DIR2 STEP2    which tensors differ, how many elements, the largest difference\n"
    "  gc DIR [--keep K]             remove partial steps and all but the newest K committed ones\n"
    "                                (K defaults to HCRT_CKPT_KEEP; a partial step newer than every\n"
    "                                committed one may be a save in flight and is kept)\n"
    "  --help                        this text\n"
    "\n"
    "Exit status: 0 success (verify: all checksums match; diff: no difference); 1 verification failed or\n"
    "a manifest is malformed (diff: the steps differ); 2 bad command line; 3 no such directory or\n"
    "committed step; 4 I/O error.\n";

static int bad_usage(const char *why)
{
    fprintf(stderr, "hcrt-ckpt: %s\n\n%s", why, usage);
    return EXIT_USAGE;
}

static int parse_step(const char *s, int64_t *step)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        return -1;
    *step = v;
    return 0;
}

static uint64_t dir_bytes(const char *path)
{
    uint64_t total = 0;
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        char f[4096 + 300];
        struct stat sb;
        snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
        if (stat(f, &sb) == 0 && S_ISREG(sb.st_mode))
            total += (uint64_t)sb.st_size;
    }
    if (d)
        closedir(d);
    return total;
}

static const char *human(uint64_t bytes, char *buf, size_t cap)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(buf, cap, i ? "%.1f %s" : "%.0f %s", v, u[i]);
    return buf;
}

/* "4000, 400": a tensor's global shape, for show and diff. */
static const char *shape_string(const hcrt__ckpt_tensor_t *tn, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (int d = 0; d < tn->ndims; d++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%" PRIu64, d ? ", " : "", tn->shape[d]);
    return buf;
}

static int cmd_list(const char *dir)
{
    hcrt__ckpt_step_entry_t *list;
    size_t n;
    char err[1024], sz[32];
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "hcrt-ckpt: %s: no such directory\n", dir);
        return EXIT_NOT_FOUND;
    }
    if (hcrt__ckpt_scan(dir, &list, &n, err, sizeof(err)) != HCRT_OK) {
        fprintf(stderr, "hcrt-ckpt: %s\n", err);
        return EXIT_IO;
    }
    printf("%-10s %-10s %10s %6s  %-20s %s\n", "STEP", "STATE", "SIZE", "RANKS", "BACKENDS", "AGE");
    int rc = EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        hcrt__ckpt_manifest_t m;
        hcrt__ckpt_step_path(path, sizeof(path), dir, list[i].step);
        human(dir_bytes(path), sz, sizeof(sz));
        if (!list[i].committed) {
            printf("%-10" PRId64 " %-10s %10s %6s  %-20s %s\n", list[i].step, "partial", sz, "-", "-", "-");
            continue;
        }
        if (hcrt__manifest_load(path, &m, err, sizeof(err)) != HCRT_OK) {
            printf("%-10" PRId64 " %-10s %10s %6s  %-20s %s\n", list[i].step, "malformed", sz, "-", "-", "-");
            fprintf(stderr, "hcrt-ckpt: %s\n", err);
            rc = EXIT_BAD;
            continue;
        }
        char backends[256] = "";
        for (int r = 0; r < m.nranks; r++) {
            char copy[128], *save = NULL;
            snprintf(copy, sizeof(copy), "%s", m.ranks[r].backends);
            for (char *b = strtok_r(copy, ",", &save); b; b = strtok_r(NULL, ",", &save)) {
                char tagged[140];
                snprintf(tagged, sizeof(tagged), ",%s,", b);
                char padded[260];
                snprintf(padded, sizeof(padded), ",%s,", backends);
                if (strstr(padded, tagged) == NULL && strlen(backends) + strlen(b) + 2 < sizeof(backends))
                    snprintf(backends + strlen(backends), sizeof(backends) - strlen(backends), "%s%s",
                             backends[0] ? "," : "", b);
            }
        }
        long long age = (long long)time(NULL) - (long long)m.time_unix;
        char agebuf[32];
        if (age < 120)
            snprintf(agebuf, sizeof(agebuf), "%llds", age);
        else if (age < 7200)
            snprintf(agebuf, sizeof(agebuf), "%lldm", age / 60);
        else if (age < 172800)
            snprintf(agebuf, sizeof(agebuf), "%lldh", age / 3600);
        else
            snprintf(agebuf, sizeof(agebuf), "%lldd", age / 86400);
        printf("%-10" PRId64 " %-10s %10s %6d  %-20s %s\n", list[i].step, "committed", sz, m.world_size,
               backends[0] ? backends : "-", agebuf);
        hcrt__manifest_free(&m);
    }
    if (n == 0)
        printf("(no steps)\n");
    free(list);
    return rc;
}

typedef struct verify_ctx {
    bool tty;
    int64_t step;
    int problems;
} verify_ctx_t;

static void verify_report(void *arg, const char *msg)
{
    verify_ctx_t *v = arg;
    if (v->tty)
        fputs("\r\033[K", stdout);
    printf("  BAD %s\n", msg);
    v->problems++;
}

static void verify_progress(void *arg, uint64_t done, uint64_t total)
{
    verify_ctx_t *v = arg;
    if (!v->tty || total == 0)
        return;
    int pct = (int)(done * 100 / total), bars = pct * 30 / 100;
    printf("\r  step %" PRId64 " [%.*s%*s] %3d%%", v->step, bars, "##############################", 30 - bars, "", pct);
    fflush(stdout);
}

static int cmd_verify(const char *dir, int nsteps, const int64_t *only)
{
    hcrt__ckpt_step_entry_t *list = NULL;
    size_t n = 0;
    char err[4096];
    int rc = EXIT_OK, checked = 0;
    if (nsteps == 0) {
        struct stat sb;
        if (stat(dir, &sb) != 0) {
            fprintf(stderr, "hcrt-ckpt: %s: no such directory\n", dir);
            return EXIT_NOT_FOUND;
        }
        if (hcrt__ckpt_scan(dir, &list, &n, err, sizeof(err)) != HCRT_OK) {
            fprintf(stderr, "hcrt-ckpt: %s\n", err);
            return EXIT_IO;
        }
    }
    size_t count = nsteps ? 1 : n;
    for (size_t i = 0; i < count; i++) {
        int64_t step = nsteps ? only[0] : list[i].step;
        if (!nsteps && !list[i].committed)
            continue;
        char path[4096];
        verify_ctx_t v = {isatty(STDOUT_FILENO) != 0, step, 0};
        hcrt__ckpt_step_path(path, sizeof(path), dir, step);
        hcrt_status_t st = hcrt__ckpt_verify_step(path, verify_report, verify_progress, &v, err, sizeof(err));
        if (v.tty)
            fputs("\r\033[K", stdout);
        checked++;
        if (st == HCRT_OK) {
            printf("step %" PRId64 ": ok\n", step);
        } else if (st == HCRT_ERR_NOT_FOUND) {
            printf("step %" PRId64 ": not committed (no %s)\n", step, HCRT__CKPT_MANIFEST);
            if (rc == EXIT_OK)
                rc = EXIT_NOT_FOUND;
        } else {
            printf("step %" PRId64 ": FAILED (%d problem%s)\n", step, v.problems, v.problems == 1 ? "" : "s");
            rc = EXIT_BAD;
        }
    }
    if (checked == 0) {
        printf("no committed step in %s\n", dir);
        rc = EXIT_NOT_FOUND;
    }
    free(list);
    return rc;
}

static int cmd_show(const char *dir, int64_t step)
{
    tool_step_t s;
    char err[4096];
    int rc = tool_step_open(&s, dir, step, err, sizeof(err));
    if (rc != EXIT_OK) {
        fprintf(stderr, "hcrt-ckpt: %s\n", err);
        return rc;
    }
    const hcrt__ckpt_manifest_t *m = &s.m;
    char sz[32];
    printf("step %" PRId64 " in %s\n", m->step, s.path);
    printf("format version %d, written %s by %d rank%s, partner copies: %s, metadata %zu bytes\n", m->version,
           m->time, m->world_size, m->world_size == 1 ? "" : "s", m->partner_mode, m->meta_len);
    printf("\nranks:\n");
    for (int r = 0; r < m->nranks; r++)
        printf("  %4d  %-24s %-12s %s (%s)  partner %d\n", r, m->ranks[r].host, m->ranks[r].backends,
               m->ranks[r].file, human(m->ranks[r].bytes, sz, sizeof(sz)), m->ranks[r].partner);
    printf("\ntensors:\n");
    for (int t = 0; t < m->ntensors; t++) {
        const hcrt__ckpt_tensor_t *tn = &m->tensors[t];
        char shape[256];
        printf("  %-32s %-5s [%s] %s\n", tn->name, hcrt__ckpt_dtype_name(tn->dtype),
               shape_string(tn, shape, sizeof(shape)), tn->replicated ? "replicated" : "sharded");
        for (int k = 0; k < tn->nshards; k++) {
            const hcrt__ckpt_shard_t *sh = &tn->shards[k];
            printf("      rows [%" PRIu64 ", %" PRIu64 ")  rank %d  %s @ %" PRIu64 "  %s  %" PRIu64 " chunk%s\n",
                   sh->row_offset, sh->row_offset + sh->rows, sh->rank, m->ranks[sh->rank].file, sh->offset,
                   human(sh->bytes, sz, sizeof(sz)), sh->nchunks, sh->nchunks == 1 ? "" : "s");
        }
    }
    tool_step_close(&s);
    return EXIT_OK;
}

/* Compares one tensor present in both steps, row block by row block. */
static int diff_tensor(tool_step_t *a, tool_step_t *b, const hcrt__ckpt_tensor_t *ta, const hcrt__ckpt_tensor_t *tb,
                       uint64_t *ndiff, double *maxdiff, char *err, size_t errlen)
{
    uint64_t rb = ta->row_bytes, rows = ta->shape[0];
    uint64_t block = rb ? (((uint64_t)16 << 20) / rb) : rows;
    if (block == 0)
        block = 1;
    size_t esz = hcrt__ckpt_dtype_size(ta->dtype);
    unsigned char *x = malloc(block * rb + 1), *y = malloc(block * rb + 1);
    int rc = EXIT_OK;
    *ndiff = 0;
    *maxdiff = 0;
    if (x == NULL || y == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = EXIT_IO;
    }
    for (uint64_t r = 0; rc == EXIT_OK && r < rows; r += block) {
        uint64_t e = r + block < rows ? r + block : rows;
        if ((rc = tool_read_rows(a, ta, r, e, x, err, errlen)) != EXIT_OK ||
            (rc = tool_read_rows(b, tb, r, e, y, err, errlen)) != EXIT_OK)
            break;
        size_t bytes = (size_t)((e - r) * rb);
        if (memcmp(x, y, bytes) == 0)
            continue;
        for (size_t i = 0; i + esz <= bytes; i += esz) {
            if (memcmp(x + i, y + i, esz) == 0)
                continue;
            (*ndiff)++;
            double d = fabs(tool_element(x + i, ta->dtype) - tool_element(y + i, ta->dtype));
            if (d > *maxdiff || isnan(d))
                *maxdiff = isnan(d) ? INFINITY : d;
        }
    }
    free(x);
    free(y);
    return rc;
}

static int cmd_diff(const char *d1, int64_t s1, const char *d2, int64_t s2)
{
    tool_step_t a, b;
    char err[4096];
    int rc = tool_step_open(&a, d1, s1, err, sizeof(err));
    if (rc != EXIT_OK) {
        fprintf(stderr, "hcrt-ckpt: %s\n", err);
        return rc;
    }
    rc = tool_step_open(&b, d2, s2, err, sizeof(err));
    if (rc != EXIT_OK) {
        fprintf(stderr, "hcrt-ckpt: %s\n", err);
        tool_step_close(&a);
        return rc;
    }
    int differ = 0, failed = 0;
    for (int t = 0; t < a.m.ntensors; t++) {
        const hcrt__ckpt_tensor_t *ta = &a.m.tensors[t], *tb = hcrt__manifest_find(&b.m, ta->name);
        if (tb == NULL) {
            printf("%-32s only in the first\n", ta->name);
            differ++;
            continue;
        }
        bool dtype_differs = ta->dtype != tb->dtype;
        bool shape_differs =
            ta->ndims != tb->ndims || memcmp(ta->shape, tb->shape, sizeof(uint64_t) * (size_t)ta->ndims) != 0;
        if (dtype_differs || shape_differs) {
            char sa[256], sb[256], what[600] = "";
            if (dtype_differs)
                snprintf(what, sizeof(what), "dtype (%s vs %s)", hcrt__ckpt_dtype_name(ta->dtype),
                         hcrt__ckpt_dtype_name(tb->dtype));
            if (shape_differs)
                snprintf(what + strlen(what), sizeof(what) - strlen(what), "%sshape ([%s] vs [%s])",
                         dtype_differs ? " and " : "", shape_string(ta, sa, sizeof(sa)),
                         shape_string(tb, sb, sizeof(sb)));
            printf("%-32s differs in %s\n", ta->name, what);
            differ++;
            continue;
        }
        uint64_t nd;
        double maxd;
        int r = diff_tensor(&a, &b, ta, tb, &nd, &maxd, err, sizeof(err));
        if (r != EXIT_OK) {
            printf("%-32s cannot compare: %s\n", ta->name, err);
            failed = r;
        } else if (nd == 0) {
            printf("%-32s same\n", ta->name);
        } else {
            printf("%-32s differs: %" PRIu64 " element%s, max |difference| %g\n", ta->name, nd, nd == 1 ? "" : "s",
                   maxd);
            differ++;
        }
    }
    for (int t = 0; t < b.m.ntensors; t++) {
        if (hcrt__manifest_find(&a.m, b.m.tensors[t].name) == NULL) {
            printf("%-32s only in the second\n", b.m.tensors[t].name);
            differ++;
        }
    }
    if (a.m.meta_len != b.m.meta_len || (a.m.meta_len && memcmp(a.m.meta, b.m.meta, a.m.meta_len) != 0)) {
        printf("%-32s differs (%zu vs %zu bytes)\n", "(metadata)", a.m.meta_len, b.m.meta_len);
        differ++;
    }
    tool_step_close(&a);
    tool_step_close(&b);
    if (failed)
        return failed;
    return differ ? EXIT_BAD : EXIT_OK;
}

static int cmd_gc(hcrt_context_t *ctx, const char *dir, int keep)
{
    char err[4096];
    int removed = 0;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "hcrt-ckpt: %s: no such directory\n", dir);
        return EXIT_NOT_FOUND;
    }
    if (keep <= 0) {
        const char *v = NULL;
        keep = hcrt_config_get(ctx, "HCRT_CKPT_KEEP", &v) == HCRT_OK && v ? atoi(v) : 2;
        if (keep <= 0)
            keep = 2;
    }
    if (hcrt__ckpt_gc_dir(dir, keep, -1, NULL, false, &removed, err, sizeof(err)) != HCRT_OK) {
        fprintf(stderr, "hcrt-ckpt: %s\n", err);
        return EXIT_IO;
    }
    /* Data files a job kept for reuse are space too; a running job simply writes new ones. */
    char spare[4200];
    snprintf(spare, sizeof(spare), "%s/%s", dir, HCRT__CKPT_SPARE);
    DIR *d = opendir(spare);
    struct dirent *de;
    int spares = 0;
    while (d && (de = readdir(d)) != NULL) {
        char f[4200 + 300];
        snprintf(f, sizeof(f), "%s/%s", spare, de->d_name);
        if (de->d_name[0] != '.' && unlink(f) == 0)
            spares++;
    }
    if (d) {
        closedir(d);
        rmdir(spare);
    }
    if (spares)
        printf("removed %d spare data file%s kept for reuse\n", spares, spares == 1 ? "" : "s");
    printf("removed %d step%s from %s (keeping the newest %d committed)\n", removed, removed == 1 ? "" : "s", dir,
           keep);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    hcrt_context_t *ctx = NULL;
    hcrt_context_params_t cp;
    int64_t s1, s2;
    int rc;

    if (argc < 2)
        return bad_usage("no command");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    hcrt_context_params_init(&cp);
    cp.flags = HCRT_INIT_NO_MPI;
    cp.backends = "cpu";
    if (hcrt_init(&cp, &ctx) != HCRT_OK) {
        fprintf(stderr, "hcrt-ckpt: %s\n", hcrt_last_error(NULL));
        return EXIT_IO;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "list") == 0) {
        rc = argc == 3 ? cmd_list(argv[2]) : bad_usage("list takes DIR");
    } else if (strcmp(cmd, "verify") == 0) {
        if (argc == 3)
            rc = cmd_verify(argv[2], 0, NULL);
        else if (argc == 4 && parse_step(argv[3], &s1) == 0)
            rc = cmd_verify(argv[2], 1, &s1);
        else
            rc = bad_usage("verify takes DIR [STEP]");
    } else if (strcmp(cmd, "show") == 0) {
        rc = argc == 4 && parse_step(argv[3], &s1) == 0 ? cmd_show(argv[2], s1) : bad_usage("show takes DIR STEP");
    } else if (strcmp(cmd, "diff") == 0) {
        rc = argc == 6 && parse_step(argv[3], &s1) == 0 && parse_step(argv[5], &s2) == 0
                 ? cmd_diff(argv[2], s1, argv[4], s2)
                 : bad_usage("diff takes DIR1 STEP1 DIR2 STEP2");
    } else if (strcmp(cmd, "gc") == 0) {
        int keep = 0;
        if (argc == 5 && strcmp(argv[3], "--keep") == 0 && atoi(argv[4]) > 0)
            keep = atoi(argv[4]);
        rc = argc == 3 || keep > 0 ? cmd_gc(ctx, argv[2], keep) : bad_usage("gc takes DIR [--keep K]");
    } else {
        rc = bad_usage("unknown command");
    }
    hcrt_finalize(ctx);
    return rc;
}

/*
 * hcrt-bench ckpt - the checkpoint benchmark (issue 4): on one state size, in one run, the save stall
 * (time until hcrt_ckpt_save returns), one plain memcpy of the state, the persist time and throughput
 * (save return to commit), a plain write+fsync of the same bytes to the same directory, and the restore
 * time (checksums verified) from that directory.
 *
 *   hcrt-bench ckpt --bytes SIZE --dir DIR [--json FILE] [--repeat N] [--local DIR] [--backend host|sim]
 *   mpirun ... hcrt-bench ckpt --partner ...   the partner level's cost and a lost node's restore
 *                                              (ckpt_partner.c)
 *
 * The state is one tensor on the host (or a sim device). The first save allocates and pre-touches the
 * snapshot pool and is not measured; each figure is the median of N repetitions (default 3). Only the
 * shared level is written unless --local names a node-local directory (then persist writes both).
 * Runs in one process without MPI.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hcrt/hcrt.h"
#include "tools/hcrt-bench/ckpt_bench.h"

int hcrt_bench_ckpt_main(int argc, char **argv);

double hcrt_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v <= 0)
        return -1;
    switch (*end) {
    case 'k': case 'K': v *= 1024; end++; break;
    case 'm': case 'M': v *= 1024 * 1024; end++; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end == 'i')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0' || v < 4096 || v > 1e13)
        return -1;
    *out = (size_t)v & ~(size_t)4095;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double hcrt_bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Pre-touched memory: the benchmark measures copies, not page faults. */
static void *touched(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* A plain write+fsync of `bytes` to a new file in dir, in the same 4 MiB writes the checkpointer uses. */
static double raw_write(const char *dir, const unsigned char *src, size_t bytes)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/raw-write.bin", dir);
    unlink(path);
    double t0 = hcrt_bench_now();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    size_t chunk = (size_t)4 << 20;
    for (size_t off = 0; off < bytes;) {
        size_t len = bytes - off < chunk ? bytes - off : chunk;
        ssize_t n = write(fd, src + off, len);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0) {
        close(fd);
        return -1;
    }
    close(fd);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    double t = hcrt_bench_now() - t0;
    unlink(path);
    return t;
}

int hcrt_bench_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static const char usage[] =
    "usage: hcrt-bench ckpt --bytes SIZE --dir DIR [--json FILE] [--repeat N] [--local DIR] [--backend host|sim]\n"
    "       mpirun -np N [-x HCRT_FAKE_NODES=K] hcrt-bench ckpt --partner --bytes SIZE --dir DIR --local DIR\n"
    "              [--json FILE] [--repeat N]   (partner level off and on, restore after a lost node; ckpt_partner.c)\n";

int hcrt_bench_ckpt_main(int argc, char **argv)
{
    size_t bytes = 0;
    const char *dir = NULL, *json = NULL, *local = "", *backend = "host";
    int repeat = 3, rc = 1;
    bool partner = false;
    hcrt_context_t *ctx = NULL;
    hcrt_ckpt_t *ck = NULL;
    hcrt_device_t *host = NULL, *dev = NULL;
    char ckdir[4200] = "";
    unsigned char *state = NULL, *copy = NULL;
    void *dstate = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (i == 1 && strcmp(a, "ckpt") == 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "--partner") == 0) {
            partner = true;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "hcrt-bench ckpt: %s needs a value\n%s", a, usage);
            return 2;
        }
        if (strcmp(a, "--bytes") == 0 && parse_size(v, &bytes) == 0)
            i++;
        else if (strcmp(a, "--dir") == 0)
            dir = argv[++i];
        else if (strcmp(a, "--json") == 0)
            json = argv[++i];
        else if (strcmp(a, "--local") == 0)
            local = argv[++i];
        else if (strcmp(a, "--backend") == 0 && (strcmp(v, "host") == 0 || strcmp(v, "sim") == 0))
            backend = argv[++i];
        else if (strcmp(a, "--repeat") == 0 && atoi(v) > 0 && atoi(v) <= 100)
            repeat = atoi(argv[++i]);
        else {
            fprintf(stderr, "hcrt-bench ckpt: bad argument '%s %s'\n%s", a, v, usage);
            return 2;
        }
    }
    if (bytes == 0 || dir == NULL) {
        fprintf(stderr, "hcrt-bench ckpt: --bytes (at least 4K) and --dir are required\n%s", usage);
        return 2;
    }
    if (partner)
        return hcrt_bench_ckpt_partner_main(bytes, dir, local, json, repeat);

    hcrt_context_params_t cp;
    hcrt_context_params_init(&cp);
    cp.flags = HCRT_INIT_NO_MPI;
    cp.backends = strcmp(backend, "sim") == 0 ? "cpu,sim" : "cpu";
    if (hcrt_init(&cp, &ctx) != HCRT_OK) {
        fprintf(stderr, "hcrt-bench ckpt: %s\n", hcrt_last_error(NULL));
        return 1;
    }
#define BENCH_CHECK(call)                                                                            \
    do {                                                                                             \
        hcrt_status_t s_ = (call);                                                                   \
        if (s_ != HCRT_OK) {                                                                         \
            fprintf(stderr, "hcrt-bench ckpt: %s: %s: %s\n", #call, hcrt_status_name(s_),            \
                    hcrt_last_error(ctx));                                                           \
            goto out;                                                                                \
        }                                                                                            \
    } while (0)
    BENCH_CHECK(hcrt_device_host(ctx, &host));
    dev = host;
    if (strcmp(backend, "sim") == 0)
        BENCH_CHECK(hcrt_device_find(ctx, "sim", 0, &dev));
    state = touched(bytes);
    copy = touched(bytes);
    if (state == NULL || copy == NULL) {
        fprintf(stderr, "hcrt-bench ckpt: cannot allocate 2 x %zu bytes\n", bytes);
        goto out;
    }
    for (size_t i = 0; i < bytes; i += 8) {
        uint64_t v = (uint64_t)i * 0x9E3779B97F4A7C15ull;
        memcpy(state + i, &v, bytes - i < 8 ? bytes - i : 8);
    }
    dstate = state;
    if (dev != host) {
        BENCH_CHECK(hcrt_mem_alloc(dev, bytes, &dstate));
        BENCH_CHECK(hcrt_memcpy(dev, dstate, host, state, bytes));
    }
    snprintf(ckdir, sizeof(ckdir), "%s/hcrt-bench-ckpt", dir);
    hcrt_ckpt_params_t p;
    hcrt_ckpt_params_init(&p);
    p.dir = ckdir;
    p.local_dir = local;
    p.keep = 1;
    p.partner = 0;
    BENCH_CHECK(hcrt_ckpt_open(ctx, NULL, &p, &ck));
    BENCH_CHECK(hcrt_ckpt_register(ck, "state", (hcrt_buffer_t){dev, dstate, bytes / 4, HCRT_F32}, 1,
                                   (uint64_t[]){bytes / 4}, NULL));
    int64_t last = -1;
    if (hcrt_ckpt_latest(ck, &last) != HCRT_OK)
        last = -1;
    /* Warm-up: allocates and touches the snapshot pool, creates the directories. */
    double t0 = hcrt_bench_now();
    BENCH_CHECK(hcrt_ckpt_save(ck, ++last, NULL, 0));
    double first_stall = hcrt_bench_now() - t0;
    BENCH_CHECK(hcrt_ckpt_wait(ck));

    double *stall = calloc((size_t)repeat, sizeof(double)), *mcpy = calloc((size_t)repeat, sizeof(double));
    double *persist = calloc((size_t)repeat, sizeof(double)), *raw = calloc((size_t)repeat, sizeof(double));
    double *restore = calloc((size_t)repeat, sizeof(double));
    if (!stall || !mcpy || !persist || !raw || !restore)
        goto out;
    for (int r = 0; r < repeat; r++) {
        t0 = hcrt_bench_now();
        memcpy(copy, state, bytes);
        mcpy[r] = hcrt_bench_now() - t0;

        t0 = hcrt_bench_now();
        BENCH_CHECK(hcrt_ckpt_save(ck, ++last, NULL, 0));
        double t1 = hcrt_bench_now();
        BENCH_CHECK(hcrt_ckpt_wait(ck));
        stall[r] = t1 - t0;
        persist[r] = hcrt_bench_now() - t1;
        /* Listing waits for the garbage collection that follows a commit, so that it does not run
         * under the next measurement. */
        size_t nsteps;
        BENCH_CHECK(hcrt_ckpt_list(ck, NULL, 0, &nsteps));

        raw[r] = raw_write(ckdir, copy, bytes);
        if (raw[r] < 0) {
            fprintf(stderr, "hcrt-bench ckpt: raw write to %s failed: %s\n", ckdir, strerror(errno));
            goto out;
        }

        /* Restore as after a restart: a fresh checkpointer, so that nothing comes from the memory of
         * the one that saved; the files are read from DIR (or --local) and every chunk verified. */
        hcrt_ckpt_t *fresh = NULL;
        int64_t got;
        BENCH_CHECK(hcrt_ckpt_open(ctx, NULL, &p, &fresh));
        hcrt_status_t st = hcrt_ckpt_register(fresh, "state", (hcrt_buffer_t){dev, dstate, bytes / 4, HCRT_F32}, 1,
                                              (uint64_t[]){bytes / 4}, NULL);
        t0 = hcrt_bench_now();
        if (st == HCRT_OK)
            st = hcrt_ckpt_restore(fresh, HCRT_CKPT_LATEST, NULL, 0, NULL, &got);
        restore[r] = hcrt_bench_now() - t0;
        hcrt_ckpt_close(fresh);
        BENCH_CHECK(st);
    }
    double m_stall = hcrt_bench_median(stall, repeat), m_mcpy = hcrt_bench_median(mcpy, repeat);
    double m_persist = hcrt_bench_median(persist, repeat), m_raw = hcrt_bench_median(raw, repeat);
    double m_restore = hcrt_bench_median(restore, repeat);
    double gb = (double)bytes / 1e9;
    printf("# hcrt-bench ckpt: %zu bytes (%.3f GiB), %s state, dir %s%s%s, median of %d\n", bytes,
           (double)bytes / (1 << 30), backend, dir, local[0] ? ", node-local " : "", local, repeat);
    printf("%-28s %10s %10s %s\n", "", "seconds", "GB/s", "vs reference");
    printf("%-28s %10.4f %10.2f\n", "memcpy of the state", m_mcpy, gb / m_mcpy);
    printf("%-28s %10.4f %10.2f %6.2fx memcpy time (target <= 1.5)\n", "save stall", m_stall, gb / m_stall,
           m_stall / m_mcpy);
    printf("%-28s %10.4f %10.2f\n", "raw write+fsync", m_raw, gb / m_raw);
    printf("%-28s %10.4f %10.2f %6.2fx raw write throughput (target >= 0.9)\n", "persist (to commit)", m_persist,
           gb / m_persist, m_raw / m_persist);
    printf("%-28s %10.4f %10.2f %6.2fx memcpy speed (target >= 0.5)\n", "restore (verified)", m_restore,
           gb / m_restore, m_mcpy / m_restore);
    printf("%-28s %10.4f            (allocates and touches the snapshot pool)\n", "first save stall", first_stall);
    if (json) {
        FILE *f = fopen(json, "w");
        if (f == NULL) {
            fprintf(stderr, "hcrt-bench ckpt: cannot write %s: %s\n", json, strerror(errno));
            goto out;
        }
        fprintf(f, "{\n  \"bytes\": %zu,\n  \"stall_s\": %.6f,\n  \"memcpy_s\": %.6f,\n  \"persist_s\": %.6f,\n"
                   "  \"persist_gbs\": %.4f,\n  \"raw_write_gbs\": %.4f,\n  \"restore_s\": %.6f,\n"
                   "  \"first_stall_s\": %.6f,\n  \"repeat\": %d,\n  \"backend\": \"%s\"\n}\n",
                bytes, m_stall, m_mcpy, m_persist, gb / m_persist, gb / m_raw, m_restore, first_stall, repeat,
                backend);
        fclose(f);
    }
    rc = 0;
    free(stall);
    free(mcpy);
    free(persist);
    free(raw);
    free(restore);
out:
    hcrt_ckpt_close(ck);
    /* The benchmark's checkpoints are scratch: leave DIR as it was. */
    if (ckdir[0])
        nftw(ckdir, hcrt_bench_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (dev != host && dstate)
        hcrt_mem_free(dev, dstate);
    if (state)
        munmap(state, bytes);
    if (copy)
        munmap(copy, bytes);
    hcrt_finalize(ctx);
    return rc;
}

/*
 * test_run_api - the restart loop's runtime API (hcrt/run.h) in one process without MPI: what the
 * heartbeat file and the failure record contain, that nothing is written without HCRT_RUN_DIR, that
 * every argument is checked by name, and that a stop comes from the stop file or a caught SIGTERM.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "hcrt/comm.h"
#include "test.h"

static char base[] = "/tmp/hcrt-run-api-XXXXXX";

static hcrt_context_t *init_ctx(void)
{
    hcrt_context_params_t p;
    hcrt_context_t *ctx = NULL;
    hcrt_context_params_init(&p);
    p.flags = HCRT_INIT_NO_MPI;
    p.backends = "cpu";
    REQUIRE_OK(NULL, hcrt_init(&p, &ctx));
    return ctx;
}

static double now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;
    if (f != NULL) {
        n = fread(buf, 1, cap - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
    return n;
}

#define CHECK_ARG_ERROR(ctx, call, name)                                                                               \
    do {                                                                                                               \
        CHECK_STATUS(ctx, call, HCRT_ERR_INVALID_ARG);                                                                 \
        CHECK_MSG(strstr(hcrt_last_error(ctx), "'" name "'") != NULL, "error '%s' does not name %s",                   \
                  hcrt_last_error(ctx), name);                                                                         \
    } while (0)

/* Without HCRT_RUN_DIR every call is a no-op that succeeds; bad arguments are refused by name. */
static void without_run_dir(void)
{
    unsetenv("HCRT_RUN_DIR");
    unsetenv("HCRT_RUN_ATTEMPT");
    hcrt_context_t *ctx = init_ctx();
    hcrt_comm_t *comm;
    bool stop = true;
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &comm));
    CHECK_OK(ctx, hcrt_run_heartbeat(ctx, 1, HCRT_RUN_STEP));
    CHECK_OK(ctx, hcrt_run_note_failure(ctx, HCRT_EXIT_TIMEOUT, NULL, "nothing written"));
    CHECK_OK(ctx, hcrt_run_should_stop(comm, &stop));
    CHECK(!stop);

    CHECK_ARG_ERROR(NULL, hcrt_run_heartbeat(NULL, 1, HCRT_RUN_STEP), "ctx");
    CHECK_ARG_ERROR(ctx, hcrt_run_heartbeat(ctx, -1, HCRT_RUN_STEP), "step");
    CHECK_ARG_ERROR(ctx, hcrt_run_heartbeat(ctx, 1, (hcrt_run_event_t)4), "event");
    CHECK_ARG_ERROR(ctx, hcrt_run_heartbeat(ctx, 1, (hcrt_run_event_t)-1), "event");
    CHECK_ARG_ERROR(NULL, hcrt_run_note_failure(NULL, 1, NULL, NULL), "ctx");
    CHECK_ARG_ERROR(ctx, hcrt_run_note_failure(ctx, 256, NULL, NULL), "exit_status");
    CHECK_ARG_ERROR(ctx, hcrt_run_note_failure(ctx, -1, NULL, NULL), "exit_status");
    CHECK_ARG_ERROR(NULL, hcrt_run_catch_signals(NULL), "ctx");
    CHECK_ARG_ERROR(NULL, hcrt_run_should_stop(NULL, &stop), "comm");
    CHECK_ARG_ERROR(ctx, hcrt_run_should_stop(comm, NULL), "stop");
    hcrt_comm_destroy(comm);
    hcrt_finalize(ctx);
}

/* The heartbeat file: header, then one line per event in order, stamped with the wall clock. */
static void heartbeats_and_records(void)
{
    char run[256], path[512], text[4096], host[256] = "";
    gethostname(host, sizeof(host) - 1);
    snprintf(run, sizeof(run), "%s/run", base); /* missing: the runtime creates it */
    setenv("HCRT_RUN_DIR", run, 1);
    setenv("HCRT_RUN_ATTEMPT", "3", 1);
    hcrt_context_t *ctx = init_ctx();
    double before = now();
    CHECK_OK(ctx, hcrt_run_heartbeat(ctx, 0, HCRT_RUN_READY));
    CHECK_OK(ctx, hcrt_run_heartbeat(ctx, 1, HCRT_RUN_STEP));
    CHECK_OK(ctx, hcrt_run_heartbeat(ctx, 1, HCRT_RUN_SAVED));
    CHECK_OK(ctx, hcrt_run_heartbeat(ctx, 1, HCRT_RUN_COMMITTED));
    CHECK_OK(ctx, hcrt_run_heartbeat(ctx, 2, HCRT_RUN_STEP));
    double after = now();

    snprintf(path, sizeof(path), "%s/attempt-3/rank-0.hb", run);
    read_file(path, text, sizeof(text));
    char header[512];
    snprintf(header, sizeof(header), "hcrt-heartbeat 1 rank=0 size=1 pid=%ld node=%s attempt=3\n", (long)getpid(),
             host);
    CHECK_MSG(strncmp(text, header, strlen(header)) == 0, "header '%.*s', expected '%s'", 80, text, header);
    const char kinds[] = "RSVCS";
    const long long steps[] = {0, 1, 1, 1, 2};
    char *line = strchr(text, '\n');
    double prev = before - 0.001;
    for (int i = 0; i < 5 && line != NULL; i++) {
        char kind = 0;
        long long step = -1;
        double t = 0;
        CHECK(sscanf(line + 1, "%c %lld %lf", &kind, &step, &t) == 3);
        CHECK_MSG(kind == kinds[i] && step == steps[i], "line %d is '%c %lld'", i, kind, step);
        CHECK_MSG(t >= prev && t <= after + 0.001, "line %d stamped %.6f outside [%.6f, %.6f]", i, t, before, after);
        prev = t;
        line = strchr(line + 1, '\n');
    }
    CHECK(line != NULL && line[1] == '\0');

    /* The failure record: the first one of a rank is kept; "" names the rank's own node. */
    CHECK_OK(ctx, hcrt_run_note_failure(ctx, HCRT_EXIT_PEER_DEAD, "", "rank 1 died\nduring allreduce #4"));
    CHECK_OK(ctx, hcrt_run_note_failure(ctx, HCRT_EXIT_DEVICE, "other", "a consequence"));
    snprintf(path, sizeof(path), "%s/attempt-3/fail-0", run);
    read_file(path, text, sizeof(text));
    char expect[1024];
    snprintf(expect, sizeof(expect),
             "\nrank=0\nnode=%s\nstatus=125\nlost_node=%s\nwhat=rank 1 died during allreduce #4\n", host, host);
    CHECK_MSG(strncmp(text, "time=", 5) == 0 && strstr(text, expect) != NULL, "record:\n%s", text);
    double t = atof(text + 5);
    CHECK(t >= before && t <= now() + 0.001);
    snprintf(path, sizeof(path), "%s/attempt-3/.fail-0.tmp", run);
    CHECK(access(path, F_OK) != 0);

    /* The stop file, then a caught SIGTERM (the process survives it). */
    hcrt_comm_t *comm;
    bool stop = true;
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &comm));
    CHECK_OK(ctx, hcrt_run_should_stop(comm, &stop));
    CHECK(!stop);
    snprintf(path, sizeof(path), "%s/stop", run);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f)
        fclose(f);
    CHECK_OK(ctx, hcrt_run_should_stop(comm, &stop));
    CHECK(stop);
    unlink(path);
    CHECK_OK(ctx, hcrt_run_should_stop(comm, &stop));
    CHECK(!stop);
    CHECK_OK(ctx, hcrt_run_catch_signals(ctx));
    CHECK_OK(ctx, hcrt_run_catch_signals(ctx)); /* again: nothing more */
    raise(SIGTERM);
    CHECK_OK(ctx, hcrt_run_should_stop(comm, &stop));
    CHECK(stop);
    hcrt_comm_destroy(comm);
    hcrt_finalize(ctx);
}

/* A run directory that cannot be created is an I/O error naming it; a bad attempt number a config error. */
static void bad_settings(void)
{
    char blocker[256], run[300];
    snprintf(blocker, sizeof(blocker), "%s/file", base);
    FILE *f = fopen(blocker, "w");
    if (f)
        fclose(f);
    snprintf(run, sizeof(run), "%s/run", blocker);
    setenv("HCRT_RUN_DIR", run, 1);
    setenv("HCRT_RUN_ATTEMPT", "0", 1);
    hcrt_context_t *ctx = init_ctx();
    CHECK_STATUS(ctx, hcrt_run_heartbeat(ctx, 1, HCRT_RUN_STEP), HCRT_ERR_IO);
    CHECK_MSG(strstr(hcrt_last_error(ctx), run) != NULL, "error '%s' does not name %s", hcrt_last_error(ctx), run);
    CHECK_STATUS(ctx, hcrt_run_note_failure(ctx, 1, NULL, NULL), HCRT_ERR_IO);
    hcrt_finalize(ctx);

    setenv("HCRT_RUN_ATTEMPT", "first", 1);
    hcrt_context_params_t p;
    hcrt_context_params_init(&p);
    p.flags = HCRT_INIT_NO_MPI;
    CHECK_STATUS(NULL, hcrt_init(&p, &ctx), HCRT_ERR_CONFIG);
    CHECK(strstr(hcrt_last_error(NULL), "HCRT_RUN_ATTEMPT") != NULL);
    unsetenv("HCRT_RUN_ATTEMPT");
    unsetenv("HCRT_RUN_DIR");
}

int main(void)
{
    if (mkdtemp(base) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    without_run_dir();
    heartbeats_and_records();
    bad_settings();
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", base);
    TEST_DONE();
}

/*
 * tests/plugin/test_sim_deref.c - sim device memory is not host-addressable: a child process that
 * dereferences a pointer from hcrt_mem_alloc() on a sim device must die by SIGSEGV (reads and writes
 * both), while the same bytes stay reachable through hcrt_memcpy().
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hcrt/hcrt.h"
#include "test.h"

/* Forks; the child touches p (read or write) and would exit 0 if that worked. */
static void expect_segv(volatile unsigned char *p, bool write)
{
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        if (write)
            p[0] = 1;
        else if (p[0] == 0x42)
            _exit(2);
        _exit(0);
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "child %s a sim pointer: %s %d",
              write ? "writing" : "reading", WIFSIGNALED(status) ? "killed by signal" : "exited with",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

int main(void)
{
    hcrt_context_params_t params;
    hcrt_context_params_init(&params);
    params.flags = HCRT_INIT_NO_MPI;
    hcrt_context_t *ctx = NULL;
    REQUIRE_OK(NULL, hcrt_init(&params, &ctx));
    hcrt_device_t *sim = NULL, *host = NULL;
    REQUIRE_OK(ctx, hcrt_device_find(ctx, "sim", 0, &sim));
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    void *p = NULL;
    REQUIRE_OK(ctx, hcrt_mem_alloc(sim, 4096, &p));
    unsigned char in[16], out[16];
    memset(in, 0x42, sizeof(in));
    CHECK_OK(ctx, hcrt_memcpy(sim, p, host, in, sizeof(in)));
    CHECK_OK(ctx, hcrt_memcpy(host, out, sim, p, sizeof(out)));
    CHECK(memcmp(in, out, sizeof(in)) == 0);
    expect_segv(p, false);
    expect_segv(p, true);
    expect_segv((unsigned char *)p + 1000, false);
    CHECK_OK(ctx, hcrt_mem_free(sim, p));
    CHECK_OK(NULL, hcrt_finalize(ctx));
    TEST_DONE();
}

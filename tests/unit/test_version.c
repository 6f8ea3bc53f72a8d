/*
 * tests/unit/test_version.c - the header's version equals the library's, and hcrt_init refuses callers
 * compiled against an incompatible API, or with bad params, by name.
 */
#include <string.h>

#include "hcrt/hcrt.h"
#include "test.h"

int main(void)
{
    int major = -1, minor = -1, patch = -1;
    hcrt_version(&major, &minor, &patch);
    CHECK(major == HCRT_API_MAJOR);
    CHECK(minor == HCRT_API_MINOR);
    CHECK(patch == HCRT_API_PATCH);
    CHECK(hcrt_api_version() == HCRT_API_VERSION);
    hcrt_version(NULL, NULL, NULL); /* any pointer may be NULL */

    hcrt_context_params_t p;
    hcrt_context_t *ctx = NULL;

    /* A newer minor than the library's is refused, as is another major. */
    hcrt_context_params_init(&p);
    p.flags = HCRT_INIT_NO_MPI;
    p.api_version = (HCRT_API_MAJOR << 16) | (HCRT_API_MINOR + 1);
    CHECK_STATUS(NULL, hcrt_init(&p, &ctx), HCRT_ERR_VERSION);
    CHECK(ctx == NULL);
    CHECK(strstr(hcrt_last_error(NULL), "compiled against") != NULL);
    p.api_version = (uint32_t)(HCRT_API_MAJOR + 1) << 16;
    CHECK_STATUS(NULL, hcrt_init(&p, &ctx), HCRT_ERR_VERSION);

    /* Uninitialised params and unknown flags are named. */
    p.api_version = HCRT_API_VERSION;
    p.struct_size = 3;
    CHECK_STATUS(NULL, hcrt_init(&p, &ctx), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(hcrt_last_error(NULL), "struct_size") != NULL);
    hcrt_context_params_init(&p);
    p.flags = 0x80 | HCRT_INIT_NO_MPI;
    CHECK_STATUS(NULL, hcrt_init(&p, &ctx), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(hcrt_last_error(NULL), "flags") != NULL);
    CHECK_STATUS(NULL, hcrt_init(&p, NULL), HCRT_ERR_INVALID_ARG);

    /* An older caller whose params struct ends before `backends` still works. */
    hcrt_context_params_init(&p);
    p.flags = HCRT_INIT_NO_MPI;
    p.struct_size = offsetof(hcrt_context_params_t, backends);
    REQUIRE_OK(NULL, hcrt_init(&p, &ctx));
    int rank = -1, size = -1;
    CHECK_OK(ctx, hcrt_context_rank(ctx, &rank, &size));
    CHECK(rank == 0 && size == 1);
    CHECK_OK(ctx, hcrt_finalize(ctx));
    CHECK_OK(NULL, hcrt_finalize(NULL));
    TEST_DONE();
}

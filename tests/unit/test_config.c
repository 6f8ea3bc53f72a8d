/*
 * tests/unit/test_config.c - the config table: every variable documented, defaults parse, values from the
 * environment take effect, and a bad value of each type makes hcrt_init fail naming the variable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcrt/hcrt.h"
#include "test.h"

static hcrt_status_t try_init(hcrt_context_t **ctx)
{
    hcrt_context_params_t p;
    hcrt_context_params_init(&p);
    p.flags = HCRT_INIT_NO_MPI;
    *ctx = NULL;
    return hcrt_init(&p, ctx);
}

/* Sets name=value, expects hcrt_init to fail with ERR_CONFIG and a message naming the variable. */
static void expect_bad(const char *name, const char *value)
{
    setenv(name, value, 1);
    hcrt_context_t *ctx = NULL;
    hcrt_status_t st = try_init(&ctx);
    CHECK_MSG(st == HCRT_ERR_CONFIG, "%s=%s: got %s", name, value, hcrt_status_name(st));
    CHECK_MSG(strstr(hcrt_last_error(NULL), name) != NULL, "%s=%s: message does not name it: %s", name, value,
              hcrt_last_error(NULL));
    CHECK_MSG(strstr(hcrt_last_error(NULL), value) != NULL || value[0] == '\0',
              "%s=%s: message does not quote the value: %s", name, value, hcrt_last_error(NULL));
    if (ctx)
        hcrt_finalize(ctx);
    unsetenv(name);
}

static void expect_value(hcrt_context_t *ctx, const char *name, const char *want)
{
    const char *v = NULL;
    CHECK_OK(ctx, hcrt_config_get(ctx, name, &v));
    CHECK_MSG(v && strcmp(v, want) == 0, "%s = '%s', expected '%s'", name, v ? v : "(null)", want);
}

int main(void)
{
    /* Every entry has a name, a help text, a type, and a default that parses (init with a clean env). */
    size_t n = hcrt_config_count();
    CHECK(n >= 10);
    for (size_t i = 0; i < n; i++) {
        hcrt_config_entry_t e = {.struct_size = sizeof(e)};
        CHECK_OK(NULL, hcrt_config_get_entry(NULL, i, &e));
        CHECK(e.name && strncmp(e.name, "HCRT_", 5) == 0);
        CHECK_MSG(e.help && strlen(e.help) > 10, "%s has no help", e.name);
        CHECK(e.def != NULL && e.type != NULL && e.value != NULL);
        unsetenv(e.name);
    }
    hcrt_config_entry_t e = {.struct_size = sizeof(e)};
    CHECK_STATUS(NULL, hcrt_config_get_entry(NULL, n, &e), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(NULL, hcrt_config_get_entry(NULL, 0, NULL), HCRT_ERR_INVALID_ARG);
    e.struct_size = 4;
    CHECK_STATUS(NULL, hcrt_config_get_entry(NULL, 0, &e), HCRT_ERR_INVALID_ARG);

    hcrt_context_t *ctx = NULL;
    REQUIRE_OK(NULL, try_init(&ctx));
    expect_value(ctx, "HCRT_LOG_LEVEL", "warn");
    expect_value(ctx, "HCRT_TIMEOUT", "300");
    const char *v;
    CHECK_STATUS(ctx, hcrt_config_get(ctx, "HCRT_NO_SUCH_THING", &v), HCRT_ERR_NOT_FOUND);
    CHECK(strstr(hcrt_last_error(ctx), "HCRT_NO_SUCH_THING") != NULL);
    CHECK_STATUS(ctx, hcrt_config_get(ctx, NULL, &v), HCRT_ERR_INVALID_ARG);
    hcrt_finalize(ctx);

    /* Values from the environment, of each type, take effect and show as set. */
    setenv("HCRT_TIMEOUT", "2.5", 1);
    setenv("HCRT_SIM_MEMORY", "64M", 1);
    setenv("HCRT_CHECK_CALLS", "yes", 1);
    setenv("HCRT_ALGO", "ring", 1);
    setenv("HCRT_CKPT_KEEP", "5", 1);
    REQUIRE_OK(NULL, try_init(&ctx));
    expect_value(ctx, "HCRT_TIMEOUT", "2.5");
    expect_value(ctx, "HCRT_SIM_MEMORY", "64M");
    expect_value(ctx, "HCRT_ALGO", "ring");
    int idx = -1;
    for (size_t i = 0; i < n; i++) {
        hcrt_config_entry_t x = {.struct_size = sizeof(x)};
        hcrt_config_get_entry(ctx, i, &x);
        if (strcmp(x.name, "HCRT_CKPT_KEEP") == 0) {
            idx = (int)i;
            CHECK(x.is_set);
            CHECK(strcmp(x.value, "5") == 0);
            CHECK(strcmp(x.def, "2") == 0);
        }
    }
    CHECK(idx >= 0);
    hcrt_finalize(ctx);
    unsetenv("HCRT_TIMEOUT");
    unsetenv("HCRT_SIM_MEMORY");
    unsetenv("HCRT_CHECK_CALLS");
    unsetenv("HCRT_ALGO");
    unsetenv("HCRT_CKPT_KEEP");

    /* Bad values of each type, named. */
    expect_bad("HCRT_TIMEOUT", "abc");        /* double: not a number */
    expect_bad("HCRT_TIMEOUT", "-1");         /* double: out of range */
    expect_bad("HCRT_TIMEOUT", "5s");         /* trailing garbage */
    expect_bad("HCRT_CKPT_KEEP", "0");        /* int: below range */
    expect_bad("HCRT_CKPT_KEEP", "2.5");      /* int: not an integer */
    expect_bad("HCRT_SIM_DEVICES", "99999");  /* int: above range */
    expect_bad("HCRT_SIM_MEMORY", "12Q");     /* size: bad suffix */
    expect_bad("HCRT_SIM_MEMORY", "lots");    /* size: not a number */
    expect_bad("HCRT_CHECK_CALLS", "maybe");  /* bool */
    expect_bad("HCRT_LOG_LEVEL", "loud");     /* enum */
    expect_bad("HCRT_ALGO", "bogus");         /* enum */
    expect_bad("HCRT_BIND", "everywhere");    /* enum */
    expect_bad("HCRT_SIM_SPEED", "0");        /* double below range */

    /* Sizes with suffixes within range are accepted. */
    setenv("HCRT_CHUNK_SIZE", "256KiB", 1);
    REQUIRE_OK(NULL, try_init(&ctx));
    expect_value(ctx, "HCRT_CHUNK_SIZE", "256KiB");
    hcrt_finalize(ctx);
    unsetenv("HCRT_CHUNK_SIZE");
    TEST_DONE();
}

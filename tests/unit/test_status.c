/*
 * tests/unit/test_status.c - the status list, dtype and op names: complete, unique, round-tripping.
 */
#include <string.h>

#include "hcrt/hcrt.h"
#include "test.h"

int main(void)
{
    /* Every code from 0 down has a distinct name and text; the next one is unknown. */
    for (int i = 0; i < HCRT_STATUS_COUNT; i++) {
        hcrt_status_t s = (hcrt_status_t)-i;
        const char *name = hcrt_status_name(s);
        const char *text = hcrt_status_string(s);
        CHECK_MSG(strcmp(name, "UNKNOWN") != 0, "status %d has no name", -i);
        CHECK_MSG(strcmp(text, "unknown status") != 0 && text[0] != '\0', "status %d has no text", -i);
        for (int j = 0; j < i; j++) {
            CHECK_MSG(strcmp(name, hcrt_status_name((hcrt_status_t)-j)) != 0, "status %d and %d share a name", -i, -j);
            CHECK_MSG(strcmp(text, hcrt_status_string((hcrt_status_t)-j)) != 0, "status %d and %d share a text", -i,
                      -j);
        }
    }
    CHECK(strcmp(hcrt_status_name((hcrt_status_t)-HCRT_STATUS_COUNT), "UNKNOWN") == 0);
    CHECK(strcmp(hcrt_status_string((hcrt_status_t)5), "unknown status") == 0);
    CHECK(strcmp(hcrt_status_name(HCRT_OK), "OK") == 0);
    CHECK(strcmp(hcrt_status_name(HCRT_ERR_TIMEOUT), "ERR_TIMEOUT") == 0);
    CHECK(strcmp(hcrt_status_string(HCRT_ERR_DEVICE_OOM), "out of device memory") == 0);

    /* dtypes: sizes, names, parsing of names and aliases, invalid values. */
    static const size_t sizes[HCRT_DTYPE_COUNT] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
    for (int i = 0; i < HCRT_DTYPE_COUNT; i++) {
        CHECK(hcrt_dtype_size((hcrt_dtype_t)i) == sizes[i]);
        const char *n = hcrt_dtype_name((hcrt_dtype_t)i);
        CHECK(n != NULL);
        hcrt_dtype_t back = HCRT_DTYPE_COUNT;
        CHECK_OK(NULL, hcrt_dtype_from_name(n, &back));
        CHECK(back == (hcrt_dtype_t)i);
    }
    hcrt_dtype_t d = HCRT_I8;
    CHECK(hcrt_dtype_size(HCRT_DTYPE_COUNT) == 0);
    CHECK(hcrt_dtype_size((hcrt_dtype_t)-1) == 0);
    CHECK(hcrt_dtype_name(HCRT_DTYPE_COUNT) == NULL);
    CHECK_OK(NULL, hcrt_dtype_from_name("float", &d));
    CHECK(d == HCRT_F32);
    CHECK_OK(NULL, hcrt_dtype_from_name("bfloat16", &d));
    CHECK(d == HCRT_BF16);
    d = HCRT_I8;
    CHECK_STATUS(NULL, hcrt_dtype_from_name("f33", &d), HCRT_ERR_INVALID_ARG);
    CHECK(d == HCRT_I8); /* outputs untouched on failure */
    CHECK(strstr(hcrt_last_error(NULL), "f33") != NULL);
    CHECK_STATUS(NULL, hcrt_dtype_from_name(NULL, &d), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(hcrt_last_error(NULL), "'name'") != NULL);
    CHECK_STATUS(NULL, hcrt_dtype_from_name("f32", NULL), HCRT_ERR_INVALID_ARG);

    /* ops */
    for (int i = 0; i < HCRT_OP_COUNT; i++) {
        const char *n = hcrt_op_name((hcrt_op_t)i);
        CHECK(n != NULL);
        hcrt_op_t back = HCRT_OP_COUNT;
        CHECK_OK(NULL, hcrt_op_from_name(n, &back));
        CHECK(back == (hcrt_op_t)i);
    }
    CHECK(hcrt_op_name(HCRT_OP_COUNT) == NULL);
    hcrt_op_t op;
    CHECK_STATUS(NULL, hcrt_op_from_name("mean", &op), HCRT_ERR_INVALID_ARG);
    TEST_DONE();
}

/*
 * runtime/status.c - names and texts of status codes, dtypes and ops, all generated from the lists in
 * the public headers so they cannot drift.
 */
#include <string.h>
#include <strings.h>

#include "runtime/internal.h"

const char *hcrt_status_name(hcrt_status_t status)
{
    switch (status) {
#define HCRT_STATUS_NAME_(name, value, text)                                                         \
    case HCRT_##name:                                                                                \
        return #name;
        HCRT_STATUS_MAP(HCRT_STATUS_NAME_)
#undef HCRT_STATUS_NAME_
    }
    return "UNKNOWN";
}

const char *hcrt_status_string(hcrt_status_t status)
{
    switch (status) {
#define HCRT_STATUS_TEXT_(name, value, text)                                                         \
    case HCRT_##name:                                                                                \
        return text;
        HCRT_STATUS_MAP(HCRT_STATUS_TEXT_)
#undef HCRT_STATUS_TEXT_
    }
    return "unknown status";
}

static const struct {
    const char *name;
    size_t size;
} dtype_info[HCRT_DTYPE_COUNT] = {
    [HCRT_I8] = {"i8", 1},   [HCRT_U8] = {"u8", 1},     [HCRT_I32] = {"i32", 4}, [HCRT_U32] = {"u32", 4},
    [HCRT_I64] = {"i64", 8}, [HCRT_U64] = {"u64", 8},   [HCRT_F16] = {"f16", 2}, [HCRT_BF16] = {"bf16", 2},
    [HCRT_F32] = {"f32", 4}, [HCRT_F64] = {"f64", 8},
};

/* Other spellings users type, mapped onto the canonical names. */
static const struct {
    const char *alias;
    hcrt_dtype_t dtype;
} dtype_aliases[] = {
    {"int8", HCRT_I8},       {"uint8", HCRT_U8},     {"int32", HCRT_I32},    {"int", HCRT_I32},
    {"uint32", HCRT_U32},    {"int64", HCRT_I64},    {"long", HCRT_I64},     {"uint64", HCRT_U64},
    {"half", HCRT_F16},      {"float16", HCRT_F16},  {"bfloat16", HCRT_BF16}, {"float", HCRT_F32},
    {"float32", HCRT_F32},   {"double", HCRT_F64},   {"float64", HCRT_F64},
};

size_t hcrt_dtype_size(hcrt_dtype_t dtype)
{
    if ((unsigned)dtype >= HCRT_DTYPE_COUNT)
        return 0;
    return dtype_info[dtype].size;
}

const char *hcrt_dtype_name(hcrt_dtype_t dtype)
{
    if ((unsigned)dtype >= HCRT_DTYPE_COUNT)
        return NULL;
    return dtype_info[dtype].name;
}

hcrt_status_t hcrt_dtype_from_name(const char *name, hcrt_dtype_t *dtype)
{
    HCRT_CHECK_ARG(NULL, name != NULL, "name", "is NULL");
    HCRT_CHECK_ARG(NULL, dtype != NULL, "dtype", "is NULL");
    for (int i = 0; i < HCRT_DTYPE_COUNT; i++) {
        if (strcasecmp(name, dtype_info[i].name) == 0) {
            *dtype = (hcrt_dtype_t)i;
            return HCRT_OK;
        }
    }
    for (size_t i = 0; i < sizeof(dtype_aliases) / sizeof(dtype_aliases[0]); i++) {
        if (strcasecmp(name, dtype_aliases[i].alias) == 0) {
            *dtype = dtype_aliases[i].dtype;
            return HCRT_OK;
        }
    }
    return hcrt__error(NULL, HCRT_ERR_INVALID_ARG, "hcrt_dtype_from_name: unknown dtype '%s'", name);
}

static const char *const op_names[HCRT_OP_COUNT] = {
    [HCRT_OP_SUM] = "sum", [HCRT_OP_PROD] = "prod", [HCRT_OP_MIN] = "min",
    [HCRT_OP_MAX] = "max", [HCRT_OP_AVG] = "avg",
};

const char *hcrt_op_name(hcrt_op_t op)
{
    if ((unsigned)op >= HCRT_OP_COUNT)
        return NULL;
    return op_names[op];
}

hcrt_status_t hcrt_op_from_name(const char *name, hcrt_op_t *op)
{
    HCRT_CHECK_ARG(NULL, name != NULL, "name", "is NULL");
    HCRT_CHECK_ARG(NULL, op != NULL, "op", "is NULL");
    for (int i = 0; i < HCRT_OP_COUNT; i++) {
        if (strcasecmp(name, op_names[i]) == 0) {
            *op = (hcrt_op_t)i;
            return HCRT_OK;
        }
    }
    return hcrt__error(NULL, HCRT_ERR_INVALID_ARG, "hcrt_op_from_name: unknown op '%s'", name);
}

void hcrt_version(int *major, int *minor, int *patch)
{
    if (major)
        *major = HCRT_API_MAJOR;
    if (minor)
        *minor = HCRT_API_MINOR;
    if (patch)
        *patch = HCRT_API_PATCH;
}

uint32_t hcrt_api_version(void) { return HCRT_API_VERSION; }

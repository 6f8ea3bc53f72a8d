/*
 * runtime/trace_api.c - hcrt/trace.h: the application's events, checked and handed to the recorder.
 *
 * The arguments are checked whether or not tracing is on, so that a bad call fails the same way in a
 * traced run and an untraced one (args_json is parsed either way: a few microseconds, beside the
 * milliseconds of the compute it describes). A malformed object would make the whole merged file
 * unreadable, so it is refused rather than written; what is written is jansson's compact rendering.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hcrt/trace.h"
#include "runtime/trace.h"

#define NAME_MAX_ 255
#define CAT_MAX   63
#define ARGS_MAX  (64 * 1024)

bool hcrt_trace_enabled(const hcrt_context_t *ctx)
{
    return hcrt__trace_on(ctx);
}

double hcrt_trace_clock(void)
{
    return hcrt__trace_clock();
}

static hcrt_status_t check_common(const hcrt_context_t *ctx, const char *func, const char *name, const char *cat,
                                  const char *args_json)
{
    if (ctx == NULL)
        return hcrt__error(NULL, HCRT_ERR_INVALID_ARG, "%s: argument 'ctx' is NULL", func);
    if (name == NULL || name[0] == '\0' || strlen(name) > NAME_MAX_)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'name' is %s", func,
                           name == NULL      ? "NULL"
                           : name[0] == '\0' ? "empty"
                                             : "longer than 255 bytes");
    if (cat == NULL || cat[0] == '\0' || strlen(cat) > CAT_MAX)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'category' is %s", func,
                           cat == NULL      ? "NULL"
                           : cat[0] == '\0' ? "empty"
                                            : "longer than 63 bytes");
    if (args_json != NULL && strlen(args_json) > ARGS_MAX)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'args_json' is longer than 64 KiB", func);
    return HCRT_OK;
}

/* Parses args_json and gives back its compact text, which is what the trace stores. */
static hcrt_status_t compact_args(const hcrt_context_t *ctx, const char *func, const char *args_json, char **out)
{
    *out = NULL;
    if (args_json == NULL)
        return HCRT_OK;
    json_error_t jerr;
    json_t *j = json_loads(args_json, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'args_json' is not a JSON object: %s", func,
                           j == NULL ? jerr.text : "another JSON value");
    }
    *out = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(j);
    if (*out == NULL)
        return hcrt__error(ctx, HCRT_ERR_NO_MEMORY, "%s: out of memory", func);
    return HCRT_OK;
}

hcrt_status_t hcrt_trace_complete(hcrt_context_t *ctx, const char *name, const char *category, double start,
                                  double duration, const char *args_json)
{
    HCRT_CHECK(check_common(ctx, __func__, name, category, args_json));
    HCRT_CHECK_ARG(ctx, isfinite(start) && start >= 0, "start", "is negative or not finite");
    HCRT_CHECK_ARG(ctx, isfinite(duration) && duration >= 0, "duration", "is negative or not finite");
    char *args = NULL;
    HCRT_CHECK(compact_args(ctx, __func__, args_json, &args));
    hcrt__trace_event_json(ctx, HCRT__LANE_APP, 'X', name, category, start, duration, args);
    free(args);
    return HCRT_OK;
}

hcrt_status_t hcrt_trace_instant(hcrt_context_t *ctx, const char *name, const char *category, const char *args_json)
{
    HCRT_CHECK(check_common(ctx, __func__, name, category, args_json));
    char *args = NULL;
    HCRT_CHECK(compact_args(ctx, __func__, args_json, &args));
    hcrt__trace_event_json(ctx, HCRT__LANE_APP, 'i', name, category, hcrt__trace_clock(), 0, args);
    free(args);
    return HCRT_OK;
}

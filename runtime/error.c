/*
 * runtime/error.c - detail of the most recent failure (hcrt_last_error).
 *
 * The detail is kept per thread: the thread that got the failing status is the one that asks for the
 * detail, and a per-thread slot needs no locking. A message records which context it came from, so a
 * context never reports another context's failure; failures without a context (argument checks that
 * happen before one is known, hcrt_init) are visible through every context of the thread.
 */
#include <stdio.h>
#include <string.h>

#include "runtime/internal.h"

static _Thread_local char tls_msg[1024];
static _Thread_local const hcrt_context_t *tls_owner;

hcrt_status_t hcrt__error(const hcrt_context_t *ctx, hcrt_status_t status, const char *fmt, ...)
{
    /* Formatted aside first: callers often pass the previous detail, hcrt_last_error(), as an argument. */
    char msg[sizeof(tls_msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    memcpy(tls_msg, msg, sizeof(msg));
    tls_owner = ctx;
    HCRT_DEBUG("error", "%s (%s)", tls_msg, hcrt_status_name(status));
    return status;
}

const char *hcrt_last_error(const hcrt_context_t *ctx)
{
    if (ctx != NULL && tls_owner != NULL && tls_owner != ctx)
        return "";
    return tls_msg;
}

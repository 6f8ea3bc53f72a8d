/*
 * runtime/watchdog.c - the deadline of a thread that blocks in a device wait.
 *
 * Waiting for a device's work (an event of a staging copy) is fastest in hcrt_event_sync: the device's
 * own thread wakes the waiter the moment the work is done, where polling either spins on cores the
 * device's thread needs (sim, host-run streams) or notices the completion late. But a hung device would
 * never let hcrt_event_sync return. So the waiter registers its wait here first, and one watchdog thread
 * per process looks at the registered waits four times a second: a wait past its deadline, or whose
 * device went lost, ends the job through the fail path (the default exit policy). The waiter itself is
 * never interrupted, so under HCRT_ON_FAILURE=return, where the call must come back with an error, the
 * waiters poll instead (hcrt__watch_arm declines).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "runtime/internal.h"

#define WATCH_PERIOD_S 0.25

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;
static bool watch_running;
static hcrt__watch_t *watch_head;

/* Called with watch_lock held; ends the job when a wait is past its deadline or its device is lost. */
static void check(hcrt__watch_t *w, double now)
{
    if (w->timeout > 0 && now - w->start > w->timeout)
        hcrt__fail_abort(w->ctx, w->dev, true, HCRT_EXIT_TIMEOUT,
                         "%s did not complete within HCRT_TIMEOUT=%g s (waited "
                         "%.1f s): the device is hung or far too slow",
                         w->what, w->timeout, now - w->start);
    if (now - w->start > 2 * WATCH_PERIOD_S && hcrt__device_poll(w->dev) != HCRT_OK)
        hcrt__fail_abort(w->ctx, w->dev, true, HCRT_EXIT_DEVICE, "%s: %s", w->what, hcrt_last_error(w->ctx));
}

static void *watch_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec ts = {0, (long)(WATCH_PERIOD_S * 1e9)};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&watch_lock);
        double now = hcrt__now();
        for (hcrt__watch_t *w = watch_head; w != NULL; w = w->next)
            check(w, now);
        pthread_mutex_unlock(&watch_lock);
    }
    return NULL;
}

static void watch_start(void)
{
    pthread_t t;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    watch_running = pthread_create(&t, &attr, watch_main, NULL) == 0;
    pthread_attr_destroy(&attr);
    if (!watch_running)
        HCRT_WARN("fail", "cannot start the watchdog thread: device waits will poll");
}

bool hcrt__watch_arm(hcrt__watch_t *w, hcrt_context_t *ctx, hcrt_device_t *dev, double start, double timeout,
                     const char *fmt, ...)
{
    if (ctx == NULL || ctx->fail_return || dev == NULL)
        return false;
    pthread_once(&watch_once, watch_start);
    if (!watch_running)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->what, sizeof(w->what), fmt, ap);
    va_end(ap);
    w->ctx = ctx;
    w->dev = dev;
    w->start = start;
    w->timeout = timeout;
    pthread_mutex_lock(&watch_lock);
    w->prev = NULL;
    w->next = watch_head;
    if (watch_head != NULL)
        watch_head->prev = w;
    watch_head = w;
    pthread_mutex_unlock(&watch_lock);
    return true;
}

void hcrt__watch_disarm(hcrt__watch_t *w)
{
    pthread_mutex_lock(&watch_lock);
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        watch_head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&watch_lock);
}

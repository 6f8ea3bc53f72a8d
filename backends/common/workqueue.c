/*
 * backends/common/workqueue.c - one worker thread per stream running a FIFO of ops; events as markers.
 *
 * The queue counts ops submitted and ops completed; sync waits for "completed >= submitted at the time
 * of the call", which is exact because the worker runs them in order. An event is a marker node in the
 * same FIFO. Each record bumps the event's generation so that a marker left over from an earlier record
 * cannot complete a later one; destroy waits until no marker of the event is queued anywhere, so a
 * worker never touches a freed event.
 *
 * A worker whose queue runs dry polls for new work for a short while (yielding its core at every
 * check) before it sleeps on the condition variable: the next op of a pipelined caller usually
 * follows within microseconds, and a futex wake-up per op would cost more than the op's bookkeeping.
 */
#include "backends/common/workqueue.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct wq_node {
    struct wq_node *next;
    hcrt__wq_fn_t fn;        /* NULL for an event marker */
    hcrt__wq_event_t *event; /* marker only */
    uint64_t gen;            /* marker only: the record it completes */
    max_align_t arg[];       /* the op's argument copy */
} wq_node_t;

struct hcrt__wq {
    pthread_mutex_t mu;
    pthread_cond_t work;     /* signalled when a node is queued or stop is set */
    pthread_cond_t progress; /* signalled when a node completed */
    wq_node_t *head, *tail;
    uint64_t submitted, completed;
    bool stop;
    atomic_bool queued;      /* head != NULL, readable without the lock while the worker polls */
    hcrt_status_t first_err;
    char err_msg[HCRT__WQ_MSG_LEN];
    pthread_t thread;
};

struct hcrt__wq_event {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t gen; /* bumped by each record */
    int pending;  /* markers queued and not yet run */
    bool recorded;
    bool done;
    double time; /* monotonic seconds of completion */
    hcrt_status_t status;
    char msg[HCRT__WQ_MSG_LEN];
};

double hcrt__wq_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void hcrt__wq_sleep(double seconds)
{
    if (!(seconds > 0))
        return;
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void event_complete(hcrt__wq_event_t *ev, uint64_t gen, hcrt_status_t status, const char *msg)
{
    pthread_mutex_lock(&ev->mu);
    if (gen == ev->gen) {
        ev->time = hcrt__wq_now();
        ev->status = status;
        snprintf(ev->msg, sizeof(ev->msg), "%s", msg);
        ev->done = true;
    }
    if (gen != 0)
        ev->pending--;
    pthread_cond_broadcast(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
}

/* How long an idle worker polls before sleeping, and how many pause-spins between checks. */
#define WQ_POLL_SECONDS 100e-6
#define WQ_POLL_SPINS 64

/* Called with wq->mu held and the queue empty; returns with it held. */
static void wq_poll_for_work(hcrt__wq_t *wq)
{
    pthread_mutex_unlock(&wq->mu);
    const double end = hcrt__wq_now() + WQ_POLL_SECONDS;
    unsigned spins = 0;
    while (!atomic_load_explicit(&wq->queued, memory_order_acquire)) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        if (++spins % WQ_POLL_SPINS == 0) {
            /* The submitter may be waiting for this core (ranks can outnumber cores). */
            if (hcrt__wq_now() > end)
                break;
            sched_yield();
        }
    }
    pthread_mutex_lock(&wq->mu);
}

static void *wq_worker(void *p)
{
    hcrt__wq_t *wq = p;
    char msg[HCRT__WQ_MSG_LEN];
    pthread_mutex_lock(&wq->mu);
    for (;;) {
        if (!wq->head && !wq->stop)
            wq_poll_for_work(wq);
        while (!wq->head && !wq->stop)
            pthread_cond_wait(&wq->work, &wq->mu);
        if (!wq->head)
            break; /* stop requested and nothing left */
        wq_node_t *n = wq->head;
        wq->head = n->next;
        if (!wq->head) {
            wq->tail = NULL;
            atomic_store_explicit(&wq->queued, false, memory_order_relaxed);
        }
        if (n->fn) {
            pthread_mutex_unlock(&wq->mu);
            msg[0] = '\0';
            hcrt_status_t st = n->fn(n->arg, msg);
            pthread_mutex_lock(&wq->mu);
            if (st != HCRT_OK && wq->first_err == HCRT_OK) {
                wq->first_err = st;
                /* No hcrt_status_string() here: plugins that compile this file must not need libhcrt. */
                if (msg[0])
                    snprintf(wq->err_msg, sizeof(wq->err_msg), "%s", msg);
                else
                    snprintf(wq->err_msg, sizeof(wq->err_msg), "queued op failed with status %d", (int)st);
            }
        } else {
            /* Copy the queue's pending error under its lock; stamp the event without holding it. */
            hcrt_status_t st = wq->first_err;
            snprintf(msg, sizeof(msg), "%s", wq->err_msg);
            pthread_mutex_unlock(&wq->mu);
            event_complete(n->event, n->gen, st, msg);
            pthread_mutex_lock(&wq->mu);
        }
        wq->completed++;
        pthread_cond_broadcast(&wq->progress);
        free(n);
    }
    pthread_mutex_unlock(&wq->mu);
    return NULL;
}

hcrt_status_t hcrt__wq_create(hcrt__wq_t **out)
{
    hcrt__wq_t *wq = calloc(1, sizeof(*wq));
    if (!wq)
        return HCRT_ERR_NO_MEMORY;
    pthread_mutex_init(&wq->mu, NULL);
    atomic_init(&wq->queued, false);
    pthread_cond_init(&wq->work, NULL);
    pthread_cond_init(&wq->progress, NULL);
    wq->first_err = HCRT_OK;
    if (pthread_create(&wq->thread, NULL, wq_worker, wq) != 0) {
        pthread_cond_destroy(&wq->progress);
        pthread_cond_destroy(&wq->work);
        pthread_mutex_destroy(&wq->mu);
        free(wq);
        return HCRT_ERR_BACKEND;
    }
    *out = wq;
    return HCRT_OK;
}

void hcrt__wq_destroy(hcrt__wq_t *wq)
{
    if (!wq)
        return;
    pthread_mutex_lock(&wq->mu);
    wq->stop = true;
    pthread_cond_broadcast(&wq->work);
    pthread_mutex_unlock(&wq->mu);
    pthread_join(wq->thread, NULL);
    pthread_cond_destroy(&wq->progress);
    pthread_cond_destroy(&wq->work);
    pthread_mutex_destroy(&wq->mu);
    free(wq);
}

static void wq_append(hcrt__wq_t *wq, wq_node_t *n)
{
    pthread_mutex_lock(&wq->mu);
    if (wq->tail)
        wq->tail->next = n;
    else
        wq->head = n;
    wq->tail = n;
    atomic_store_explicit(&wq->queued, true, memory_order_release);
    wq->submitted++;
    pthread_cond_signal(&wq->work);
    pthread_mutex_unlock(&wq->mu);
}

hcrt_status_t hcrt__wq_submit(hcrt__wq_t *wq, hcrt__wq_fn_t fn, const void *arg, size_t arg_size)
{
    if (!wq || !fn)
        return HCRT_ERR_INVALID_ARG;
    wq_node_t *n = malloc(sizeof(*n) + arg_size);
    if (!n)
        return HCRT_ERR_NO_MEMORY;
    n->next = NULL;
    n->fn = fn;
    n->event = NULL;
    n->gen = 0;
    if (arg_size)
        memcpy(n->arg, arg, arg_size);
    wq_append(wq, n);
    return HCRT_OK;
}

hcrt_status_t hcrt__wq_sync(hcrt__wq_t *wq, char *msg)
{
    if (!wq)
        return HCRT_ERR_INVALID_ARG;
    pthread_mutex_lock(&wq->mu);
    const uint64_t target = wq->submitted;
    while (wq->completed < target)
        pthread_cond_wait(&wq->progress, &wq->mu);
    hcrt_status_t st = wq->first_err;
    if (msg)
        snprintf(msg, HCRT__WQ_MSG_LEN, "%s", st == HCRT_OK ? "" : wq->err_msg);
    wq->first_err = HCRT_OK;
    wq->err_msg[0] = '\0';
    pthread_mutex_unlock(&wq->mu);
    return st;
}

hcrt_status_t hcrt__wq_event_create(hcrt__wq_event_t **out)
{
    hcrt__wq_event_t *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return HCRT_ERR_NO_MEMORY;
    pthread_mutex_init(&ev->mu, NULL);
    pthread_cond_init(&ev->cv, NULL);
    ev->status = HCRT_OK;
    *out = ev;
    return HCRT_OK;
}

void hcrt__wq_event_destroy(hcrt__wq_event_t *ev)
{
    if (!ev)
        return;
    pthread_mutex_lock(&ev->mu);
    while (ev->pending > 0)
        pthread_cond_wait(&ev->cv, &ev->mu);
    pthread_mutex_unlock(&ev->mu);
    pthread_cond_destroy(&ev->cv);
    pthread_mutex_destroy(&ev->mu);
    free(ev);
}

hcrt_status_t hcrt__wq_event_record(hcrt__wq_event_t *ev, hcrt__wq_t *wq)
{
    if (!ev)
        return HCRT_ERR_INVALID_ARG;
    wq_node_t *n = NULL;
    if (wq) {
        n = malloc(sizeof(*n));
        if (!n)
            return HCRT_ERR_NO_MEMORY;
    }
    pthread_mutex_lock(&ev->mu);
    const uint64_t gen = ++ev->gen;
    ev->recorded = true;
    ev->done = false;
    if (n)
        ev->pending++;
    pthread_mutex_unlock(&ev->mu);
    if (!n) {
        /* No stream: the point is "now"; gen 0 tells event_complete not to count a marker. */
        pthread_mutex_lock(&ev->mu);
        if (gen == ev->gen) {
            ev->time = hcrt__wq_now();
            ev->status = HCRT_OK;
            ev->msg[0] = '\0';
            ev->done = true;
        }
        pthread_cond_broadcast(&ev->cv);
        pthread_mutex_unlock(&ev->mu);
        return HCRT_OK;
    }
    n->next = NULL;
    n->fn = NULL;
    n->event = ev;
    n->gen = gen;
    wq_append(wq, n);
    return HCRT_OK;
}

hcrt_status_t hcrt__wq_event_sync(hcrt__wq_event_t *ev, char *msg)
{
    if (!ev)
        return HCRT_ERR_INVALID_ARG;
    pthread_mutex_lock(&ev->mu);
    while (ev->recorded && !ev->done)
        pthread_cond_wait(&ev->cv, &ev->mu);
    hcrt_status_t st = ev->recorded ? ev->status : HCRT_OK;
    if (msg)
        snprintf(msg, HCRT__WQ_MSG_LEN, "%s", st == HCRT_OK ? "" : ev->msg);
    pthread_mutex_unlock(&ev->mu);
    return st;
}

bool hcrt__wq_event_query(hcrt__wq_event_t *ev)
{
    pthread_mutex_lock(&ev->mu);
    const bool done = !ev->recorded || ev->done;
    pthread_mutex_unlock(&ev->mu);
    return done;
}

/* Reads an event's completion time; false when it has none yet. */
static bool event_time(hcrt__wq_event_t *ev, double *t)
{
    pthread_mutex_lock(&ev->mu);
    const bool ok = ev->recorded && ev->done;
    *t = ev->time;
    pthread_mutex_unlock(&ev->mu);
    return ok;
}

hcrt_status_t hcrt__wq_event_elapsed(hcrt__wq_event_t *start, hcrt__wq_event_t *end, float *ms)
{
    if (!start || !end || !ms)
        return HCRT_ERR_INVALID_ARG;
    double t0, t1;
    if (!event_time(start, &t0) || !event_time(end, &t1))
        return HCRT_ERR_STATE;
    *ms = (float)((t1 - t0) * 1e3);
    return HCRT_OK;
}

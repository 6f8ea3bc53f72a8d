/*
 * backends/common/workqueue.h - in-order work queues (streams) and completion markers (events) for
 * backends whose "device" work runs on host threads: cpu and sim.
 *
 * A queue owns one worker thread that runs submitted ops one after another, in submission order, so a
 * chain of async ops on one stream sees each other's results exactly as on a GPU stream. Events are
 * markers submitted like ops: when the worker reaches one it stamps it with CLOCK_MONOTONIC, so the time
 * between two events is the time the work between them really took.
 *
 * Thread safety: every function may be called from any thread; a queue may be fed by several threads
 * (their ops interleave in the order the submissions took the queue's lock).
 */
#ifndef HCRT_BACKENDS_WORKQUEUE_H
#define HCRT_BACKENDS_WORKQUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "hcrt/status.h"

/* Length of the error text an op may leave for the next sync. */
#define HCRT__WQ_MSG_LEN 256

/*
 * One unit of work. `arg` points at the queue's copy of the bytes given to submit(). On failure the op
 * returns a negative status and may write a NUL-terminated explanation into msg (HCRT__WQ_MSG_LEN).
 */
typedef hcrt_status_t (*hcrt__wq_fn_t)(void *arg, char *msg);

typedef struct hcrt__wq hcrt__wq_t;
typedef struct hcrt__wq_event hcrt__wq_event_t;

/* Starts a queue and its worker. HCRT_ERR_NO_MEMORY or HCRT_ERR_BACKEND (thread creation) on failure. */
hcrt_status_t hcrt__wq_create(hcrt__wq_t **wq);

/* Runs what was submitted, stops the worker and frees the queue. NULL is a no-op. */
void hcrt__wq_destroy(hcrt__wq_t *wq);

/* Appends fn with a private copy of arg_size bytes at arg; returns at once. */
hcrt_status_t hcrt__wq_submit(hcrt__wq_t *wq, hcrt__wq_fn_t fn, const void *arg, size_t arg_size);

/*
 * Blocks until everything submitted before the call has run. Returns the first error of the ops that
 * ran since the previous sync (and copies its text into msg, if msg is not NULL), then forgets it.
 */
hcrt_status_t hcrt__wq_sync(hcrt__wq_t *wq, char *msg);

/* Events. create: HCRT_ERR_NO_MEMORY on failure. destroy waits for markers still queued; NULL no-op. */
hcrt_status_t hcrt__wq_event_create(hcrt__wq_event_t **ev);
void hcrt__wq_event_destroy(hcrt__wq_event_t *ev);

/* Places the event behind the work submitted so far on wq; wq NULL stamps it now. Re-recording an
 * event replaces its earlier point. */
hcrt_status_t hcrt__wq_event_record(hcrt__wq_event_t *ev, hcrt__wq_t *wq);

/* Blocks until the recorded point is reached (at once if never recorded). Returns the first error
 * pending on the queue at that point (without clearing it), with its text in msg when not NULL. */
hcrt_status_t hcrt__wq_event_sync(hcrt__wq_event_t *ev, char *msg);

/* Whether the recorded point was reached (true if never recorded); never blocks. */
bool hcrt__wq_event_query(hcrt__wq_event_t *ev);

/* Milliseconds from start to end. HCRT_ERR_STATE when either was never recorded or is not complete. */
hcrt_status_t hcrt__wq_event_elapsed(hcrt__wq_event_t *start, hcrt__wq_event_t *end, float *ms);

/*
 * An intrusive doubly linked list, for a backend's registry of live streams and events: finalize() must
 * free what the user left behind (hcrt/backend.h), so each backend keeps them on lists under its lock.
 * Put the node first in the struct so that a node pointer is the object pointer.
 */
typedef struct hcrt__list {
    struct hcrt__list *prev, *next;
} hcrt__list_t;

static inline void hcrt__list_init(hcrt__list_t *head)
{
    head->prev = head->next = head;
}

static inline void hcrt__list_add(hcrt__list_t *head, hcrt__list_t *node)
{
    node->next = head->next;
    node->prev = head;
    head->next->prev = node;
    head->next = node;
}

static inline void hcrt__list_del(hcrt__list_t *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = node;
}

/* CLOCK_MONOTONIC in seconds. */
double hcrt__wq_now(void);

/* Sleeps `seconds` (> 0), resuming after signals. */
void hcrt__wq_sleep(double seconds);

#endif /* HCRT_BACKENDS_WORKQUEUE_H */

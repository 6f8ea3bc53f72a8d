/*
 * collectives/deadline.c - naming the ranks a collective waits for, when its deadline passes.
 *
 * MPI_Test alone says only that something is missing. So every rank stores the sequence number of each
 * collective it enters into its control line of the node's shared window (one relaxed store per call).
 * When the deadline passes, the waiting rank reads its node peers' numbers: those below the call's number
 * never arrived. Ranks of other nodes cannot be read directly, so the timed-out ranks also swap what
 * they saw (gather_views below) before reporting. While
 * waiting, a rank also checks that node peers that are behind still exist, so a dead peer is reported as
 * such (Open MPI usually ends the job first when a rank dies; this covers the cases where it does not),
 * that no node peer raised its failure flag (failure.c), and that the device it waits on is not lost.
 * Every waiting loop of the collectives goes through hcrt__deadline_poll; what follows a failure is
 * failure.c's (the exit policy).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "collectives/coll.h"

void hcrt__deadline_enter(struct hcrt_comm *c, uint64_t seq)
{
    if (c->has_shm)
        atomic_store_explicit(&c->shm.ctl[c->node_rank]->entered, seq, memory_order_release);
}

/* Appends "R (host)" to a list. */
static void add_rank(char *buf, size_t len, const struct hcrt_comm *c, int r)
{
    size_t used = strlen(buf);
    if (used + 80 < len)
        snprintf(buf + used, len - used, "%s%d (%s)", used ? ", " : "", r, c->info[r].host);
}

/* Tag of the timeout exchange on the collective communicator (collective tags stay below
 * HCRT__TAG_SPAN). */
#define DEADLINE_TAG (HCRT__TAG_SPAN + 1)
/* How long a timed-out rank collects the other survivors' views before it reports. */
#define EXCHANGE_SECONDS 0.5

/*
 * Every rank reads the entry numbers of its own node's ranks from the shared window; ranks of other
 * nodes it cannot read. So each survivor sends what it saw (per rank: arrived, late, unknown) to every
 * other rank, as small eager messages that complete even towards a hung peer, and collects the views
 * that arrive within half a second: the survivors of all nodes time out together, so each ends with
 * the whole picture. A rank whose own view never came and whom nobody could see is listed as silent.
 */
static void gather_views(struct hcrt_comm *c, uint64_t seq, signed char *state)
{
    int n = c->size;
    for (int r = 0; r < n; r++)
        state[r] = -1; /* unknown */
    for (int nr = 0; nr < c->node_size && c->has_shm; nr++) {
        uint64_t e = atomic_load_explicit(&c->shm.ctl[nr]->entered, memory_order_acquire);
        state[c->node_ranks[nr]] = e < seq ? 0 : 1;
    }
    state[c->rank] = 1;
    if (c->mpi == MPI_COMM_NULL || n == 1 || (c->has_shm && c->node_size == n))
        return; /* every rank is on this node: the window told us everything */
    signed char *mine = malloc((size_t)n), *theirs = malloc((size_t)n);
    MPI_Request *reqs = malloc((size_t)n * sizeof(*reqs));
    if (mine == NULL || theirs == NULL || reqs == NULL) {
        free(mine);
        free(theirs);
        free(reqs);
        return;
    }
    memcpy(mine, state, (size_t)n);
    for (int r = 0; r < n; r++) {
        reqs[r] = MPI_REQUEST_NULL;
        if (r != c->rank)
            MPI_Isend(mine, n, MPI_SIGNED_CHAR, r, DEADLINE_TAG, c->mpi, &reqs[r]);
    }
    double end = hcrt__now() + EXCHANGE_SECONDS;
    while (hcrt__now() < end) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, DEADLINE_TAG, c->mpi, &flag, &st);
        if (!flag) {
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        MPI_Recv(theirs, n, MPI_SIGNED_CHAR, st.MPI_SOURCE, DEADLINE_TAG, c->mpi, MPI_STATUS_IGNORE);
        for (int r = 0; r < n; r++)
            if (state[r] < 0 || theirs[r] == 0)
                state[r] = theirs[r] >= 0 ? theirs[r] : state[r];
        state[st.MPI_SOURCE] = 1; /* it answered, so it had arrived */
    }
    /* The sends stay pending towards silent ranks; the job ends right after. */
    free(reqs);
    free(theirs);
    /* `mine` may still be read by a pending send: it is left to the aborting process. */
}

/* The deadline of a wait passed: names the late ranks and fails the operation. */
static hcrt_status_t expired(struct hcrt_comm *c, const hcrt__waiter_t *w, double waited)
{
    char late[2048] = "", silent[2048] = "";
    const char *silent_node = NULL; /* the one node every silent rank is on, NULL: none or several */
    int nlate = 0, nsilent = 0;
    bool designated = true; /* the lowest rank known to be waiting too aborts the job */
    if (w->device_only && w->dev != NULL)
        return hcrt__comm_failed(c, true, HCRT_ERR_TIMEOUT, "%s #%llu (%zu bytes): the work queued on %s device %d "
                                 "(staging copies, kernels) did not complete within HCRT_TIMEOUT=%g s (waited %.1f s): "
                                 "the device is hung or far too slow", w->opname, (unsigned long long)w->seq, w->bytes,
                                 w->dev->be->name, w->dev->index, c->timeout, waited);
    if (w->peer >= 0) {
        add_rank(late, sizeof(late), c, w->peer);
        return hcrt__comm_failed(c, true, HCRT_ERR_TIMEOUT,
                                 "%s of %zu bytes with rank %s did not complete within HCRT_TIMEOUT=%g s (waited "
                                 "%.1f s)", w->opname, w->bytes, late, c->timeout, waited);
    }
    signed char *state = malloc((size_t)c->size);
    if (state != NULL) {
        gather_views(c, w->seq, state);
        for (int r = 0; r < c->rank; r++)
            if (state[r] == 1)
                designated = false;
        for (int r = 0; r < c->size; r++) {
            if (state[r] == 0) {
                add_rank(late, sizeof(late), c, r);
                nlate++;
            } else if (state[r] < 0) {
                add_rank(silent, sizeof(silent), c, r);
                if (nsilent++ == 0)
                    silent_node = c->info[r].host;
                else if (silent_node != NULL && strcmp(silent_node, c->info[r].host) != 0)
                    silent_node = NULL;
            }
        }
        free(state);
    }
    char other[2200] = "";
    if (nsilent > 0)
        snprintf(other, sizeof(other), "; no report from %s (their node's ranks did not answer either)", silent);
    /* No rank of that node answered in the exchange while every other node's did: it is unreachable (a cut
     * link, a dead node whose loss the launcher has not noticed yet). The failure record names it, so
     * that hcrt-run relaunches without it. */
    if (silent_node != NULL && strcmp(silent_node, c->ctx->hostname) != 0)
        snprintf(c->ctx->fail_lost_node, sizeof(c->ctx->fail_lost_node), "%s", silent_node);
    /* Everyone arrived and still the call never finished: most often the ranks made different calls
     * (counts, dtypes, roots), which checking mode would have named instead. */
    const char *hint = nlate == 0 && !c->check_calls
                           ? ". Every rank that answered had entered the call: if the ranks made it with "
                             "different counts, dtypes, ops or roots, rerun with HCRT_CHECK_CALLS=1 to have "
                             "the difference named"
                           : "";
    return hcrt__comm_failed(c, designated, HCRT_ERR_TIMEOUT,
                             "%s #%llu (%zu bytes, %d ranks) timed out after %.1f s (HCRT_TIMEOUT=%g): ranks that "
                             "had not arrived: %s%s%s", w->opname, (unsigned long long)w->seq, w->bytes, c->size,
                             waited, c->timeout, nlate ? late : "none seen", other, hint);
}

/* Whether process pid exists and is not a zombie. */
static bool alive(int64_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close = strrchr(buf, ')');
    return close == NULL || close[1] == '\0' || close[2] != 'Z';
}

/* A node peer that died during the wait, or whose own call failed (its failure flag): this call cannot
 * complete either. */
static hcrt_status_t check_peers(struct hcrt_comm *c, const hcrt__waiter_t *w, bool liveness)
{
    if (!c->has_shm)
        return HCRT_OK;
    for (int nr = 0; nr < c->node_size; nr++) {
        if (nr == c->node_rank)
            continue;
        hcrt__shm_ctl_t *p = c->shm.ctl[nr];
        int r = c->node_ranks[nr];
        uint64_t fseq = atomic_load_explicit(&p->failed_seq, memory_order_acquire);
        if (fseq != 0) {
            hcrt_status_t st = (hcrt_status_t)atomic_load_explicit(&p->failed_status, memory_order_relaxed);
            /* Not designated: the failed rank itself ends the job (or returns) with the same status. */
            return hcrt__comm_failed(c, false, st, "%s #%llu cannot complete: rank %d (%s) failed (%s, in call #%llu "
                                     "of this communicator; its own error line says why)", w->opname,
                                     (unsigned long long)w->seq, r, c->info[r].host, hcrt_status_name(st),
                                     (unsigned long long)fseq);
        }
        if (!liveness)
            continue;
        uint64_t e = atomic_load_explicit(&p->entered, memory_order_acquire);
        int64_t pid = atomic_load_explicit(&p->pid, memory_order_relaxed);
        if (pid > 0 && !alive(pid)) {
            /* Every live rank of the node sees the death; the lowest one aborts first. */
            bool designated = true;
            for (int q = 0; q < c->node_rank; q++) {
                int64_t qpid = atomic_load_explicit(&c->shm.ctl[q]->pid, memory_order_relaxed);
                if (q != nr && qpid > 0 && alive(qpid))
                    designated = false;
            }
            return hcrt__comm_failed(c, designated, HCRT_ERR_PEER_DEAD, "%s #%llu: rank %d (%s, pid %lld) died %s the call",
                                     w->opname, (unsigned long long)w->seq, r, c->info[r].host, (long long)pid,
                                     e < w->seq ? "before entering" : "during");
        }
    }
    return HCRT_OK;
}

void hcrt__waiter_init(hcrt__waiter_t *w, const char *opname, uint64_t seq, size_t bytes, int peer, hcrt_device_t *dev)
{
    w->opname = opname;
    w->seq = seq;
    w->bytes = bytes;
    w->peer = peer;
    w->dev = dev;
    w->device_only = false;
    w->start = hcrt__now();
    w->next_check = w->start + 0.5;
}

hcrt_status_t hcrt__deadline_poll(struct hcrt_comm *c, hcrt__waiter_t *w)
{
    double now = hcrt__now();
    if (c->timeout > 0 && now - w->start > c->timeout)
        return expired(c, w, now - w->start);
    bool slow = now > w->next_check;
    HCRT_CHECK(check_peers(c, w, slow));
    if (slow) {
        w->next_check = now + 0.25;
        if (hcrt__device_poll(w->dev) != HCRT_OK)
            return hcrt__comm_failed(c, true, HCRT_ERR_DEVICE_LOST, "%s #%llu: %s", w->opname,
                                     (unsigned long long)w->seq, hcrt_last_error(c->ctx));
    }
    return HCRT_OK;
}

/*
 * collectives/deadline.c - naming the ranks a collective waits for, when its deadline passes.
 *
 * MPI_Test alone says only that something is missing. So every rank stores the sequence number of each
 * collective it enters into its control line of the node's shared window (one relaxed store per call).
 * When the deadline passes, the waiting rank reads its node peers' numbers: those below the call's number
 * never arrived. Ranks of other nodes cannot be read directly, so the timed-out ranks also swap what
 * they saw (gather_views below) before reporting. While
 * waiting, a rank also checks that node peers that are behind still exist, so a dead peer is reported as
 * such (Open MPI usually ends the job first when a rank dies; this covers the cases where it does not).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "collectives/coll.h"
#include "runtime/fault/fault.h"

void hcrt__deadline_enter(struct hcrt_comm *c, uint64_t seq)
{
    if (c->has_shm)
        atomic_store_explicit(&c->shm.ctl[c->node_rank]->entered, seq, memory_order_release);
}

void hcrt__coll_fault(struct hcrt_comm *c, const char *opname, uint64_t seq)
{
    hcrt__fault_hit(c->ctx, "coll", opname, (int64_t)seq);
}

/* Appends "R (host)" to a list. */
static void add_rank(char *buf, size_t len, const struct hcrt_comm *c, int r)
{
    size_t used = strlen(buf);
    if (used + 80 < len)
        snprintf(buf + used, len - used, "%s%d (%s)", used ? ", " : "", r, c->info[r].host);
}

/*
 * Ends the job. Open MPI 4.1.4's mpirun can crash when several ranks call MPI_Abort at the same moment
 * (a race in its help-message aggregation), which would lose our exit status; so one designated rank
 * aborts at once and the others only after a pause, as a fallback should it be gone.
 */
_Noreturn static void abort_job(struct hcrt_comm *c, bool designated, int status)
{
    hcrt__vendor_abort(c, false); /* names a vendor group whose library step did not complete */
    if (!designated) {
        struct timespec ts = {1, 500 * 1000 * 1000};
        nanosleep(&ts, NULL);
        /* Still here: release the vendor library before ending (not earlier: peers that see their vendor
         * step fail would return an error and end the job with another status than this one). */
        hcrt__vendor_abort(c, true);
    }
    MPI_Abort(c->mpi != MPI_COMM_NULL ? c->mpi : MPI_COMM_WORLD, status);
    _exit(status);
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

_Noreturn void hcrt__deadline_expired(struct hcrt_comm *c, const char *opname, uint64_t seq, size_t bytes,
                                      double waited, int peer)
{
    char late[2048] = "", silent[2048] = "";
    int nlate = 0, nsilent = 0;
    bool designated = true; /* the lowest rank known to be waiting too aborts the job */
    if (peer >= 0) {
        add_rank(late, sizeof(late), c, peer);
        hcrt__log_emit(HCRT_LOG_ERROR, COLL_SUBSYS,
                       "%s of %zu bytes with rank %s did not complete within HCRT_TIMEOUT=%g s (waited %.1f s); "
                       "aborting the job with exit status %d (HCRT_EXIT_TIMEOUT)",
                       opname, bytes, late, c->timeout, waited, HCRT_EXIT_TIMEOUT);
    } else {
        signed char *state = malloc((size_t)c->size);
        if (state != NULL) {
            gather_views(c, seq, state);
            for (int r = 0; r < c->rank; r++)
                if (state[r] == 1)
                    designated = false;
            for (int r = 0; r < c->size; r++) {
                if (state[r] == 0) {
                    add_rank(late, sizeof(late), c, r);
                    nlate++;
                } else if (state[r] < 0) {
                    add_rank(silent, sizeof(silent), c, r);
                    nsilent++;
                }
            }
            free(state);
        }
        char other[2200] = "";
        if (nsilent > 0)
            snprintf(other, sizeof(other), "; no report from %s (their node's ranks did not answer either)",
                     silent);
        /* Everyone arrived and still the call never finished: most often the ranks made different calls
         * (counts, dtypes, roots), which checking mode would have named instead. */
        const char *hint = nlate == 0 && !c->check_calls
                               ? ". Every rank that answered had entered the call: if the ranks made it with "
                                 "different counts, dtypes, ops or roots, rerun with HCRT_CHECK_CALLS=1 to have "
                                 "the difference named"
                               : "";
        hcrt__log_emit(HCRT_LOG_ERROR, COLL_SUBSYS,
                       "%s #%llu (%zu bytes, %d ranks) timed out after %.1f s (HCRT_TIMEOUT=%g): ranks that had "
                       "not arrived: %s%s; aborting the job with exit status %d (HCRT_EXIT_TIMEOUT)%s",
                       opname, (unsigned long long)seq, bytes, c->size, waited, c->timeout, nlate ? late : "none seen",
                       other, HCRT_EXIT_TIMEOUT, hint);
    }
    fflush(stderr);
    abort_job(c, designated, HCRT_EXIT_TIMEOUT);
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

void hcrt__deadline_check_peers(struct hcrt_comm *c, const char *opname, uint64_t seq)
{
    if (!c->has_shm)
        return;
    for (int nr = 0; nr < c->node_size; nr++) {
        if (nr == c->node_rank)
            continue;
        uint64_t e = atomic_load_explicit(&c->shm.ctl[nr]->entered, memory_order_acquire);
        int64_t pid = atomic_load_explicit(&c->shm.ctl[nr]->pid, memory_order_relaxed);
        if (pid > 0 && !alive(pid)) {
            int r = c->node_ranks[nr];
            hcrt__log_emit(HCRT_LOG_ERROR, COLL_SUBSYS,
                           "%s #%llu: rank %d (%s, pid %lld) died %s the call; aborting the job "
                           "with exit status %d (HCRT_EXIT_PEER_DEAD)",
                           opname, (unsigned long long)seq, r, c->info[r].host, (long long)pid,
                           e < seq ? "before entering" : "during", HCRT_EXIT_PEER_DEAD);
            fflush(stderr);
            /* Every live rank of the node sees the death; the lowest one aborts first. */
            bool designated = true;
            for (int q = 0; q < c->node_rank; q++) {
                int64_t qpid = atomic_load_explicit(&c->shm.ctl[q]->pid, memory_order_relaxed);
                if (q != nr && qpid > 0 && alive(qpid))
                    designated = false;
            }
            abort_job(c, designated, HCRT_EXIT_PEER_DEAD);
        }
    }
}

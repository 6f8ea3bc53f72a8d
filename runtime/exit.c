/*
 * runtime/exit.c - the exit policy (hcrt/exit.h): which exit status each failure ends a job with, and
 * which statuses a relaunch may cure. Generated from the one table in the public header.
 */
#include <signal.h>

#include "hcrt/exit.h"

int hcrt_exit_status(hcrt_status_t status)
{
    switch (status) {
    case HCRT_OK:
        return HCRT_EXIT_OK;
    case HCRT_ERR_TIMEOUT:
        return HCRT_EXIT_TIMEOUT;
    case HCRT_ERR_DEVICE_LOST:
    case HCRT_ERR_BACKEND:
        return HCRT_EXIT_DEVICE;
    case HCRT_ERR_IO:
    case HCRT_ERR_CORRUPT:
        return HCRT_EXIT_CKPT_IO;
    case HCRT_ERR_MPI:
        return HCRT_EXIT_MPI;
    case HCRT_ERR_PEER_DEAD:
        return HCRT_EXIT_PEER_DEAD;
    case HCRT_ERR_CONFIG:
    case HCRT_ERR_NO_DEVICE:
        return HCRT_EXIT_CONFIG;
    case HCRT_ERR_NO_MEMORY:
    case HCRT_ERR_DEVICE_OOM:
        return HCRT_EXIT_RESOURCE;
    case HCRT_ERR_INVALID_ARG:
    case HCRT_ERR_NOT_SUPPORTED:
    case HCRT_ERR_NOT_FOUND:
    case HCRT_ERR_VERSION:
    case HCRT_ERR_MISMATCH:
    case HCRT_ERR_BUSY:
    case HCRT_ERR_STATE:
    case HCRT_ERR_IN_PROGRESS:
        return HCRT_EXIT_APP;
    case HCRT_ERR_INTERNAL:
        break;
    }
    return HCRT_EXIT_INTERNAL;
}

/* 128 + N: a process killed by signal N, as shells and mpirun report it. */
static bool is_signal_status(int exit_status) { return exit_status > 128 && exit_status < 128 + 32; }

bool hcrt_exit_restartable(int exit_status)
{
    switch (exit_status) {
#define HCRT_EXIT_CASE_(name, status, restartable, text)                                             \
    case status:                                                                                     \
        return restartable;
        HCRT_EXIT_MAP(HCRT_EXIT_CASE_)
#undef HCRT_EXIT_CASE_
    case HCRT_EXIT_MPIRUN_NODE_LOST:
        return true;
    }
    return is_signal_status(exit_status);
}

const char *hcrt_exit_name(int exit_status)
{
    switch (exit_status) {
#define HCRT_EXIT_NAME_(name, status, restartable, text)                                             \
    case status:                                                                                     \
        return #name;
        HCRT_EXIT_MAP(HCRT_EXIT_NAME_)
#undef HCRT_EXIT_NAME_
    case HCRT_EXIT_MPIRUN_NODE_LOST:
        return "NODE_LOST";
    }
    return is_signal_status(exit_status) ? "SIGNAL" : "UNKNOWN";
}

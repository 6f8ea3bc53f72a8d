/*
 * runtime/config_table.c - the one table of every HCRT_* environment variable.
 *
 * Each entry gives the name, default, type (which picks the parser and the validation), range or choices,
 * and a one-sentence help. hcrt_init() parses them all and rejects a bad value by name; hcrt-info prints
 * the table; docs/configuration.md is checked against it by a unit test. Plugins read their entries
 * (HCRT_SIM_*) through the services' config_get(), never from the environment.
 */
#include "runtime/internal.h"

#define MAXI 9.0e15

const hcrt__config_def_t hcrt__config_table[] = {
    /* ---- logging ---- */
    {"HCRT_LOG_LEVEL", "warn", HCRT__CFG_ENUM, 0, 0, "none,error,warn,info,debug,trace",
     "Most verbose log level printed to stderr."},
    {"HCRT_LOG_SUBSYS", "", HCRT__CFG_STRING, 0, 0, NULL,
     "Comma-separated subsystems to log (e.g. loader,coll); empty logs all; a leading ^ excludes them."},

    /* ---- backends and devices ---- */
    {"HCRT_BACKEND_PATH", "", HCRT__CFG_STRING, 0, 0, NULL,
     "Colon-separated directories searched for libhcrt-backend-*.so before those beside libhcrt (its build "
     "tree's, or LIBDIR/hcrt)."},
    {"HCRT_BACKENDS", "", HCRT__CFG_STRING, 0, 0, NULL,
     "Backends to load, e.g. cpu,sim; a leading ^ loads all but those (^hip); empty loads all. A name that "
     "matches no plugin is an error."},
    {"HCRT_DEVICE", "", HCRT__CFG_STRING, 0, 0, NULL,
     "Device for this rank as backend[:index] (sim:1, cpu); empty picks by node-local rank."},
    {"HCRT_BIND", "none", HCRT__CFG_ENUM, 0, 0, "device,none",
     "Bind the process to the cores near its device (device) or leave binding alone (none)."},

    /* ---- sim backend ---- */
    {"HCRT_SIM_DEVICES", "2", HCRT__CFG_INT, 0, 64, NULL, "Number of sim devices per process."},
    {"HCRT_SIM_MEMORY", "1G", HCRT__CFG_SIZE, 4096, 1099511627776.0, NULL,
     "Memory capacity of each sim device (bytes, K/M/G suffixes); allocations beyond it fail."},
    {"HCRT_SIM_SPEED", "1.0", HCRT__CFG_DOUBLE, 0.001, 1000.0, NULL,
     "Relative speed of sim devices; 0.5 makes their kernels and copies take twice as long."},
    {"HCRT_SIM_FAULT", "", HCRT__CFG_STRING, 0, 0, NULL,
     "Sim faults: comma-separated alloc_fail=N, copy_fail=N, register_fail=N, lost_after=N (fail the Nth op, "
     "or lose the device after N ops), coll_hang=N (the Nth vendor collective of simccl never arrives until "
     "aborted), coll_init_fail=N (the Nth simccl communicator fails to set up), optional dev=I to target one "
     "device."},
    {"HCRT_SIM_VENDOR", "none", HCRT__CFG_ENUM, 0, 0, "none,a,b",
     "Vendor tag of this process's sim devices: a or b gives them the sim vendor collective library (simccl) "
     "shared with the sim devices of the same tag on the node; none: no vendor library."},
    {"HCRT_SIM_LINK_GBS", "0", HCRT__CFG_DOUBLE, 0, 1.0e6, NULL,
     "Bandwidth model of simccl's device-to-device link in GB/s per rank and direction (standing for NVLink); "
     "transfers take at least bytes / this; 0: as fast as the host copies them."},

    /* ---- collectives ---- */
    {"HCRT_ALGO", "auto", HCRT__CFG_ENUM, 0, 0, "auto,ring,rd,shm,hier,mpi",
     "Force a collective algorithm: ring, rd (recursive doubling), shm, hier, mpi; auto chooses by size."},
    {"HCRT_TIMEOUT", "300", HCRT__CFG_DOUBLE, 0, 1.0e9, NULL,
     "Seconds any wait may take (a collective, the device work it waits for, a checkpoint save's agreement "
     "or its writer, a restore's agreement) before it fails naming what it waited for; 0 disables."},
    {"HCRT_CHECK_CALLS", "0", HCRT__CFG_BOOL, 0, 0, NULL,
     "Check that every rank makes the same collective call (op, count, dtype, root) before running it; off "
     "by default: it costs an exchange per call (docs/performance.md)."},
    {"HCRT_CHUNK_SIZE", "1M", HCRT__CFG_SIZE, 4096, 1073741824.0, NULL,
     "Pipeline chunk size of ring algorithms and of device-buffer staging."},
    {"HCRT_SHM_MAP", "1", HCRT__CFG_BOOL, 0, 0, NULL,
     "Device buffers of ranks on one node: let the device reduce straight in the node's shared window "
     "(registered host memory) where its backend can; 0 has it copy every byte through the window and "
     "the host reduce."},
    {"HCRT_FAKE_NODES", "0", HCRT__CFG_INT, 0, 1024, NULL,
     "Testing: split each node's ranks into this many fake nodes (consecutive ranks) so hierarchical "
     "collectives run on one machine; 0 uses the real nodes."},
    {"HCRT_VENDOR_COLL", "1", HCRT__CFG_BOOL, 0, 0, NULL,
     "Use the vendor collective libraries (NCCL, RCCL, simccl) inside groups of same-vendor ranks, with hcrt "
     "joining the groups; 0 stages every device buffer through hcrt's own host paths."},
    {"HCRT_VENDOR_MIN_BYTES", "auto", HCRT__CFG_SIZE, 0, 1099511627776.0, NULL,
     "Smallest call (bytes of its largest buffer) that takes the vendor-group path; smaller ones take hcrt's "
     "own path, which is faster there. auto: 1M when a group's library is simccl, 0 for NCCL and RCCL."},
    {"HCRT_NCCL_LIBRARY", "libnccl.so.2", HCRT__CFG_STRING, 0, 0, NULL,
     "The NCCL library the cuda plugin loads (dlopen) when vendor collectives are first needed."},
    {"HCRT_RCCL_LIBRARY", "librccl.so.1", HCRT__CFG_STRING, 0, 0, NULL,
     "The RCCL library the hip plugin loads (dlopen) when vendor collectives are first needed."},

    /* ---- checkpoint ---- */
    {"HCRT_CKPT_KEEP", "2", HCRT__CFG_INT, 1, 1000000, NULL, "Number of newest committed checkpoints kept."},
    {"HCRT_CKPT_LOCAL_DIR", "/dev/shm/hcrt-ckpt", HCRT__CFG_STRING, 0, 0, NULL,
     "Node-local fast checkpoint directory; empty disables the node-local level."},
    {"HCRT_CKPT_PARTNER", "1", HCRT__CFG_BOOL, 0, 0, NULL,
     "Keep a copy of each rank's checkpoint data on a partner rank of another node, in its memory and "
     "its node-local directory."},

    /* ---- timeline ---- */
    {"HCRT_TRACE", "", HCRT__CFG_STRING, 0, 0, NULL,
     "Write a Chrome trace (chrome://tracing, Perfetto) of every rank's collectives, checkpoint phases, "
     "balancer decisions and application events to this file at hcrt_finalize; each rank appends to "
     "FILE.rank-N as it goes (rank 0's value is used). Empty: no trace."},

    /* ---- Python binding (read by python/hcrt, listed here so that it is documented with the rest) ---- */
    {"HCRT_LIBRARY", "", HCRT__CFG_STRING, 0, 0, NULL,
     "Python: the libhcrt the hcrt package loads (a file, or its directory); empty searches pkg-config's "
     "prefix, the system loader, then the build tree."},

    /* ---- failures ---- */
    {"HCRT_ON_FAILURE", "abort", HCRT__CFG_ENUM, 0, 0, "abort,return",
     "What a failed collective or checkpoint does: abort ends the job with the exit status of hcrt/exit.h "
     "(for hcrt-run); return makes the call return the error and poisons its communicator."},
    {"HCRT_FAULT", "", HCRT__CFG_STRING, 0, 0, NULL,
     "Injected failures for tests, e.g. kill:rank=1:step=3:phase=write or error:op=allreduce:seq=5:attempt=0; "
     "sites, kinds and keys in docs/fault-injection.md."},

    /* ---- restart loop (hcrt-run sets these for the job; hcrt/run.h) ---- */
    {"HCRT_RUN_DIR", "", HCRT__CFG_STRING, 0, 0, NULL,
     "Directory where ranks write heartbeats and failure records for hcrt-run, which sets it; empty: none."},
    {"HCRT_RUN_ATTEMPT", "0", HCRT__CFG_INT, 0, 1000000000, NULL,
     "Launch number of the job under hcrt-run (0 first, 1 after the first restart, ...), set by hcrt-run; "
     "HCRT_FAULT rules with attempt=N fire only in launch N."},
};

const size_t hcrt__config_table_len = sizeof(hcrt__config_table) / sizeof(hcrt__config_table[0]);

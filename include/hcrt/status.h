/*
 * hcrt/status.h - the one list of status codes, shared by the public API and the backend plugin ABI.
 *
 * Every hcrt call returns an hcrt_status_t: HCRT_OK (0) on success, a negative code on failure. The list
 * below is an X-macro so that the enum, hcrt_status_name() and hcrt_status_string() are generated from one
 * place and can never drift apart. Codes are part of the ABI: a code keeps its number forever, new codes
 * are appended with the next free number.
 *
 * Detail (which argument, which rank, which device, the vendor's own error text) never goes in the code;
 * it goes in the per-context hcrt_last_error() string.
 */
#ifndef HCRT_STATUS_H
#define HCRT_STATUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define HCRT_EXPORT
#else
/* Marks a symbol as part of libhcrt's exported ABI; everything else is built hidden. */
#define HCRT_EXPORT __attribute__((visibility("default")))
#endif

/* X(NAME, value, human-readable text). NAME is used as HCRT_<NAME>. */
#define HCRT_STATUS_MAP(X)                                                                          \
    X(OK, 0, "success")                                                                             \
    X(ERR_INVALID_ARG, -1, "invalid argument")                                                      \
    X(ERR_NO_MEMORY, -2, "out of host memory")                                                      \
    X(ERR_DEVICE_OOM, -3, "out of device memory")                                                   \
    X(ERR_NOT_SUPPORTED, -4, "operation not supported")                                             \
    X(ERR_NOT_FOUND, -5, "not found")                                                               \
    X(ERR_VERSION, -6, "version mismatch")                                                          \
    X(ERR_BACKEND, -7, "backend error")                                                             \
    X(ERR_NO_DEVICE, -8, "no device available")                                                     \
    X(ERR_DEVICE_LOST, -9, "device lost")                                                           \
    X(ERR_IO, -10, "input/output error")                                                            \
    X(ERR_CORRUPT, -11, "data corrupt or malformed")                                                \
    X(ERR_TIMEOUT, -12, "deadline exceeded")                                                        \
    X(ERR_MPI, -13, "MPI error")                                                                    \
    X(ERR_MISMATCH, -14, "mismatched call across ranks")                                            \
    X(ERR_BUSY, -15, "resource busy")                                                               \
    X(ERR_STATE, -16, "invalid state for this call")                                                \
    X(ERR_CONFIG, -17, "invalid configuration value")                                               \
    X(ERR_INTERNAL, -18, "internal error")                                                          \
    X(ERR_IN_PROGRESS, -19, "operation still in progress")                                          \
    X(ERR_PEER_DEAD, -20, "a peer rank died")

typedef enum hcrt_status {
#define HCRT_STATUS_ENUM_(name, value, text) HCRT_##name = value,
    HCRT_STATUS_MAP(HCRT_STATUS_ENUM_)
#undef HCRT_STATUS_ENUM_
} hcrt_status_t;

/* Number of entries of HCRT_STATUS_MAP (codes run from 0 down to -(HCRT_STATUS_COUNT - 1)). */
#define HCRT_STATUS_COUNT 21

/*
 * The code's symbolic name without prefix, e.g. "ERR_TIMEOUT", or "UNKNOWN" for a value not in the list.
 * Returns a static string; thread-safe.
 */
HCRT_EXPORT const char *hcrt_status_name(hcrt_status_t status);

/*
 * A short human-readable description, e.g. "deadline exceeded", or "unknown status" for a value not in
 * the list. Returns a static string; thread-safe.
 */
HCRT_EXPORT const char *hcrt_status_string(hcrt_status_t status);

#ifdef __cplusplus
}
#endif

#endif /* HCRT_STATUS_H */

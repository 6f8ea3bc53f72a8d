/*
 * backends/sim/sim_fault.c - parsing of HCRT_SIM_FAULT.
 *
 * The value is a comma-separated list of key=value pairs (runtime/config_table.c documents it):
 * alloc_fail=N (the Nth allocation fails), copy_fail=N (the Nth copy fails), register_fail=N (the Nth
 * host registration is refused, as a GPU runtime may refuse to pin), lost_after=N (the device is
 * lost once N ops have run), coll_hang=N (the Nth vendor collective of simccl never arrives, until its
 * communicator is aborted), coll_init_fail=N (the Nth simccl communicator of the device fails to set up),
 * dev=I (only device I; default every device). Counts are 1-based for the
 * failures; lost_after=0 loses the device before its first op. Anything else is a configuration error
 * that names the offending piece, so a typo in a test's fault spec can never silently test nothing.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/sim/sim.h"

/* Parses a whole decimal unsigned number; false on anything else (sign, junk, overflow, empty). */
static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)buf[i]))
            return false;
    errno = 0;
    char *end = NULL;
    const unsigned long long v = strtoull(buf, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

hcrt_status_t sim_fault_parse(const char *text, int ndev, sim_fault_t *fault, char *err, size_t errlen)
{
    memset(fault, 0, sizeof(*fault));
    fault->dev = -1;
    if (!text)
        return HCRT_OK;
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, ',');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        uint64_t v = 0;
        if (!eq || !parse_u64(eq + 1, len - (size_t)(eq + 1 - p), &v)) {
            snprintf(err, errlen,
                     "HCRT_SIM_FAULT='%s': '%.*s' is not key=N (keys: alloc_fail, copy_fail, register_fail, "
                     "lost_after, coll_hang, coll_init_fail, dev)",
                     text, (int)len, p);
            return HCRT_ERR_CONFIG;
        }
        const size_t klen = (size_t)(eq - p);
#define KEY_IS(k) (klen == strlen(k) && strncmp(p, (k), klen) == 0)
        if (KEY_IS("alloc_fail") || KEY_IS("copy_fail") || KEY_IS("register_fail") || KEY_IS("coll_hang") ||
            KEY_IS("coll_init_fail")) {
            if (v == 0) {
                snprintf(err, errlen, "HCRT_SIM_FAULT='%s': '%.*s': the count starts at 1", text, (int)len, p);
                return HCRT_ERR_CONFIG;
            }
            if (KEY_IS("alloc_fail"))
                fault->alloc_fail = v;
            else if (KEY_IS("copy_fail"))
                fault->copy_fail = v;
            else if (KEY_IS("coll_hang"))
                fault->coll_hang = v;
            else if (KEY_IS("coll_init_fail"))
                fault->coll_init_fail = v;
            else
                fault->register_fail = v;
        } else if (KEY_IS("lost_after")) {
            fault->lost_after = v;
            fault->has_lost = true;
        } else if (KEY_IS("dev")) {
            if (v >= (uint64_t)ndev) {
                snprintf(err, errlen, "HCRT_SIM_FAULT='%s': dev=%llu but there are %d sim devices", text,
                         (unsigned long long)v, ndev);
                return HCRT_ERR_CONFIG;
            }
            fault->dev = (int)v;
        } else {
            snprintf(err, errlen,
                     "HCRT_SIM_FAULT='%s': unknown key '%.*s' (keys: alloc_fail, copy_fail, register_fail, lost_after, "
                     "coll_hang, coll_init_fail, dev)",
                     text, (int)klen, p);
            return HCRT_ERR_CONFIG;
        }
#undef KEY_IS
        p = end ? end + 1 : p + len;
        if (end && !*p) {
            snprintf(err, errlen, "HCRT_SIM_FAULT='%s': trailing comma", text);
            return HCRT_ERR_CONFIG;
        }
    }
    return HCRT_OK;
}

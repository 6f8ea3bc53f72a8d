/*
 * libFuzzer target for the checkpoint manifest parser (runtime/checkpoint/manifest.c): any input must be
 * either accepted as a consistent manifest or refused with a message, never crash, leak or read out of
 * bounds. An accepted manifest is serialised and parsed again, which must succeed and agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/checkpoint/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hcrt__ckpt_manifest_t m, again;
    char err[1024];
    for (int mode = HCRT__MANIFEST_FULL; mode <= HCRT__MANIFEST_PARTIAL; mode++) {
        if (hcrt__manifest_parse((const char *)data, size, "fuzz", mode, &m, err, sizeof(err)) != HCRT_OK)
            continue;
        char *text = hcrt__manifest_serialize(&m);
        if (text != NULL) {
            if (hcrt__manifest_parse(text, strlen(text), "fuzz-again", mode, &again, err, sizeof(err)) != HCRT_OK)
                abort(); /* what we accept we must be able to write back */
            if (again.ntensors != m.ntensors || again.world_size != m.world_size || again.meta_len != m.meta_len)
                abort();
            hcrt__manifest_free(&again);
            free(text);
        }
        for (int t = 0; t < m.ntensors; t++)
            (void)hcrt__manifest_find(&m, m.tensors[t].name);
        hcrt__manifest_free(&m);
    }
    return 0;
}

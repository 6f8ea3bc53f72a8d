/*
 * The node-local files of the partner level (runtime/checkpoint/fsutil.c): a partner copy written as
 * step-N/partner/rank-K.bin is durable and exact; removing the step (garbage collection) removes the
 * partner subdirectory with it, recycling its data files into .spare/partner/ apart from the node's own
 * ones (which go to .spare/), and the next partner copy reuses the spare; a removal without recycling
 * leaves nothing behind.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/checkpoint/format.h"
#include "test.h"

static char base[256];

static bool exists(const char *rel)
{
    char path[1024];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    return stat(path, &sb) == 0;
}

/* The file's bytes equal `want` (n bytes). */
static bool holds(const char *rel, const unsigned char *want, size_t n)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    unsigned char *got = malloc(n + 1);
    size_t r = fread(got, 1, n + 1, f);
    fclose(f);
    bool same = r == n && memcmp(got, want, n) == 0;
    free(got);
    return same;
}

int main(void)
{
    char err[1024], stepdir[512];
    unsigned char a[10000], b[300];
    for (size_t i = 0; i < sizeof(a); i++)
        a[i] = (unsigned char)(i * 7 + 1);
    memset(b, 0xab, sizeof(b));
    snprintf(base, sizeof(base), "/tmp/hcrt-partner-files-XXXXXX");
    if (mkdtemp(base) == NULL) {
        perror("mkdtemp");
        return 1;
    }

    /* A node's own file and a partner copy of another node's rank 3 in step 5. */
    hcrt__ckpt_step_path(stepdir, sizeof(stepdir), base, 5);
    CHECK_OK(NULL, hcrt__mkdir_p(stepdir, err, sizeof(err)));
    CHECK_OK(NULL, hcrt__ckpt_write_copy(base, stepdir, "rank-00001.bin", b, sizeof(b), err, sizeof(err)));
    CHECK_OK(NULL, hcrt__ckpt_write_copy(base, stepdir, HCRT__CKPT_PARTNER_DIR "/rank-00003.bin", a, sizeof(a), err,
                                         sizeof(err)));
    CHECK(holds("step-00000005/rank-00001.bin", b, sizeof(b)));
    CHECK(holds("step-00000005/partner/rank-00003.bin", a, sizeof(a)));

    /* Garbage collection with recycling: the step is gone, the files wait in .spare and .spare/partner. */
    CHECK_OK(NULL, hcrt__ckpt_remove_step(base, 5, NULL, true, err, sizeof(err)));
    CHECK(!exists("step-00000005"));
    CHECK(holds(".spare/rank-00001.bin", b, sizeof(b)));
    CHECK(holds(".spare/partner/rank-00003.bin", a, sizeof(a)));
    CHECK(!exists(".spare/rank-00003.bin"));

    /* The next partner copy of rank 3 reuses its spare, and a shorter one is cut to size. */
    hcrt__ckpt_step_path(stepdir, sizeof(stepdir), base, 6);
    CHECK_OK(NULL, hcrt__mkdir_p(stepdir, err, sizeof(err)));
    CHECK_OK(NULL, hcrt__ckpt_write_copy(base, stepdir, "partner/rank-00003.bin", b, sizeof(b), err, sizeof(err)));
    CHECK(!exists(".spare/partner/rank-00003.bin"));
    CHECK(holds("step-00000006/partner/rank-00003.bin", b, sizeof(b)));

    /* A partner copy that cannot be created (a file where the subdirectory should be) is an error naming it. */
    hcrt__ckpt_step_path(stepdir, sizeof(stepdir), base, 7);
    CHECK_OK(NULL, hcrt__mkdir_p(stepdir, err, sizeof(err)));
    FILE *f;
    char path[1024];
    snprintf(path, sizeof(path), "%s/partner", stepdir);
    CHECK((f = fopen(path, "w")) != NULL);
    if (f != NULL)
        fclose(f);
    CHECK_STATUS(NULL, hcrt__ckpt_write_copy(base, stepdir, "partner/rank-00000.bin", a, sizeof(a), err, sizeof(err)),
                 HCRT_ERR_IO);
    CHECK_MSG(strstr(err, "step-00000007/partner") != NULL, "error: %s", err);

    /* Garbage collection of a whole directory keeps the newest committed step with its partner copies. */
    snprintf(path, sizeof(path), "%s/step-00000006/" HCRT__CKPT_MANIFEST, base);
    CHECK((f = fopen(path, "w")) != NULL);
    if (f != NULL)
        fclose(f);
    int removed = -1;
    CHECK_OK(NULL, hcrt__ckpt_gc_dir(base, 1, -1, NULL, false, &removed, err, sizeof(err)));
    CHECK(removed == 0); /* step 7 is uncommitted but newer: possibly in flight */
    CHECK(holds("step-00000006/partner/rank-00003.bin", b, sizeof(b)));

    /* Removal without recycling leaves nothing of the step. */
    CHECK_OK(NULL, hcrt__ckpt_remove_step(base, 6, NULL, false, err, sizeof(err)));
    CHECK_OK(NULL, hcrt__ckpt_remove_step(base, 7, NULL, false, err, sizeof(err)));
    CHECK(!exists("step-00000006") && !exists("step-00000007"));

    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    CHECK(system(cmd) == 0);
    TEST_DONE();
}

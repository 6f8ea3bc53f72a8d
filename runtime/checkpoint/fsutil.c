/*
 * runtime/checkpoint/fsutil.c - the file-system steps of the format: paths, full reads and writes,
 * durable renames, listing steps, and removing them in an order that is safe to interrupt.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/checkpoint/format.h"

void (*hcrt__ckpt_gc_hook)(const void *fault_ctx, int64_t step);

bool hcrt__ckpt_step_path(char *out, size_t cap, const char *dir, int64_t step)
{
    return (size_t)snprintf(out, cap, "%s/step-%08" PRId64, dir, step) < cap;
}

void hcrt__ckpt_file_name(char *out, size_t cap, int rank) { snprintf(out, cap, "rank-%05d.bin", rank); }

hcrt_status_t hcrt__mkdir_p(const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "path too long: %s", path);
        return HCRT_ERR_INVALID_ARG;
    }
    for (char *p = tmp + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot create directory %s: %s", tmp, strerror(errno));
                return HCRT_ERR_IO;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "%s is not a directory", path);
        return HCRT_ERR_IO;
    }
    return HCRT_OK;
}

hcrt_status_t hcrt__fsync_dir(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "cannot fsync directory %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return HCRT_ERR_IO;
    }
    close(fd);
    return HCRT_OK;
}

int hcrt__write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t hcrt__pread_full(int fd, void *buf, size_t len, uint64_t offset)
{
    char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, p + done, len - done, (off_t)(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

hcrt_status_t hcrt__write_file_atomic(const char *dir, const char *name, const char *tmpname,
                                      const void *data, size_t len, char *err, size_t errlen)
{
    char path[4096], tmp[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/%s", dir, tmpname);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return HCRT_ERR_IO;
    }
    if (hcrt__write_full(fd, data, len) != 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return HCRT_ERR_IO;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return HCRT_ERR_IO;
    }
    return hcrt__fsync_dir(dir, err, errlen);
}

/* Parses "step-NNNNNNNN" (8 or more digits), -1 otherwise. */
static int64_t step_of(const char *name)
{
    if (strncmp(name, "step-", 5) != 0 || strlen(name) < 13 || strlen(name) > 24)
        return -1;
    int64_t v = 0;
    for (const char *p = name + 5; *p; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

static int cmp_desc(const void *a, const void *b)
{
    const hcrt__ckpt_step_entry_t *x = a, *y = b;
    return x->step > y->step ? -1 : x->step < y->step;
}

hcrt_status_t hcrt__ckpt_scan(const char *dir, hcrt__ckpt_step_entry_t **entries, size_t *n, char *err,
                              size_t errlen)
{
    hcrt__ckpt_step_entry_t *list = NULL;
    size_t count = 0, cap = 0;
    DIR *d = opendir(dir);

    *entries = NULL;
    *n = 0;
    if (d == NULL) {
        if (errno == ENOENT)
            return HCRT_OK;
        snprintf(err, errlen, "cannot open directory %s: %s", dir, strerror(errno));
        return HCRT_ERR_IO;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int64_t step = step_of(de->d_name);
        if (step < 0)
            continue;
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            hcrt__ckpt_step_entry_t *nl = realloc(list, ncap * sizeof(*nl));
            if (nl == NULL) {
                free(list);
                closedir(d);
                return HCRT_ERR_NO_MEMORY;
            }
            list = nl;
            cap = ncap;
        }
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s/%s", dir, de->d_name, HCRT__CKPT_MANIFEST);
        list[count].step = step;
        list[count].committed = stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
        count++;
    }
    closedir(d);
    if (count)
        qsort(list, count, sizeof(*list), cmp_desc);
    *entries = list;
    *n = count;
    return HCRT_OK;
}

bool hcrt__ckpt_take_spare(const char *dir, const char *name, const char *path)
{
    char spare[4096 + 80];
    snprintf(spare, sizeof(spare), "%s/%s/%s", dir, HCRT__CKPT_SPARE, name);
    return rename(spare, path) == 0;
}

hcrt_status_t hcrt__ckpt_write_copy(const char *level_dir, const char *stepdir, const char *name,
                                    const unsigned char *data, uint64_t bytes, char *err, size_t errlen)
{
    char path[4096 + 300];
    const char *slash = strrchr(name, '/');
    if (slash != NULL) {
        /* A copy in a subdirectory of the step (partner/rank-N.bin): create it, durably. */
        snprintf(path, sizeof(path), "%s/%.*s", stepdir, (int)(slash - name), name);
        hcrt_status_t st = hcrt__mkdir_p(path, err, errlen);
        if (st == HCRT_OK)
            st = hcrt__fsync_dir(stepdir, err, errlen);
        if (st != HCRT_OK)
            return st;
    }
    snprintf(path, sizeof(path), "%s/%s", stepdir, name);
    bool recycled = hcrt__ckpt_take_spare(level_dir, name, path);
    int fd = open(path, O_WRONLY | O_CREAT | (recycled ? 0 : O_TRUNC) | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return HCRT_ERR_IO;
    }
    /* In chunk-sized writes: one write() of gigabytes is allowed to stop short anyway. */
    for (uint64_t off = 0; off < bytes; off += HCRT__CKPT_CHUNK) {
        size_t len = (size_t)(bytes - off < HCRT__CKPT_CHUNK ? bytes - off : HCRT__CKPT_CHUNK);
        if (hcrt__write_full(fd, data + off, len) != 0) {
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            close(fd);
            return HCRT_ERR_IO;
        }
    }
    if (ftruncate(fd, (off_t)bytes) != 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "cannot sync %s: %s", path, strerror(errno));
        close(fd);
        return HCRT_ERR_IO;
    }
    close(fd);
    if (slash != NULL) {
        snprintf(path, sizeof(path), "%s/%.*s", stepdir, (int)(slash - name), name);
        return hcrt__fsync_dir(path, err, errlen);
    }
    return hcrt__fsync_dir(stepdir, err, errlen);
}

/* Whether a file name is a data file (rank-N.bin), the only kind worth recycling. */
static bool is_data_file(const char *name)
{
    size_t len = strlen(name);
    return len > 9 && strncmp(name, "rank-", 5) == 0 && strcmp(name + len - 4, ".bin") == 0;
}

/* Removes every file of directory `path`, and `path` itself. With `spare` (a directory), data files move
 * there instead. The partner subdirectory of a node-local step is emptied the same way (its data files
 * going to spare/partner/, so they never mix with the node's own files of the same name). */
static hcrt_status_t remove_dir(const char *path, const char *spare, char *err, size_t errlen)
{
    char file[4096 + 300], to[4096 + 600];
    if (spare != NULL && mkdir(spare, 0755) != 0 && errno != EEXIST)
        spare = NULL;
    DIR *d = opendir(path);
    if (d == NULL) {
        if (errno == ENOENT)
            return HCRT_OK;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return HCRT_ERR_IO;
    }
    struct dirent *de;
    hcrt_status_t st = HCRT_OK;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
        struct stat sb;
        if (strcmp(de->d_name, HCRT__CKPT_PARTNER_DIR) == 0 && lstat(file, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            if (spare != NULL)
                snprintf(to, sizeof(to), "%s/%s", spare, HCRT__CKPT_PARTNER_DIR);
            st = remove_dir(file, spare ? to : NULL, err, errlen);
            if (st != HCRT_OK)
                break;
            continue;
        }
        if (spare != NULL && is_data_file(de->d_name)) {
            /* Kept for the next save: on virtual machines that hand freed pages back to the host,
             * writing into new pages costs more than the write itself. */
            snprintf(to, sizeof(to), "%s/%s", spare, de->d_name);
            if (rename(file, to) == 0)
                continue;
        }
        if (unlink(file) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "cannot remove %s: %s", file, strerror(errno));
            st = HCRT_ERR_IO;
            break;
        }
    }
    closedir(d);
    if (st == HCRT_OK && rmdir(path) != 0 && errno != ENOENT && errno != ENOTEMPTY) {
        snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
        st = HCRT_ERR_IO;
    }
    return st;
}

hcrt_status_t hcrt__ckpt_remove_step(const char *dir, int64_t step, const void *fault_ctx, bool recycle,
                                     char *err, size_t errlen)
{
    char path[4096], file[4096 + 300], spare[4096 + 300];
    if (!hcrt__ckpt_step_path(path, sizeof(path), dir, step)) {
        snprintf(err, errlen, "path too long: %s", dir);
        return HCRT_ERR_INVALID_ARG;
    }
    /* The manifest goes first, durably: from then on the step is uncommitted, so an interruption
     * leaves a partial step that restore ignores and the next gc finishes. */
    snprintf(file, sizeof(file), "%s/%s", path, HCRT__CKPT_MANIFEST);
    if (unlink(file) == 0)
        hcrt__fsync_dir(path, err, errlen);
    if (hcrt__ckpt_gc_hook)
        hcrt__ckpt_gc_hook(fault_ctx, step);
    snprintf(spare, sizeof(spare), "%s/%s", dir, HCRT__CKPT_SPARE);
    return remove_dir(path, recycle ? spare : NULL, err, errlen);
}

hcrt_status_t hcrt__ckpt_gc_dir(const char *dir, int keep, int64_t in_flight, const void *fault_ctx,
                                bool recycle, int *removed, char *err, size_t errlen)
{
    hcrt__ckpt_step_entry_t *list;
    size_t n;
    int kept = 0, gone = 0;
    hcrt_status_t st = hcrt__ckpt_scan(dir, &list, &n, err, errlen);
    if (st != HCRT_OK)
        return st;
    /* An uncommitted step newer than every committed one may be a save in flight (of this job, or of
     * another process such as a running job seen by hcrt-ckpt gc): it is left alone. */
    int64_t newest = -1;
    for (size_t i = 0; i < n && newest < 0; i++)
        if (list[i].committed)
            newest = list[i].step;
    for (size_t i = 0; i < n; i++) {
        bool drop;
        if (list[i].step == in_flight || (!list[i].committed && list[i].step > newest))
            drop = list[i].committed && ++kept > keep;
        else if (!list[i].committed)
            drop = true;
        else
            drop = ++kept > keep;
        if (!drop)
            continue;
        st = hcrt__ckpt_remove_step(dir, list[i].step, fault_ctx, recycle, err, errlen);
        if (st != HCRT_OK)
            break;
        gone++;
    }
    free(list);
    if (removed)
        *removed = gone;
    return st;
}

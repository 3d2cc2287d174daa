/*
 * LD_PRELOAD shim for the power-loss tests: after each successful fsync/fdatasync of a file
 * whose name ends in ".aof", append "<size> <path>" to $FSYNC_SHIM_LOG, the size being the
 * file's size when the call started (everything written before it is then on disk). Cutting
 * the AOF back to the last recorded size emulates a power cut that lost the page cache.
 *
 * Built by coupon/lab/chaos/redis_private.py (build_shim): gcc -shared -fPIC -O2 -o libfsyncsize.so fsync_size.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef int (*sync_fn)(int);

static int is_aof(int fd, char *path, size_t room) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, room - 1);
    if (n < 4) return 0;
    path[n] = '\0';
    return strcmp(path + n - 4, ".aof") == 0;
}

static int synced(int fd, const char *name) {
    static sync_fn real[2];
    int which = name[1] == 's' ? 0 : 1; /* fsync, fdatasync */
    if (!real[which]) real[which] = (sync_fn)dlsym(RTLD_NEXT, name);
    char path[4096];
    struct stat st;
    int aof = is_aof(fd, path, sizeof path) && fstat(fd, &st) == 0;
    int rc = real[which](fd);
    const char *log = getenv("FSYNC_SHIM_LOG");
    if (rc == 0 && aof && log) {
        char line[4200];
        int len = snprintf(line, sizeof line, "%lld %s\n", (long long)st.st_size, path);
        int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (out >= 0) {
            if (write(out, line, (size_t)len) < 0) { /* nothing to do: the test will see it */ }
            close(out);
        }
    }
    return rc;
}

int fsync(int fd) { return synced(fd, "fsync"); }
int fdatasync(int fd) { return synced(fd, "fdatasync"); }

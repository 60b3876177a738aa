/*
 * trusted_dir.h - for the tests that load plugins: whether the loader can trust a folder at all
 * (itself and every folder above it owned by root or this user, writable by no one else), worked
 * out independently of core/loader.c. A build tree under a sticky /tmp cannot be trusted: those
 * tests then say SKIP (exit code 77, which ctest shows as "Skipped") instead of failing for a
 * reason that is not theirs, or passing without having run.
 */
#ifndef SCALEBUS_TESTS_TRUSTED_DIR_H
#define SCALEBUS_TESTS_TRUSTED_DIR_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The exit code that tells ctest a test was skipped (SKIP_RETURN_CODE in tests/cmake/abi.cmake). */
#define TEST_SKIP_EXIT 77

/* 1 when `dir` and every folder above it may be trusted; else 0 with the first one that may not,
 * and why, in why. */
static inline int test_dir_trusted(const char *dir, char *why, size_t len)
{
    char p[PATH_MAX];
    if (!realpath(dir, p)) {
        snprintf(why, len, "%s does not exist", dir);
        return 0;
    }
    for (;;) {
        struct stat st;
        if (stat(p, &st) != 0) {
            snprintf(why, len, "%s cannot be examined", p);
            return 0;
        }
        if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & (S_IWGRP | S_IWOTH))) {
            snprintf(why, len, "%s (mode %04o, owner uid %u) is writable or owned by another user",
                     p, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
            return 0;
        }
        if (strcmp(p, "/") == 0)
            return 1;
        char *slash = strrchr(p, '/');
        slash[slash == p ? 1 : 0] = '\0';
    }
}

#endif

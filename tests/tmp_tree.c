/*
 * tmp_tree.c - see tmp_tree.h. Shared by the loader and ABI tests, whose temporary folders are
 * left with the unsafe modes they test.
 */
#define _DEFAULT_SOURCE
#include "tmp_tree.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void tmp_tree_remove(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    chmod(path, 0700);
    DIR *dp = opendir(path);
    if (dp) {
        struct dirent *de;
        while ((de = readdir(dp)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char child[PATH_MAX];
            snprintf(child, sizeof child, "%s/%s", path, de->d_name);
            tmp_tree_remove(child);
        }
        closedir(dp);
    }
    rmdir(path);
}

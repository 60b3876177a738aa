/*
 * tmp_tree.h - removing a test's temporary folder tree, whatever modes the test left in it.
 */
#ifndef SCALEBUS_TEST_TMP_TREE_H
#define SCALEBUS_TEST_TMP_TREE_H

/* rm -rf PATH: folders are made writable first, links are removed, never followed. */
void tmp_tree_remove(const char *path);

#endif

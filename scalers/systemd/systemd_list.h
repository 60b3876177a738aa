/*
 * systemd_list.h - a list of the systemd scaler's members from what the manager says: the
 * ListUnitsByPatterns reply read into entries (ours only, bounded), each member's started-at
 * (which property gives it, whether the last list's value still holds), and their order.
 *
 * A list costs one ListUnitsByPatterns call, plus one Get of a timestamp for each member whose
 * started-at is not known yet (all sent at once, answered together): a member listed before in
 * the same state, with no job on it then or now and no JobRemoved for it since, keeps its value.
 * Readers take an sd_bus_message, so tests/test_systemd_units.c builds replies and checks them.
 */
#ifndef SB_SYSTEMD_LIST_H
#define SB_SYSTEMD_LIST_H

#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-bus.h>

#include "systemd_units.h"

/* One member of ours from a list. */
typedef struct sd_entry {
    char *name;
    char *path; /* its object path, for the Get */
    int64_t index;
    sb_member_state state;
    uint32_t job_id;   /* a job pending on the unit when listed (0: none) */
    uint64_t stamp_us; /* started-at in microseconds (CLOCK_REALTIME); 0: unknown */
    int stamp_known;   /* stamp_us was read for this state (or carried from the last list) */
} sd_entry;

void sd_entries_free(sd_entry *e, size_t n);

/* Reads a ListUnitsByPatterns reply (a(ssssssouso)) into our members: names that parse under n
 * (sd_unit_index >= 0) in a member state (sd_member_state != 0), at most max of them (the rest is
 * ignored). Returns 0 with a malloc'ed array in *out (NULL when empty), or a negative errno (a
 * reply of another shape, out of memory) with nothing allocated. */
int sd_list_parse(sd_bus_message *m, const sd_naming *n, size_t max, sd_entry **out, size_t *nout);

/* The org.freedesktop.systemd1.Unit property that gives a member's started-at in state st:
 * "InactiveExitTimestamp" while starting (the start began then; ActiveEnterTimestamp is still the
 * last run's), "ActiveEnterTimestamp" otherwise. */
const char *sd_stamp_property(sb_member_state st);

/* Carries started-at over from the last list (prev) into cur where it still holds: same name,
 * same state, the old value known, and no job on the unit then or now. Returns how many entries of
 * cur still need a read (stamp_known 0). */
size_t sd_stamps_carry(sd_entry *cur, size_t ncur, const sd_entry *prev, size_t nprev);

/* A job on unit name ended (JobRemoved): its started-at may have changed, read it again. */
void sd_stamps_forget(sd_entry *e, size_t n, const char *name);
/* Every started-at is doubtful (a new connection: signals may have been missed). */
void sd_stamps_forget_all(sd_entry *e, size_t n);

/* Reads a Get reply holding a "t" in its "v". Returns 0, or a negative errno (another type). */
int sd_read_stamp(sd_bus_message *m, uint64_t *out);

/* Oldest first, the order the fleet's "later is newer" reads: members still starting last, then
 * by started-at, then by index. */
void sd_entries_sort(sd_entry *e, size_t n);

#endif

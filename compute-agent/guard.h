/* guard: the rules the agent applies to what it is sent before it acts on it (issue #13,
 * "the agent trusts nothing it is sent"). No libvirt, no AMQP: string rules, plus the few
 * file-system operations that must follow them without a race (walking a path under a
 * trusted root with O_NOFOLLOW, creating and removing files relative to an opened directory).
 *
 * Every refusal comes back as a newly allocated, lowercase reason in *why that names the
 * offending value and the rule it broke (the caller frees it and prefixes the field name). */
#ifndef FERRY_GUARD_H
#define FERRY_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Longest path and path component the agent accepts from a peer. */
#define GUARD_PATH_MAX 4095
#define GUARD_NAME_MAX 255

/* Checks that path (len bytes, which may hold a NUL: refused) is an absolute path strictly
 * inside one of the nroots trusted directories roots[] (absolute, from the configuration)
 * with no empty, "." or ".." component and no control byte. On success returns 0, sets *root
 * to the index of the root it is under and *rel to the part after "<root>/" (borrowed from
 * path). Returns -1 with *why otherwise. */
int guard_path(const char *path, size_t len, const char *const *roots, size_t nroots, size_t *root, const char **rel,
               char **why) FERRY_WUR;

/* Opens the directory holding rel (a path relative to root already checked by guard_path),
 * walking every component from root with O_DIRECTORY|O_NOFOLLOW, so a symlink anywhere below
 * root is refused; root itself (trusted configuration) may be a symlink. With create, missing
 * directories are made (mode 0755), root included when it is missing. On success returns 0, *dirfd is the directory (caller
 * closes) and *leaf the last component of rel (borrowed). Returns -1 with *why. */
int guard_open_parent(const char *root, const char *rel, int create, int *dirfd, const char **leaf,
                      char **why) FERRY_WUR;

/* Checks, creating nothing, that rel under root could be created or is a regular file: the
 * directories on the way that exist are real directories (no symlink), and what is at rel,
 * if anything, is a regular file. Returns 0, or -1 with *why. */
int guard_check_place(const char *root, const char *rel, char **why) FERRY_WUR;

/* Creates the new regular file rel under root (guard_open_parent with create, then
 * openat(O_CREAT|O_EXCL|O_NOFOLLOW)). Returns 1 with *fd (caller closes) when made, 0 when a
 * regular file is already there (*fd = -1; idempotent callers), -1 with *why otherwise (a
 * symlink or anything but a regular file at the place, a symlinked directory, an I/O error). */
int guard_create_file(const char *root, const char *rel, int *fd, char **why) FERRY_WUR;

/* Removes the regular file rel under root with unlinkat relative to its opened parent
 * (walked with O_NOFOLLOW). Returns 1 when removed, 0 when absent, -1 with *why when it is not
 * a regular file (never removed) or the walk or the unlink fails. */
int guard_unlink_file(const char *root, const char *rel, char **why) FERRY_WUR;

/* The shared-storage probe file name check_source writes for migration:
 * ".ferry-probe-<migration>-<8 lowercase hex digits of salt>", into buf (>= 48 bytes). */
void guard_probe_name(char *buf, size_t n, int64_t migration, uint32_t salt);
/* Checks that name (len bytes) is exactly a probe name of guard_probe_name for migration.
 * Returns 0, or -1 with *why. */
int guard_probe_check(const char *name, size_t len, int64_t migration, char **why) FERRY_WUR;

/* The probes a destination found (and removed), newest GUARD_PROBE_MEMO of them: a
 * check_destination sent again (its first reply was lost) names the same probe, which the
 * first call removed, and must get the same answer. Owned by one thread (the agent's RPC
 * worker); zero-initialised is empty. */
#define GUARD_PROBE_MEMO 16
typedef struct guard_probe_memo {
    char name[GUARD_PROBE_MEMO][48];
    unsigned next;
} guard_probe_memo;
/* Remembers name (a probe name; longer ones are not kept), forgetting the oldest. */
void guard_probe_memo_add(guard_probe_memo *m, const char *name);
/* Whether name is one of the remembered probes. */
int guard_probe_memo_has(const guard_probe_memo *m, const char *name);

/* Checks a host name (RFC 1123: dot-separated labels of 1-63 letters, digits and '-', not
 * starting or ending with '-', 253 bytes at most, last label not all digits). Returns 0, or
 * -1 with *why. */
int guard_host_name(const char *s, size_t len, char **why) FERRY_WUR;

/* Checks a destination address for a libvirt URI: a host name (guard_host_name), a dotted
 * IPv4 address or a bracketed IPv6 address ("[::1]", no zone), each with an optional ":port"
 * (1-65535, decimal, no leading zero). Nothing else: no '/', '?', '&', '@', '%', space or
 * control byte can pass. Returns 0, or -1 with *why. */
int guard_address(const char *s, size_t len, char **why) FERRY_WUR;
/* Checks a migration network address ([agent] migration_address, a destination's in
 * live_migration): guard_address without the port (it is a listen address too). 0, or -1 with
 * *why (caller frees). */
int guard_data_address(const char *s, size_t len, char **why) FERRY_WUR;

/* Checks a name that goes into a path or a libvirt lookup (bridge, network): 1-len_max
 * bytes of [A-Za-z0-9._-], not "." or "..". Returns 0, or -1 with *why. */
int guard_plain_name(const char *s, size_t len, size_t len_max, char **why) FERRY_WUR;

/* The fencing rule: a call carrying epoch got for migration may act only when got is not
 * below seen, the highest epoch already seen for it. Returns 0 (then the caller records
 * max(seen, got)), or -1 with *why naming both epochs. */
int guard_epoch(int64_t migration, int64_t seen, int64_t got, char **why) FERRY_WUR;

#endif

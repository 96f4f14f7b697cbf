/* Private declarations of VHD Sets.  The file format and the invariants
 * VS-n cited in the code are in docs/FORMAT-vhds.md; the operations in
 * docs/VHD-SETS.md. */
#ifndef VHDKIT_SET_H
#define VHDKIT_SET_H

#include <stdbool.h>
#include <stdint.h>

#include "disk.h"
#include "guid.h"

#define VHDS_SLOT        (1024 * 1024)
#define VHDS_HDR         128
#define VHDS_MEMBER      288
#define VHDS_RECORD      64
#define VHDS_MAX_MEMBERS 1024
#define VHDS_MAX_RECORDS 4096
#define VHDS_NONE        0xFFFFFFFFu
#define VHDS_NAME_MAX    256
#define VHDS_PENDING_MERGE 1u
#define VHDS_REC_HAS_RCT 1u

struct vhds_member {
  uint32_t parent;               /* VHDS_NONE for the base */
  char name[VHDS_NAME_MAX];
};

struct vhds_record {
  struct guid id;
  int64_t ctime_ns;
  uint32_t member;               /* VHDS_NONE: a reference point */
  uint32_t flags;                /* VHDS_REC_HAS_RCT */
  struct guid epoch;
  uint32_t gen;
};

struct vhds {
  uint64_t seq;
  struct guid set_id;
  uint32_t leaf;
  uint32_t pending, pend_child, pend_parent;
  uint32_t nmembers, nrecords;
  struct vhds_member *m;
  struct vhds_record *r;
};

/* vhds.c: the format. */
/* Validate and decode one copy.  0, or -1 with the reason in WHY. */
int vhds_decode (const uint8_t *buf, size_t len, struct vhds *v, char *why, size_t whylen);
/* Encode into BUF (VHDS_SLOT bytes); returns the copy's length. */
size_t vhds_encode (const struct vhds *v, uint8_t *buf);
/* Validate a description in memory (the checks of vhds_decode). */
int vhds_validate (const struct vhds *v, char *why, size_t whylen);
void vhds_free (struct vhds *v);
int vhds_copy (struct vhds *dst, const struct vhds *src);
/* Editing helpers; -1 only for ENOMEM. */
int vhds_add_member (struct vhds *v, const char *name, uint32_t parent, uint32_t *index);
void vhds_remove_member (struct vhds *v, uint32_t i);
int vhds_add_record (struct vhds *v, const struct vhds_record *r);
void vhds_remove_record (struct vhds *v, uint32_t i);
uint32_t vhds_find_record (const struct vhds *v, const struct guid *id);
uint32_t vhds_record_of_member (const struct vhds *v, uint32_t member);
uint32_t vhds_children (const struct vhds *v, uint32_t member, uint32_t *only);

/* set.c: a set open in this process.
 *
 * Locking (docs/ARCHITECTURE.md): one struct set per set file per
 * process, found through a registry (L-12, its own mutex, held for list
 * work only).  The set's own mutex (L-13) guards its description, its
 * list of open disks and the operations run in this process, one at a
 * time; it is held across an operation and across opening a disk of the
 * set, never by the data path (disks do their I/O without it).  Across
 * processes the set file's record lock (VS-7) says who may change it:
 * shared while disks of the set are open, exclusive while an operation
 * runs (converted atomically: another process holding it shared makes
 * the operation fail with 32774).
 */
struct set_disk;

struct set {
  char *path;                    /* as first given */
  char *dir;                     /* the set's folder, resolved */
  char *stem;                    /* file name without ".vhds" */
  uint64_t dev, ino;             /* the set file (registry key) */
  struct io *io;                 /* the .vhds, record-locked (VS-7) */
  bool can_write;                /* io is open for writing */
  int lock_held;                 /* IO_LOCK_* now held on io */
  int slot;                      /* the current copy */
  struct vhds v;
  pthread_mutex_t lock;          /* L-13 */
  unsigned refs;                 /* under the registry lock */
  struct set_disk *disks;        /* under lock: disks of the set open here */
  struct set *next;              /* the registry */
};

/* A disk of the set, open in this process. */
struct set_disk {
  struct disk *d;
  char member[VHDS_NAME_MAX];    /* the member it reads (its leaf, or a snapshot's image) */
  bool snapshot;                 /* opened as SET.vhds@ID */
  struct set_disk *next;
};

/* The path of member I (VS-2 checked): malloc'd, NULL on error. */
char *set_member_path (struct set *s, uint32_t i);

/* Split "SET.vhds@ID": true if PATH names a set (with or without @ID);
 * *SETPATH is malloc'd, *SNAP is the ID text inside PATH or NULL. */
bool set_path_split (const char *path, char **setpath, const char **snap);

/* ---- the interface of the layer (for api.c) ---- */

/* Open the disk a set path names (its leaf, or SET.vhds@ID a snapshot,
 * read-only): *D and *SD (the registration to give to set_disk_close). */
int set_disk_open (const char *path, unsigned flags, struct set **s, struct set_disk **sd);
int set_disk_close (struct set *s, struct set_disk *sd);
/* GetVirtualDiskChanges on a disk of the set (snapshot IDs as LimitId,
 * TargetSnapshotId). */
int set_changes (struct set *s, struct set_disk *sd, const char *limit_id, const char *target,
                 uint64_t off, uint64_t len, size_t max_ranges, struct vhdkit_changes *out);
int set_check (const char *path, vhdkit_report_fn report, void *opaque);

/* The operations (docs/VHD-SETS.md), by path; in-process disks of the
 * set are switched or respected as described there. */
int set_convert (const char *image, const char *set_path, uint32_t rct_granularity);
int set_snapshot (const char *set, const char *id, char *out_id);
int set_get_info (const char *set, struct vhdkit_set_info *out);
void set_info_free (struct vhdkit_set_info *i);
int set_get_snapshots (const char *set, const char *const *ids, size_t n_ids, bool want_parents,
                       struct vhdkit_snapshot_info ***out, size_t *n);
void set_snapshots_free (struct vhdkit_snapshot_info **a, size_t n);
int set_delete_snapshot (const char *set, const char *id, bool persist,
                         vhdkit_progress_fn progress, void *opaque);
int set_apply_snapshot (const char *set, const char *id);
int set_optimize (const char *set, vhdkit_progress_fn progress, void *opaque);
int set_set_snapshot_info (const char *set, const struct vhdkit_snapshot_info *info);

#endif

/* Private declarations of VHD Sets.  The file format and the invariants
 * VS-n cited in the code are in docs/FORMAT-vhds.md; the operations in
 * docs/VHD-SETS.md. */
#ifndef VHDKIT_SET_H
#define VHDKIT_SET_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"
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
/* Editing helpers; -1 only for ENOMEM. */
int vhds_add_member (struct vhds *v, const char *name, uint32_t parent, uint32_t *index);
void vhds_remove_member (struct vhds *v, uint32_t i);
int vhds_add_record (struct vhds *v, const struct vhds_record *r);
void vhds_remove_record (struct vhds *v, uint32_t i);
uint32_t vhds_find_record (const struct vhds *v, const struct guid *id);
uint32_t vhds_record_of_member (const struct vhds *v, uint32_t member);
uint32_t vhds_children (const struct vhds *v, uint32_t member, uint32_t *only);

/* set.c: an open set. */
struct set {
  char *path;                    /* as given */
  char *dir;                     /* the set's folder, resolved */
  char *stem;                    /* file name without ".vhds" */
  struct io *io;                 /* the .vhds, locked (VS-7) */
  bool exclusive;
  int slot;                      /* the current copy */
  struct vhds v;
};

/* Open PATH (a .vhds) and take its lock: shared, or exclusive for
 * operations.  NULL on failure with the error set. */
struct set *set_open (const char *path, bool exclusive);
void set_close (struct set *s);
/* The path of member I (VS-2 checked): malloc'd, NULL on error. */
char *set_member_path (struct set *s, uint32_t i);
/* Readers' view of a set with a pending merge whose rename is done. */
void set_settle_view (struct set *s);

/* Split "SET.vhds@ID": true if PATH names a set (with or without @ID);
 * *SETPATH is malloc'd, *SNAP is the ID text inside PATH or NULL. */
bool set_path_split (const char *path, char **setpath, const char **snap);

/* disk.c calls: open the disk a set path names (leaf or snapshot). */
struct vhdkit_disk *set_disk_open (const char *path, unsigned flags);
/* query.c calls: resolve LIMIT_ID/TARGET on a disk opened through a set.
 * Sets *LIMIT to the RCT ID to use (in BUF), *TD to the target's disk to
 * query instead of D (caller closes), *EMPTY if the answer is no change. */
int set_resolve_query (struct vhdkit_disk *d, const char *limit_id, const char *target,
                       char *buf, const char **limit, struct vhdkit_disk **td, bool *empty);

#endif

/* The disk layer (layer 5, docs/ARCHITECTURE.md): an image with its
 * change tracking, shared by many threads.
 *
 * A struct disk is the top image of a chain (chain.h) and its tracking
 * state (rct/rct.h), behind a gate (common/gate.h, L-2): every call
 * passes the gate; calls that change what the others rely on (resize,
 * enabling or disabling tracking, switching the image, close) close it
 * and run alone.  Every function here takes care of the gate itself:
 * callers hold none.  Arguments are checked by the caller (api.c).
 */
#ifndef VHDKIT_DISK_H
#define VHDKIT_DISK_H

#include "chain.h"
#include "gate.h"
#include "rct/rct.h"

struct disk {
  struct gate gate;               /* L-2 */
  struct image *top;              /* changes only with the gate closed */
  struct rct *rct;                /* NULL: not tracked; likewise */
  unsigned flags;                 /* VHDKIT_OPEN_* */
  bool writable;
};

/* Open PATH (an image file) with its chain; attach its tracking unless
 * UNTRACKED (merges inside a set). */
struct disk *disk_open (const char *path, unsigned flags, bool untracked);
/* Flush, detach tracking, close.  Waits for calls in progress; calls
 * that come while it runs fail with VHDKIT_RC_NOT_AVAILABLE.  -1 if
 * data could not be made durable (released either way). */
int disk_close (struct disk *d);
/* Close on a failure path: the error that caused it stays. */
void disk_abandon (struct disk *d);

int disk_pread (struct disk *d, void *buf, size_t n, uint64_t off);
int disk_pwrite (struct disk *d, const void *buf, size_t n, uint64_t off, unsigned flags);
int disk_zero (struct disk *d, uint64_t n, uint64_t off, unsigned flags);
int disk_discard (struct disk *d, uint64_t n, uint64_t off, unsigned flags);
int disk_flush (struct disk *d);
int disk_map (struct disk *d, uint64_t off, uint64_t len, vhdkit_extent_fn fn, void *opaque);
int disk_get_info (struct disk *d, struct vhdkit_disk_info *info);
void disk_get_size (struct disk *d, uint64_t *size, uint32_t *lss);
int disk_resize (struct disk *d, uint64_t new_size);

int disk_rct_enable (struct disk *d, uint32_t granularity);
int disk_rct_disable (struct disk *d);
int disk_rct_status (struct disk *d, struct vhdkit_rct_status *st);
int disk_checkpoint (struct disk *d, char *id);
int disk_changes (struct disk *d, const char *limit_id, uint64_t off, uint64_t len,
                  size_t max_ranges, struct vhdkit_changes *c);
/* Count [OFF, OFF+LEN) as changed now (VHD Set apply). */
int disk_mark_changed (struct disk *d, uint64_t off, uint64_t len);
/* The epoch, the generation now written and the granularity; false if
 * the disk is not tracked, or its tracking cannot be trusted. */
bool disk_rct_current (struct disk *d, struct guid *epoch, uint32_t *cur, uint32_t *granularity);

/* Close the gate, run FN (DISK, OPAQUE) alone, open it again: for the
 * layers above that replace the image under a handle (VHD Sets). */
int disk_exclusive (struct disk *d, int (*fn) (struct disk *, void *), void *opaque);
/* With the gate closed (inside disk_exclusive): take the image and its
 * tracking away from D (flushed and detached cleanly; D is left with
 * none), or give D a new one (opened by disk_open, whose own struct is
 * freed). */
int disk_release_image (struct disk *d, char **path);
void disk_adopt (struct disk *d, struct disk *from);

/* ops.c: whole-file operations on the disk layer. */
int disk_convert (const char *src, const char *dst, const struct vhdkit_create_params *p);
/* Merge CHILD into its parent (VX-8); NEXT_DWG: the DataWriteGuid the
 * parent takes (NULL: a new one); TRACK_PARENT: the parent's tracking
 * records the merge. */
int disk_merge (const char *child_path, const uint8_t *next_dwg, bool track_parent,
                vhdkit_progress_fn progress, void *opaque);

#endif

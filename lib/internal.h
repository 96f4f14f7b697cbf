/* Private declarations shared by the parts of libvhdkit. */
#ifndef VHDKIT_INTERNAL_H
#define VHDKIT_INTERNAL_H

#include <pthread.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "vhdkit.h"
#include "io/io.h"

#define ATTR_PRINTF(a, b) __attribute__((format (printf, a, b)))

/* ---- errors (error.c) ---- */
/* Record an error: RC is a VHDKIT_RC_* code, ERRNUM an errno or 0. */
void set_error (uint32_t rc, int errnum, const char *fmt, ...) ATTR_PRINTF (3, 4);
/* Record an error whose code follows from ERRNUM (see rc_from_errno). */
void set_error_errno (int errnum, const char *fmt, ...) ATTR_PRINTF (2, 3);
uint32_t rc_from_errno (int errnum);
/* Prefix the current error message with "PREFIX: " (adds context). */
void error_prefix (const char *fmt, ...) ATTR_PRINTF (1, 2);
void clear_error (void);
/* Keep the current error across calls that clear it (closing handles
 * on an error path). */
struct saved_error { char msg[1024]; int errnum; uint32_t rc; };
void error_save (struct saved_error *e);
void error_restore (const struct saved_error *e);

/* ---- size helpers ---- */
static inline bool is_pow2 (uint64_t v) { return v && !(v & (v - 1)); }
static inline uint64_t div_round_up (uint64_t a, uint64_t b)
{ return a / b + (a % b != 0); }
static inline uint64_t round_up (uint64_t a, uint64_t b)
{ return div_round_up (a, b) * b; }
/* a + b without overflow into *r; false on overflow. */
static inline bool add_ok (uint64_t a, uint64_t b, uint64_t *r)
{ return !__builtin_add_overflow (a, b, r); }
static inline bool mul_ok (uint64_t a, uint64_t b, uint64_t *r)
{ return !__builtin_mul_overflow (a, b, r); }

#define MiB (UINT64_C(1) << 20)
#define KiB (UINT64_C(1) << 10)

/* ---- disks (disk.c) ----
 *
 * A struct vhdkit_disk is a format driver instance plus, for
 * differencing images, the open parent chain.  Public calls check their
 * arguments, take d->lock and call the driver; drivers call each other
 * (child -> parent) without locks because a parent handle belongs to
 * exactly one child.
 */
struct vhdkit_disk;

/* What a layer holds for an extent (driver->map_layer). */
#define LAYER_DATA   0   /* this file holds the data */
#define LAYER_ZERO   1   /* this file says the range reads as zeros */
#define LAYER_PARENT 2   /* this file defers to its parent */
typedef int (*layer_fn) (void *opaque, uint64_t off, uint64_t len, int what);

struct driver {
  const char *name;
  int (*pread) (struct vhdkit_disk *, void *, size_t, uint64_t);
  int (*pwrite) (struct vhdkit_disk *, const void *, size_t, uint64_t);
  int (*zero) (struct vhdkit_disk *, uint64_t count, uint64_t off);
  int (*flush) (struct vhdkit_disk *);
  /* Release everything; flush first if writable.  -1 if a flush failed. */
  int (*close) (struct vhdkit_disk *);
  void (*get_info) (struct vhdkit_disk *, struct vhdkit_disk_info *);
  /* Extents of this layer only, consecutive over [off, off+len). */
  int (*map_layer) (struct vhdkit_disk *, uint64_t off, uint64_t len,
                    layer_fn fn, void *opaque);
  int (*resize) (struct vhdkit_disk *, uint64_t new_size);
  /* The current DataWriteGuid (VHDX); NULL for formats without one. */
  void (*data_write_guid) (struct vhdkit_disk *, uint8_t out[16]);
  /* The image's io (for hints such as starting writeback). */
  struct io *(*get_io) (struct vhdkit_disk *);
};

struct vhdkit_disk {
  pthread_mutex_t lock;
  const struct driver *drv;
  void *priv;                  /* the driver's state */
  char *path;                  /* as given by the caller */
  char *parent_path;           /* resolved parent path, if any */
  unsigned flags;              /* VHDKIT_OPEN_* */
  bool writable;
  uint64_t size;               /* virtual size */
  uint32_t lss, pss;           /* logical / physical sector sizes */
  struct vhdkit_disk *parent;  /* NULL if none or not opened */
  unsigned depth;              /* 1 = no parent */
  struct rct *rct;             /* change tracking, if enabled */
  struct set *set;             /* opened through a VHD Set (holds its lock) */
  bool set_snapshot;           /* ... as one of its snapshots (read-only) */
};

/* Writes that every internal user (merge, convert) goes through, so that
 * change tracking sees them.  Lock held, arguments checked. */
int disk_write (struct vhdkit_disk *d, const void *buf, size_t n, uint64_t off);
int disk_zero (struct vhdkit_disk *d, uint64_t n, uint64_t off);
int disk_flush (struct vhdkit_disk *d);

/* Change tracking (lib/rct/rct.c). */
struct rct;
/* Load IMAGE.rct if it exists; 0 also when tracking is off. */
int rct_attach (struct vhdkit_disk *d);
/* Flush and release (close path).  -1 if tracking state could not be
 * made durable. */
int rct_detach (struct vhdkit_disk *d);
/* Before a write/zero of [off, off+len): make it recoverable (INV-1). */
int rct_note (struct vhdkit_disk *d, uint64_t off, uint64_t len, bool zero);
/* After the image was flushed: make tracking state durable. */
int rct_flush (struct vhdkit_disk *d);
/* Before the image takes a new DataWriteGuid (VHDX), INV-4. */
int rct_before_data_write_guid (struct vhdkit_disk *d, const uint8_t guid[16]);
/* Before the driver resizes: record the new size durably (RCT-8). */
int rct_resize_prepare (struct vhdkit_disk *d, uint64_t new_size);
/* The virtual size changed (after the driver resized). */
int rct_resized (struct vhdkit_disk *d, uint64_t old_size, uint64_t new_size);

/* VHD Sets (lib/rct/rct.c): tracking of SRC_IMAGE copied to DST_IMAGE
 * with DataWriteGuid DWG; a range marked changed now. */
int rct_clone_files (const char *src_image, const char *dst_image, const uint8_t dwg[16]);
int rct_mark_changed (struct vhdkit_disk *d, uint64_t off, uint64_t len);
/* lib/set/set.c */
struct set;
void set_close (struct set *s);
/* Open without attaching tracking (merges inside a set). */
struct vhdkit_disk *disk_open_untracked (const char *path, unsigned flags);
/* Merge CHILD into its parent, the parent taking NEXT as DataWriteGuid
 * (NULL = random), with the parent's tracking detached. */
int disk_merge_into_parent (const char *child_path, const uint8_t *next,
                            vhdkit_progress_fn progress, void *opaque);

/* Allocate a handle for PATH (no driver yet). */
struct vhdkit_disk *disk_new (const char *path, unsigned flags);
/* Free a handle and its parent chain without flushing (error paths). */
void disk_free (struct vhdkit_disk *d);
/* Unlocked calls used between layers. */
int disk_pread_unlocked (struct vhdkit_disk *d, void *buf, size_t n, uint64_t off);
int disk_close_unlocked (struct vhdkit_disk *d);
/* Open a disk, used for parents (read-only) with the depth so far and the
 * chain of (dev, ino) above it to detect loops. */
struct vhdkit_disk *disk_open_depth (const char *path, unsigned flags,
                                     unsigned depth, const uint64_t *chain_ids);
#define MAX_CHAIN_DEPTH 64

/* Format drivers. */
int vhdx_open (struct vhdkit_disk *d, struct io *io, const uint64_t *chain_ids);
int vhdx_create (const char *path, const struct vhdkit_create_params *p);
int vhdx_check (const char *path, vhdkit_report_fn report, void *opaque);
int raw_open (struct vhdkit_disk *d, struct io *io);
int raw_create (const char *path, const struct vhdkit_create_params *p);

/* Format probing (probe.c). */
int probe_io (struct io *io, const char *path);
bool path_has_vhdx_ext (const char *path);

#endif

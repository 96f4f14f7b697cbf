/* The format-driver interface (layer 2, docs/ARCHITECTURE.md).
 *
 * A driver knows one on-disk format and nothing above it.  Each exports
 * one const struct driver filled with designated initializers; the chain
 * layer (chain.c) is its only caller.  A driver instance is one open
 * file; it reads its parent only through the struct drv_next the chain
 * layer gives it (nbdkit's "next" for filters), and tells the layers
 * above about its changes only through the struct drv_hooks it was
 * opened with.
 *
 * Concurrency (L-1..L-3): every data call (pread, pwrite, zero, discard,
 * flush, extents) may run on many threads at once on one instance;
 * open, close and resize never overlap any other call on the instance
 * (the disk layer's gate, L-2, sees to that).
 */
#ifndef VHDKIT_DRIVER_H
#define VHDKIT_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Capabilities (struct driver .caps). */
#define DRV_CAN_ZERO_FAST   1u   /* some zeroing is cheaper than writing zeros */
#define DRV_CAN_DISCARD     2u   /* discard releases space (not just ignored) */
#define DRV_HAS_PARENTS     4u   /* differencing images exist in this format */
#define DRV_HAS_DWG         8u   /* a DataWriteGuid names the content (VHDX) */

/* Flags of pwrite / zero (the public VHDKIT_IO_* values). */
#define DRV_FUA       VHDKIT_IO_FUA
#define DRV_NO_HOLE   VHDKIT_IO_NO_HOLE
#define DRV_FAST_ZERO VHDKIT_IO_FAST_ZERO

/* What an extent of one layer holds (struct drv_extent .what). */
#define LAYER_DATA   0   /* this file holds the data */
#define LAYER_ZERO   1   /* this file says the range reads as zeros */
#define LAYER_PARENT 2   /* this file defers to its parent */

struct drv_extent { uint64_t off, len; int what; };

/* Extents are returned in a caller's array, never through a callback,
 * so no lock is ever held while code above runs (L-4).  A driver fills
 * consecutive extents from the start of the range and stops when the
 * array is full; the caller asks again from where it ended. */
struct drv_extents {
  struct drv_extent *e;
  size_t n, max;
};
/* Append an extent, merging with the last one of the same kind;
 * false when the array is full (the extent was not added). */
bool drv_extents_add (struct drv_extents *x, uint64_t off, uint64_t len, int what);

/* A differencing image's view of its parent chain. */
struct drv_next {
  /* Read N bytes at OFF of the composed parent (zeros past its end). */
  int (*pread) (void *opaque, void *buf, size_t n, uint64_t off);
  void *opaque;                   /* NULL: no parent opened */
};

/* Calls into the layers above, made through this table (never by name). */
struct drv_hooks {
  /* The image is about to take DataWriteGuid GUID as its new identity:
   * record it durably first (INV-4).  0 or -1 with the error set. */
  int (*before_data_write_guid) (void *opaque, const uint8_t guid[16]);
  void *opaque;
};

/* What open learns. */
struct drv_geometry {
  uint64_t size;                  /* virtual size */
  uint32_t lss, pss;              /* logical / physical sector sizes */
  bool has_parent;                /* a differencing image */
};

/* Where a differencing image says its parent is, and how to know it. */
#define DRV_MAX_CANDIDATES 6
struct drv_parent_req {
  char *candidates[DRV_MAX_CANDIDATES];   /* paths to try, in order (malloc'd) */
  int ncandidates;
  uint8_t linkage[2][16];         /* DataWriteGuids the parent may have */
  int nlinkage;
};

/* What create learns about a parent (chain.c opens it). */
struct drv_create_parent {
  const char *path;               /* as given */
  const char *real;               /* resolved */
  uint64_t size;
  uint32_t lss, pss;
  uint8_t data_write_guid[16];
};

struct drv_open_args {
  const char *path;               /* outlives the instance */
  struct io *io;                  /* owned by the instance from now on,
                                     also when open fails */
  bool writable;
  const struct drv_hooks *hooks;  /* may be NULL */
};

struct driver {
  const char *name;
  int format;                     /* VHDKIT_FORMAT_* */
  unsigned caps;

  /* 1 if HEAD (the first bytes of the file, HEADLEN of them) and TAIL
   * (its last 512, or fewer) say the file is in this format, else 0. */
  int (*probe) (const uint8_t *head, size_t headlen, const uint8_t *tail,
                size_t taillen, uint64_t file_size);
  /* Create PATH; PARENT is set for a differencing image. */
  int (*create) (const char *path, const struct vhdkit_create_params *p,
                 const struct drv_create_parent *parent);
  /* Validate the file's structure without changing it: 0 sound, 1
   * problems found (each passed to REPORT), -1 not checkable. */
  int (*check) (const char *path, vhdkit_report_fn report, void *opaque);

  int (*open) (const struct drv_open_args *a, void **inst, struct drv_geometry *g);
  /* Differencing images: where the parent is; and, once the chain layer
   * opened it, the way to read it. */
  int (*parent_req) (void *inst, struct drv_parent_req *req);
  void (*set_next) (void *inst, const struct drv_next *next);
  /* Release everything; flush first if writable.  -1 if a flush failed. */
  int (*close) (void *inst);

  int (*pread) (void *inst, void *buf, size_t n, uint64_t off);
  int (*pwrite) (void *inst, const void *buf, size_t n, uint64_t off, unsigned flags);
  int (*zero) (void *inst, uint64_t n, uint64_t off, unsigned flags);
  /* Advisory: release what the format can; the range may keep its data. */
  int (*discard) (void *inst, uint64_t n, uint64_t off);
  /* Every write completed before the call is durable when it returns. */
  int (*flush) (void *inst);
  /* Extents of this layer only over [OFF, OFF+LEN). */
  int (*extents) (void *inst, uint64_t off, uint64_t len, struct drv_extents *out);
  void (*get_info) (void *inst, struct vhdkit_disk_info *info);
  int (*resize) (void *inst, uint64_t new_size);

  /* DRV_HAS_DWG: the current DataWriteGuid. */
  void (*data_write_guid) (void *inst, uint8_t out[16]);
  /* DRV_HAS_DWG, merges (VX-8): take DW as the next DataWriteGuid; take
   * it now even if nothing is written; record the parent linkages. */
  int (*preset_data_write_guid) (void *inst, const uint8_t dw[16]);
  int (*take_data_write_guid) (void *inst);
  int (*set_linkages) (void *inst, const uint8_t link1[16], const uint8_t link2[16]);

  /* A hint to start writing back dirty data (long copies). */
  void (*hint_writeback) (void *inst);
};

extern const struct driver vhdx_driver, raw_driver;

#endif

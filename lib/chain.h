/* The chain layer (layer 3, docs/ARCHITECTURE.md): images and their
 * parents.
 *
 * A struct image is one open image file: its format driver's instance
 * and, for a differencing image, its parent image.  This layer picks the
 * driver (probe), opens parents by the locators the driver reports,
 * checks their identity, and composes reads and extents through the
 * chain.  Parents are shared: one open image per parent file per
 * process, reference counted, read-only (L-6).
 */
#ifndef VHDKIT_CHAIN_H
#define VHDKIT_CHAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "driver.h"

struct image {
  const struct driver *drv;
  struct drv_hooks hooks;         /* the driver calls these (stable address) */
  void *inst;                     /* the driver's instance */
  char *path;                     /* as opened */
  bool writable;
  unsigned flags;                 /* VHDKIT_OPEN_* */
  /* Size and sectors.  SIZE changes only by image_resize, which the
   * disk layer calls with its gate closed (L-2); readers load it
   * relaxed. */
  uint64_t size;
  uint32_t lss, pss;
  struct image *parent;           /* NULL: none, or not opened (NO_PARENT) */
  char *parent_path;              /* resolved path of the parent, if any */
  unsigned depth;                 /* 1 = no parent */
  struct io_stat st;              /* when opened (shared parents, L-6) */
  /* Shared parents: in the registry, with a count of users (L-6). */
  bool shared;
  unsigned refs;
  struct image *reg_next;
};

/* Open PATH with its parent chain.  FLAGS are VHDKIT_OPEN_*; HOOKS
 * (copied; NULL: none) go to the driver.  The image itself is never
 * shared; its parents are. */
struct image *image_open (const char *path, unsigned flags, const struct drv_hooks *hooks);
/* Point the hooks at another object (no call on the image runs). */
void image_set_hooks_opaque (struct image *img, void *opaque);
/* Close: flush a writable image, drop the parent.  -1 if data could not
 * be made durable (the image is released either way). */
int image_close (struct image *img);
/* Close on a failure path: the error that caused it stays. */
void image_abandon (struct image *img);

/* Create an image (the driver chosen by P->format or the path). */
int image_create (const char *path, const struct vhdkit_create_params *p);
/* Check a file (0 sound, 1 problems, -1 not checkable). */
int image_check (const char *path, vhdkit_report_fn report, void *opaque);
/* The format of PATH from its contents (VHDKIT_FORMAT_*), or
 * VHDKIT_FORMAT_UNKNOWN with the error set. */
int image_probe (const char *path);
/* .vhdx or .avhdx */
bool path_has_vhdx_ext (const char *path);

/* Data calls on the image (the top of its chain).  Reads past a
 * parent's end read zeros.  Arguments are checked by the caller. */
int image_pread (struct image *img, void *buf, size_t n, uint64_t off);
int image_pwrite (struct image *img, const void *buf, size_t n, uint64_t off, unsigned flags);
int image_zero (struct image *img, uint64_t n, uint64_t off, unsigned flags);
int image_discard (struct image *img, uint64_t n, uint64_t off);
int image_flush (struct image *img);
int image_resize (struct image *img, uint64_t new_size);
void image_get_info (struct image *img, struct vhdkit_disk_info *info);

/* Composed extents of [OFF, OFF+LEN): VHDKIT_EXTENT_* flags per
 * extent, consecutive, coalesced, into OUT (at most MAX); *N gets the
 * count.  They may end before OFF+LEN when OUT is full. */
struct image_extent { uint64_t off, len; unsigned flags; };
int image_extents (struct image *img, uint64_t off, uint64_t len,
                   struct image_extent *out, size_t max, size_t *n);
/* Extents of this image alone (LAYER_* kinds), as the driver says. */
int image_layer_extents (struct image *img, uint64_t off, uint64_t len,
                         struct drv_extent *out, size_t max, size_t *n);

/* The image's identity for change tracking: its DataWriteGuid (true)
 * or none (false: use image_stat). */
bool image_data_write_guid (struct image *img, uint8_t out[16]);
int image_stat (struct image *img, struct io_stat *st);
/* Merges (VX-8), VHDX only: see struct driver. */
int image_preset_data_write_guid (struct image *img, const uint8_t dw[16]);
int image_take_data_write_guid (struct image *img);
int image_set_linkages (struct image *img, const uint8_t link1[16], const uint8_t link2[16]);
void image_hint_writeback (struct image *img);

/* Let go of the parent (merges: the parent is then written through a
 * handle of its own).  Reads that need it fail afterwards. */
void image_drop_parent (struct image *img);

/* For tests and benchmarks: how many parent images are open (shared)
 * in this process. */
unsigned image_shared_count (void);

#endif

/* The raw format driver: a flat file whose bytes are the virtual disk.
 * The virtual size is the file size rounded up to 512 bytes (the tail
 * past end of file reads as zeros).  Durability is the file's sync.
 *
 * Concurrency: positioned I/O on one descriptor, no state of its own but
 * the poisoned flag: every call may run on many threads (L-1).
 * Crash behaviour: none of its own; a failed sync poisons the instance,
 * because the kernel may have dropped writes that had reported success,
 * and a later sync would say they are durable (VX-5 for raw images). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"

struct raw {
  const char *path;
  struct io *io;
  bool writable;
  uint64_t size;
  bool poisoned;                /* a sync failed */
};

static int
raw_pread (void *inst, void *buf, size_t n, uint64_t off)
{
  struct raw *r = inst;
  ssize_t got = io_pread (r->io, buf, n, off);
  if (got < 0) {
    set_error_errno (errno, "%s: read at %" PRIu64, r->path, off);
    return -1;
  }
  if ((size_t) got < n)
    memset ((char *) buf + got, 0, n - (size_t) got);
  return 0;
}

static int
poisoned (struct raw *r)
{
  if (!LOAD_ACQUIRE (&r->poisoned)) return 0;
  set_error (VHDKIT_RC_FAILED, EIO, "%s: an earlier flush failed, so writes that reported success may be lost; reopen the image", r->path);
  return -1;
}

static int
raw_flush (void *inst)
{
  struct raw *r = inst;
  if (!r->writable) return 0;
  if (poisoned (r)) return -1;
  if (io_sync (r->io) == -1) {
    set_error_errno (errno, "%s: flush", r->path);
    STORE_RELEASE (&r->poisoned, true);
    return -1;
  }
  return 0;
}

static int
raw_pwrite (void *inst, const void *buf, size_t n, uint64_t off, unsigned flags)
{
  struct raw *r = inst;
  if (poisoned (r)) return -1;
  if (io_pwrite (r->io, buf, n, off) == -1) {
    set_error_errno (errno, "%s: write at %" PRIu64, r->path, off);
    return -1;
  }
  return (flags & DRV_FUA) ? raw_flush (r) : 0;
}

static int
write_zeros (struct raw *r, uint64_t count, uint64_t off)
{
  static const char zeros[65536];
  while (count) {
    size_t n = count < sizeof zeros ? (size_t) count : sizeof zeros;
    if (raw_pwrite (r, zeros, n, off, 0) == -1) return -1;
    count -= n; off += n;
  }
  return 0;
}

/* Zeroing: a hole where the file system can punch one; allocated zeros
 * with NO_HOLE; written zeros otherwise (or, with FAST_ZERO, nothing and
 * ENOTSUP).  The file's size never changes. */
static int
raw_zero (void *inst, uint64_t count, uint64_t off, unsigned flags)
{
  struct raw *r = inst;
  if (poisoned (r)) return -1;
  int how = (flags & DRV_NO_HOLE) ? IO_ZERO_ALLOC : IO_ZERO_PUNCH;
  if (io_zero_range (r->io, off, count, how) == 0)
    return (flags & DRV_FUA) ? raw_flush (r) : 0;
  if (errno != EOPNOTSUPP) {
    set_error_errno (errno, "%s: zero %" PRIu64 "+%" PRIu64, r->path, off, count);
    return -1;
  }
  if (flags & DRV_FAST_ZERO) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, ENOTSUP,
               "%s: the file system cannot zero %" PRIu64 "+%" PRIu64 " faster than by writing zeros",
               r->path, off, count);
    return -1;
  }
  if (write_zeros (r, count, off) == -1) return -1;
  return (flags & DRV_FUA) ? raw_flush (r) : 0;
}

/* Discard: a hole, where the file system can punch one; zeros written
 * otherwise (a discarded range always reads as zeros). */
static int
raw_discard (void *inst, uint64_t count, uint64_t off)
{
  return raw_zero (inst, count, off, 0);
}

static int
raw_close (void *inst)
{
  struct raw *r = inst;
  int ret = 0;
  if (r->writable && raw_flush (r) == -1)
    ret = -1;
  if (io_close (r->io) == -1 && r->writable && ret == 0) {
    set_error_errno (errno, "%s: close", r->path);
    ret = -1;
  }
  free (r);
  return ret;
}

static void
raw_get_info (void *inst, struct vhdkit_disk_info *info)
{
  struct raw *r = inst;
  uint64_t size = 0;
  io_get_size (r->io, &size);
  info->format = VHDKIT_FORMAT_RAW;
  info->type = VHDKIT_TYPE_FIXED;
  info->file_size = size;
  info->min_internal_size = LOAD_RELAXED (&r->size);
  info->allocated_bytes = size;
}

/* Holes of the file (SEEK_DATA/SEEK_HOLE) are zero extents; an error
 * other than "no more data" says data (the safe answer). */
static int
raw_extents (void *inst, uint64_t off, uint64_t len, struct drv_extents *out)
{
  struct raw *r = inst;
  const uint64_t lss = 512;
  uint64_t end = off + len;
  while (off < end) {
    uint64_t data, hole;
    if (io_next_data (r->io, off, &data, &hole) == -1) {
      int what = errno == ENXIO ? LAYER_ZERO : LAYER_DATA;
      drv_extents_add (out, off, end - off, what);
      return 0;
    }
    if (data >= end) {
      drv_extents_add (out, off, end - off, LAYER_ZERO);
      return 0;
    }
    if (data > off) {
      uint64_t z = (data - off) / lss * lss;
      if (z && !drv_extents_add (out, off, z, LAYER_ZERO)) return 0;
      off += z;
    }
    uint64_t dend = hole > end ? end : hole;
    dend = round_up (dend, lss);
    if (dend > end) dend = end;
    if (dend <= off) dend = off + lss;
    if (!drv_extents_add (out, off, dend - off, LAYER_DATA)) return 0;
    off = dend;
  }
  return 0;
}

static int
raw_resize (void *inst, uint64_t new_size)
{
  struct raw *r = inst;
  /* The disk layer has checked that a removed tail holds no data. */
  if (io_truncate (r->io, new_size) == -1 || io_sync (r->io) == -1) {
    set_error_errno (errno, "%s: resize to %" PRIu64, r->path, new_size);
    return -1;
  }
  STORE_RELAXED (&r->size, new_size);
  return 0;
}

static void
raw_hint_writeback (void *inst)
{
  struct raw *r = inst;
  io_hint_writeback (r->io);
}

static int
raw_probe (const uint8_t *head, size_t headlen, const uint8_t *tail, size_t taillen,
           uint64_t file_size)
{
  return 1;                     /* anything is a raw image */
}

static int
raw_open (const struct drv_open_args *a, void **inst, struct drv_geometry *g)
{
  struct raw *r = calloc (1, sizeof *r);
  uint64_t size;
  if (!r || io_get_size (a->io, &size) == -1) {
    set_error_errno (r ? errno : ENOMEM, "%s: open", a->path);
    free (r);
    io_close (a->io);
    return -1;
  }
  r->path = a->path;
  r->io = a->io;
  r->writable = a->writable;
  r->size = round_up (size, 512);
  g->size = r->size;
  g->lss = 512;
  g->pss = 4096;
  g->has_parent = false;
  *inst = r;
  return 0;
}

static int
raw_create (const char *path, const struct vhdkit_create_params *p,
            const struct drv_create_parent *parent)
{
  uint32_t lss = p->logical_sector_size ? p->logical_sector_size : 512;
  if (p->size == 0 || p->size % lss) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: size %" PRIu64 " must be a non-zero multiple of %" PRIu32,
               path, p->size, lss);
    return -1;
  }
  if (parent || p->parent) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: raw images cannot have a parent", path);
    return -1;
  }
  struct io *io = io_open (path, O_RDWR | O_CREAT | O_EXCL, 0644);
  if (!io) {
    set_error_errno (errno, "%s: create", path);
    return -1;
  }
  int r = 0;
  if (io_truncate (io, p->size) == -1) r = -1;
  if (r == 0 && p->type == VHDKIT_TYPE_FIXED &&
      io_zero_range (io, 0, p->size, IO_ZERO_PREALLOC) == -1 && errno != EOPNOTSUPP)
    r = -1;
  if (r == 0 && io_sync (io) == -1) r = -1;
  if (r == -1) {
    set_error_errno (errno, "%s: create", path);
    io_close (io);
    unlink (path);
    return -1;
  }
  if (io_close (io) == -1) {
    set_error_errno (errno, "%s: close", path);
    return -1;
  }
  return 0;
}

static int
raw_check (const char *path, vhdkit_report_fn report, void *opaque)
{
  /* No structure to check: it opens, or it does not. */
  struct io *io = io_open (path, O_RDONLY, 0);
  if (!io) {
    set_error_errno (errno, "%s: cannot open", path);
    return -1;
  }
  io_close (io);
  return 0;
}

const struct driver raw_driver = {
  .name = "raw",
  .format = VHDKIT_FORMAT_RAW,
  .caps = DRV_CAN_ZERO_FAST | DRV_CAN_DISCARD,
  .probe = raw_probe,
  .create = raw_create,
  .check = raw_check,
  .open = raw_open,
  .close = raw_close,
  .pread = raw_pread,
  .pwrite = raw_pwrite,
  .zero = raw_zero,
  .discard = raw_discard,
  .flush = raw_flush,
  .extents = raw_extents,
  .get_info = raw_get_info,
  .resize = raw_resize,
  .hint_writeback = raw_hint_writeback,
};

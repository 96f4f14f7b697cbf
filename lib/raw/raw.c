/* The raw format driver: a flat file whose bytes are the virtual disk.
 * The virtual size is the file size rounded up to 512 bytes (the tail
 * past end of file reads as zeros).  Durability is the file's sync.
 * Zeroing punches holes where the filesystem allows it. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/falloc.h>

#include "internal.h"

struct raw { struct io *io; };

static int
raw_pread (struct vhdkit_disk *d, void *buf, size_t n, uint64_t off)
{
  struct raw *r = d->priv;
  ssize_t got = io_pread (r->io, buf, n, off);
  if (got < 0) {
    set_error_errno (errno, "%s: read at %" PRIu64, d->path, off);
    return -1;
  }
  if ((size_t) got < n)
    memset ((char *) buf + got, 0, n - (size_t) got);
  return 0;
}

static int
raw_pwrite (struct vhdkit_disk *d, const void *buf, size_t n, uint64_t off)
{
  struct raw *r = d->priv;
  if (io_pwrite (r->io, buf, n, off) == -1) {
    set_error_errno (errno, "%s: write at %" PRIu64, d->path, off);
    return -1;
  }
  return 0;
}

static int
raw_zero (struct vhdkit_disk *d, uint64_t count, uint64_t off)
{
  static const char zeros[65536];
  /* Write zeros through the io layer so that the crash simulator sees
   * them; punching holes would bypass it. */
  while (count) {
    size_t n = count < sizeof zeros ? (size_t) count : sizeof zeros;
    if (raw_pwrite (d, zeros, n, off) == -1) return -1;
    count -= n; off += n;
  }
  return 0;
}

static int
raw_flush (struct vhdkit_disk *d)
{
  struct raw *r = d->priv;
  if (io_sync (r->io) == -1) {
    set_error_errno (errno, "%s: flush", d->path);
    return -1;
  }
  return 0;
}

static int
raw_close (struct vhdkit_disk *d)
{
  struct raw *r = d->priv;
  int ret = 0;
  if (d->writable && raw_flush (d) == -1)
    ret = -1;
  if (io_close (r->io) == -1 && d->writable && ret == 0) {
    set_error_errno (errno, "%s: close", d->path);
    ret = -1;
  }
  free (r);
  d->priv = NULL;
  return ret;
}

static void
raw_get_info (struct vhdkit_disk *d, struct vhdkit_disk_info *info)
{
  struct raw *r = d->priv;
  uint64_t size = 0;
  io_get_size (r->io, &size);
  info->format = VHDKIT_FORMAT_RAW;
  info->type = VHDKIT_TYPE_FIXED;
  info->file_size = size;
  info->min_internal_size = d->size;
  info->allocated_bytes = size;
}

/* Holes of the file via SEEK_DATA/SEEK_HOLE, reported as zero extents. */
static int
raw_map_layer (struct vhdkit_disk *d, uint64_t off, uint64_t len,
               layer_fn fn, void *opaque)
{
  struct raw *r = d->priv;
  uint64_t end = off + len;
  while (off < end) {
    off_t data = lseek (r->io->fd, (off_t) off, SEEK_DATA);
    if (data == -1 || (uint64_t) data >= end) {
      /* ENXIO: no more data; any other error: assume data (safe). */
      if (data == -1 && errno != ENXIO)
        return fn (opaque, off, end - off, LAYER_DATA);
      return fn (opaque, off, end - off, LAYER_ZERO);
    }
    if ((uint64_t) data > off) {
      uint64_t z = ((uint64_t) data - off) / d->lss * d->lss;
      if (z && fn (opaque, off, z, LAYER_ZERO) != 0) return -1;
      off += z;
    }
    off_t hole = lseek (r->io->fd, (off_t) off, SEEK_HOLE);
    uint64_t dend = hole == -1 || (uint64_t) hole > end ? end : (uint64_t) hole;
    dend = round_up (dend, d->lss);
    if (dend > end) dend = end;
    if (dend <= off) dend = off + d->lss;
    if (fn (opaque, off, dend - off, LAYER_DATA) != 0) return -1;
    off = dend;
  }
  return 0;
}

static int
raw_resize (struct vhdkit_disk *d, uint64_t new_size)
{
  struct raw *r = d->priv;
  /* lib/disk.c has checked that a removed tail holds no data. */
  if (io_truncate (r->io, new_size) == -1 || io_sync (r->io) == -1) {
    set_error_errno (errno, "%s: resize to %" PRIu64, d->path, new_size);
    return -1;
  }
  d->size = new_size;
  return 0;
}

static struct io *
raw_get_io (struct vhdkit_disk *d)
{
  return ((struct raw *) d->priv)->io;
}

static const struct driver raw_driver = {
  "raw", raw_pread, raw_pwrite, raw_zero, raw_flush, raw_close,
  raw_get_info, raw_map_layer, raw_resize, NULL, raw_get_io,
};

int
raw_open (struct vhdkit_disk *d, struct io *io)
{
  struct raw *r = calloc (1, sizeof *r);
  uint64_t size;
  if (!r || io_get_size (io, &size) == -1) {
    set_error_errno (r ? errno : ENOMEM, "%s: open", d->path);
    free (r);
    io_close (io);
    return -1;
  }
  r->io = io;
  d->priv = r;
  d->drv = &raw_driver;
  d->lss = 512;
  d->pss = 4096;
  d->size = round_up (size, 512);
  return 0;
}

int
raw_create (const char *path, const struct vhdkit_create_params *p)
{
  uint32_t lss = p->logical_sector_size ? p->logical_sector_size : 512;
  if (p->size == 0 || p->size % lss) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: size %" PRIu64 " must be a non-zero multiple of %" PRIu32,
               path, p->size, lss);
    return -1;
  }
  if (p->parent) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0,
               "%s: raw images cannot have a parent", path);
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
      fallocate (io->fd, 0, 0, (off_t) p->size) == -1 && errno != EOPNOTSUPP)
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

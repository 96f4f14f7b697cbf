/* Public disk calls: argument checks, the handle lock, dispatch to the
 * format driver.  Owns struct vhdkit_disk and the parent chain.
 *
 * Locking: one mutex per top-level handle, held for the whole call.
 * Parent handles are private to their child and never locked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "set/set.h"

struct vhdkit_disk *
disk_new (const char *path, unsigned flags)
{
  struct vhdkit_disk *d = calloc (1, sizeof *d);
  if (!d || !(d->path = strdup (path))) {
    free (d);
    set_error_errno (ENOMEM, "%s", path);
    return NULL;
  }
  pthread_mutex_init (&d->lock, NULL);
  d->flags = flags;
  d->writable = flags & VHDKIT_OPEN_RDWR;
  d->depth = 1;
  return d;
}

void
disk_free (struct vhdkit_disk *d)
{
  if (!d) return;
  if (d->parent)
    disk_free (d->parent);
  pthread_mutex_destroy (&d->lock);
  if (d->set) set_close (d->set);
  free (d->path);
  free (d->parent_path);
  free (d);
}

int
disk_close_unlocked (struct vhdkit_disk *d)
{
  int r = 0;
  if (d->rct) {
    /* The image first, then the tracking state that describes it. */
    if (d->writable && d->drv->flush (d) == -1) r = -1;
    if (rct_detach (d) == -1) r = -1;
  }
  if (d->drv && d->drv->close (d) == -1)
    r = -1;
  if (d->parent) {
    if (disk_close_unlocked (d->parent) == -1 && r == 0)
      r = -1;
    d->parent = NULL;
  }
  disk_free (d);
  return r;
}

int
disk_pread_unlocked (struct vhdkit_disk *d, void *buf, size_t n, uint64_t off)
{
  /* Parents may be smaller than their child (MS-VHDX allows a child to
   * grow past its parent): the part beyond the parent reads as zeros. */
  if (off >= d->size) {
    memset (buf, 0, n);
    return 0;
  }
  if (n > d->size - off) {
    size_t in = (size_t) (d->size - off);
    memset ((char *) buf + in, 0, n - in);
    n = in;
  }
  return d->drv->pread (d, buf, n, off);
}

struct vhdkit_disk *
disk_open_depth (const char *path, unsigned flags, unsigned depth,
                 const uint64_t *chain_ids)
{
  if (depth > MAX_CHAIN_DEPTH) {
    set_error (VHDKIT_RC_FAILED, 0,
               "%s: the parent chain is deeper than %d images (a loop?)",
               path, MAX_CHAIN_DEPTH);
    return NULL;
  }
  bool rw = flags & VHDKIT_OPEN_RDWR;
  struct io *io = io_open (path, rw ? O_RDWR : O_RDONLY, 0);
  if (!io) {
    set_error_errno (errno, "%s: cannot open", path);
    return NULL;
  }
  struct stat st;
  if (fstat (io->fd, &st) == -1) {
    set_error_errno (errno, "%s: stat", path);
    io_close (io);
    return NULL;
  }
  if (S_ISDIR (st.st_mode)) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: is a directory", path);
    io_close (io);
    return NULL;
  }
  /* Loop detection: the chain above us by (device, inode). */
  uint64_t ids[2 * (MAX_CHAIN_DEPTH + 1)];
  for (unsigned i = 0; i + 1 < depth; i++) {
    if (chain_ids[2 * i] == (uint64_t) st.st_dev &&
        chain_ids[2 * i + 1] == (uint64_t) st.st_ino) {
      set_error (VHDKIT_RC_FAILED, 0,
                 "%s: the parent chain loops back to this file", path);
      io_close (io);
      return NULL;
    }
    ids[2 * i] = chain_ids[2 * i];
    ids[2 * i + 1] = chain_ids[2 * i + 1];
  }
  ids[2 * (depth - 1)] = (uint64_t) st.st_dev;
  ids[2 * (depth - 1) + 1] = (uint64_t) st.st_ino;

  if (rw && io_lock (io, 1) == -1) {
    int e = errno;
    if (e == EWOULDBLOCK)
      set_error (VHDKIT_RC_IN_USE, e, "%s: the image is open for writing by another process", path);
    else
      set_error_errno (e, "%s: lock", path);
    io_close (io);
    return NULL;
  }
  else if (!rw && io_lock (io, 0) == -1 && errno == EWOULDBLOCK) {
    /* A writer holds it: reading is still allowed (the writer's
     * unflushed metadata is not visible, as with any shared file). */
  }

  struct vhdkit_disk *d = disk_new (path, flags);
  if (!d) { io_close (io); return NULL; }
  d->depth = depth;

  int fmt = (flags & VHDKIT_OPEN_RAW) ? VHDKIT_FORMAT_RAW : probe_io (io, path);
  int r;
  switch (fmt) {
  case VHDKIT_FORMAT_VHDX: r = vhdx_open (d, io, ids); break;
  case VHDKIT_FORMAT_RAW: r = raw_open (d, io); break;
  case VHDKIT_FORMAT_VHD:
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0,
               "%s: this is a VHD (version 1) image; vhdkit supports VHDX and raw images only", path);
    r = -1;
    break;
  default: r = -1; break;     /* probe_io set the error */
  }
  if (r == -1) {
    /* The driver owns io once it was called; on failure it closed it. */
    if (fmt != VHDKIT_FORMAT_VHDX && fmt != VHDKIT_FORMAT_RAW)
      io_close (io);
    disk_free (d);
    return NULL;
  }
  return d;
}

struct vhdkit_disk *
vhdkit_disk_open (const char *path, unsigned flags)
{
  clear_error ();
  if (!path || !*path) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "no path given");
    return NULL;
  }
  /* SET.vhds and SET.vhds@ID (lib/set/set.c). */
  if (set_path_split (path, NULL, NULL))
    return set_disk_open (path, flags);
  struct vhdkit_disk *d = disk_open_depth (path, flags, 1, NULL);
  /* Tracking attaches to every top-level handle, however opened: a
   * write through any handle must be recorded. */
  if (d && rct_attach (d) == -1) {
    struct saved_error e;
    error_save (&e);
    disk_close_unlocked (d);
    error_restore (&e);
    return NULL;
  }
  return d;
}

struct vhdkit_disk *
disk_open_untracked (const char *path, unsigned flags)
{
  return disk_open_depth (path, flags, 1, NULL);
}

/* ---- writes that change tracking sees ---- */

int
disk_write (struct vhdkit_disk *d, const void *buf, size_t n, uint64_t off)
{
  if (rct_note (d, off, n, false) == -1) return -1;
  return d->drv->pwrite (d, buf, n, off);
}

int
disk_zero (struct vhdkit_disk *d, uint64_t n, uint64_t off)
{
  if (rct_note (d, off, n, true) == -1) return -1;
  return d->drv->zero (d, n, off);
}

int
disk_flush (struct vhdkit_disk *d)
{
  if (d->drv->flush (d) == -1) return -1;
  return rct_flush (d);
}

int
vhdkit_disk_close (struct vhdkit_disk *d)
{
  if (!d) return 0;
  clear_error ();
  return disk_close_unlocked (d);
}

/* Argument checks shared by the I/O calls. */
static int
check_range (struct vhdkit_disk *d, const char *what, uint64_t count,
             uint64_t off, bool write)
{
  if (write && !d->writable) {
    set_error (VHDKIT_RC_ACCESS_DENIED, EBADF,
               "%s: %s: the image was opened read-only", d->path, what);
    return -1;
  }
  if (off % d->lss || count % d->lss) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: %s: offset %" PRIu64 " and length %" PRIu64
               " must be multiples of the logical sector size %" PRIu32,
               d->path, what, off, count, d->lss);
    return -1;
  }
  uint64_t end;
  if (!add_ok (off, count, &end) || end > d->size) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: %s: range %" PRIu64 "+%" PRIu64
               " is beyond the virtual size %" PRIu64,
               d->path, what, off, count, d->size);
    return -1;
  }
  return 0;
}

#define LOCKED(d, expr) ({                    \
      pthread_mutex_lock (&(d)->lock);        \
      int r_ = (expr);                        \
      pthread_mutex_unlock (&(d)->lock);      \
      r_; })

int
vhdkit_disk_pread (struct vhdkit_disk *d, void *buf, size_t count, uint64_t off)
{
  clear_error ();
  if (check_range (d, "read", count, off, false) == -1) return -1;
  if (count == 0) return 0;
  return LOCKED (d, d->drv->pread (d, buf, count, off));
}

int
vhdkit_disk_pwrite (struct vhdkit_disk *d, const void *buf, size_t count,
                    uint64_t off)
{
  clear_error ();
  if (check_range (d, "write", count, off, true) == -1) return -1;
  if (count == 0) return 0;
  return LOCKED (d, disk_write (d, buf, count, off));
}

int
vhdkit_disk_zero (struct vhdkit_disk *d, uint64_t count, uint64_t off)
{
  clear_error ();
  if (check_range (d, "zero", count, off, true) == -1) return -1;
  if (count == 0) return 0;
  return LOCKED (d, disk_zero (d, count, off));
}

int
vhdkit_disk_discard (struct vhdkit_disk *d, uint64_t count, uint64_t off)
{
  clear_error ();
  if (check_range (d, "discard", count, off, true) == -1) return -1;
  if (count == 0) return 0;
  return LOCKED (d, disk_zero (d, count, off));
}

int
vhdkit_disk_flush (struct vhdkit_disk *d)
{
  clear_error ();
  if (!d->writable) return 0;
  return LOCKED (d, disk_flush (d));
}

int
vhdkit_disk_get_info (struct vhdkit_disk *d, struct vhdkit_disk_info *info)
{
  clear_error ();
  memset (info, 0, sizeof *info);
  pthread_mutex_lock (&d->lock);
  info->path = d->path;
  info->parent_path = d->parent_path;
  info->virtual_size = d->size;
  info->logical_sector_size = d->lss;
  info->physical_sector_size = d->pss;
  info->chain_depth = d->depth;
  for (struct vhdkit_disk *p = d->parent; p; p = p->parent)
    info->chain_depth++;
  d->drv->get_info (d, info);
  pthread_mutex_unlock (&d->lock);
  return 0;
}

int
vhdkit_disk_get_size (struct vhdkit_disk *d, uint64_t *size, uint32_t *lss)
{
  clear_error ();
  pthread_mutex_lock (&d->lock);
  if (size) *size = d->size;
  if (lss) *lss = d->lss;
  pthread_mutex_unlock (&d->lock);
  return 0;
}

/* The composed map: a layer's PARENT extents are resolved in the parent
 * (or are holes when there is no parent). */
struct compose {
  struct vhdkit_disk *d;
  vhdkit_extent_fn fn;
  void *opaque;
  /* coalescing */
  uint64_t off, len;
  unsigned flags;
};

static int
emit (struct compose *c, uint64_t off, uint64_t len, unsigned flags)
{
  if (c->len && c->flags == flags && c->off + c->len == off) {
    c->len += len;
    return 0;
  }
  if (c->len && c->fn (c->opaque, c->off, c->len, c->flags) != 0)
    return -1;
  c->off = off; c->len = len; c->flags = flags;
  return 0;
}

static int map_chain (struct vhdkit_disk *d, uint64_t off, uint64_t len,
                      struct compose *c);

static int
layer_cb (void *opaque, uint64_t off, uint64_t len, int what)
{
  struct compose *c = opaque;
  switch (what) {
  case LAYER_DATA: return emit (c, off, len, 0);
  case LAYER_ZERO: return emit (c, off, len, VHDKIT_EXTENT_ZERO);
  default: {
    struct vhdkit_disk *p = c->d->parent;
    if (!p)
      return emit (c, off, len, VHDKIT_EXTENT_ZERO | VHDKIT_EXTENT_HOLE);
    /* The parent may be smaller than the child. */
    uint64_t in = off < p->size ? (len < p->size - off ? len : p->size - off) : 0;
    struct vhdkit_disk *save = c->d;
    int r = 0;
    if (in) {
      c->d = p;
      r = map_chain (p, off, in, c);
      c->d = save;
    }
    if (r == 0 && in < len)
      r = emit (c, off + in, len - in, VHDKIT_EXTENT_ZERO | VHDKIT_EXTENT_HOLE);
    return r;
  }
  }
}

static int
map_chain (struct vhdkit_disk *d, uint64_t off, uint64_t len, struct compose *c)
{
  return d->drv->map_layer (d, off, len, layer_cb, c);
}

/* The composed map of [offset, offset+length), lock held. */
static int
map_locked (struct vhdkit_disk *d, uint64_t offset, uint64_t length,
            vhdkit_extent_fn fn, void *opaque)
{
  struct compose c = { .d = d, .fn = fn, .opaque = opaque };
  int r = map_chain (d, offset, length, &c);
  if (r == 0 && c.len && fn (opaque, c.off, c.len, c.flags) != 0)
    r = -1;
  if (r == -1 && vhdkit_get_error_code () == VHDKIT_RC_OK)
    set_error (VHDKIT_RC_FAILED, ECANCELED, "%s: map cancelled by the caller", d->path);
  return r;
}

int
vhdkit_disk_map (struct vhdkit_disk *d, uint64_t offset, uint64_t length,
                 vhdkit_extent_fn fn, void *opaque)
{
  clear_error ();
  if (check_range (d, "map", length, offset, false) == -1) return -1;
  if (length == 0) return 0;
  return LOCKED (d, map_locked (d, offset, length, fn, opaque));
}

/* Shrinking: every extent of the removed tail that is not known to read
 * as zeros is read and must be zeros. */
static int
tail_extent (void *opaque, uint64_t off, uint64_t len, unsigned flags)
{
  struct vhdkit_disk *d = opaque;
  if (flags & VHDKIT_EXTENT_ZERO) return 0;
  static _Thread_local uint8_t buf[1 << 20];
  for (uint64_t done = 0; done < len; ) {
    size_t n = len - done < sizeof buf ? (size_t) (len - done) : sizeof buf;
    if (disk_pread_unlocked (d, buf, n, off + done) == -1) return -1;
    for (size_t i = 0; i < n; i++)
      if (buf[i]) {
        set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
                   "%s: cannot shrink: byte %" PRIu64 " beyond the new size holds data",
                   d->path, off + done + i);
        return -1;
      }
    done += n;
  }
  return 0;
}

static int
resize_locked (struct vhdkit_disk *d, uint64_t new_size)
{
  if (new_size < d->size &&
      map_locked (d, new_size, d->size - new_size, tail_extent, d) == -1)
    return -1;
  uint64_t old = d->size;
  if (rct_resize_prepare (d, new_size) == -1 || d->drv->resize (d, new_size) == -1)
    return -1;
  return rct_resized (d, old, new_size);
}

int
vhdkit_disk_resize (struct vhdkit_disk *d, uint64_t new_size)
{
  clear_error ();
  if (!d->writable) {
    set_error (VHDKIT_RC_ACCESS_DENIED, EBADF,
               "%s: resize: the image was opened read-only", d->path);
    return -1;
  }
  if (new_size == 0 || new_size % d->lss || new_size > VHDKIT_MAX_VIRTUAL_SIZE) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: resize: new size %" PRIu64 " must be a non-zero multiple of %"
               PRIu32 " and at most 64 TiB", d->path, new_size, d->lss);
    return -1;
  }
  if (new_size == d->size) return 0;
  return LOCKED (d, resize_locked (d, new_size));
}

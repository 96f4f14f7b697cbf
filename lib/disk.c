/* The disk layer (layer 5): an image and its change tracking behind a
 * gate, for many threads at once.
 *
 * What it owns: struct disk, the order of image and tracking steps in
 * every call (the write path records a change before the data goes to
 * the image, a flush makes the image durable before the tracking state,
 * a reference point seals the generation before it flushes: RCT-2,
 * RCT-3), and the gate (L-2).
 *
 * Locking: every call enters the gate and leaves it before it returns,
 * and never calls back into code above with it held: the extent map
 * collects a batch with the gate passed, then runs the callback without
 * it (L-4).  Resize, tracking on/off, the exclusive hook of the set
 * layer and close close the gate: no other call on the disk runs then.
 * Inside, the drivers and tracking have locks of their own (L-1, L-3,
 * L-5, L-8..L-11); none is held when a call returns.
 *
 * Crash behaviour: none of its own beyond the order above.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "disk.h"

/* ---- the gate ---- */

static int
closed_error (struct disk *d)
{
  set_error (VHDKIT_RC_NOT_AVAILABLE, EBADF, "the disk handle is being closed");
  return -1;
}

static int
gone_error (struct disk *d)
{
  set_error (VHDKIT_RC_NOT_AVAILABLE, EBADF,
             "the disk's image could not be opened again after a VHD Set operation; close the handle and open the set again");
  return -1;
}

#define ENTER(d)                                                \
  int slot_ = gate_enter (&(d)->gate);                          \
  if (slot_ < 0) return closed_error (d);                       \
  if (!(d)->top) { gate_leave (&(d)->gate, slot_); return gone_error (d); }
#define LEAVE(d) gate_leave (&(d)->gate, slot_)

/* Argument checks of the I/O calls, inside the gate (the size cannot
 * change meanwhile, L-2). */
static int
check_range (struct disk *d, const char *what, uint64_t count, uint64_t off, bool write)
{
  struct image *t = d->top;
  uint64_t size = LOAD_RELAXED (&t->size), end;
  if (write && !d->writable) {
    set_error (VHDKIT_RC_ACCESS_DENIED, EBADF,
               "%s: %s: the image was opened read-only", t->path, what);
    return -1;
  }
  if (off % t->lss || count % t->lss) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: %s: offset %" PRIu64 " and length %" PRIu64
               " must be multiples of the logical sector size %" PRIu32,
               t->path, what, off, count, t->lss);
    return -1;
  }
  if (!add_ok (off, count, &end) || end > size) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: %s: range %" PRIu64 "+%" PRIu64 " is beyond the virtual size %" PRIu64,
               t->path, what, off, count, size);
    return -1;
  }
  return 0;
}

/* ---- open and close ---- */

/* The driver's hook (drv_hooks): the image is about to take a new
 * DataWriteGuid; tracking records it first (INV-4). */
static int
hook_dwg (void *opaque, const uint8_t guid[16])
{
  struct disk *d = opaque;
  return d->rct ? rct_before_data_write_guid (d->rct, guid) : 0;
}

struct disk *
disk_open (const char *path, unsigned flags, bool untracked)
{
  struct disk *d = calloc (1, sizeof *d);
  if (!d) {
    set_error_errno (ENOMEM, "%s", path);
    return NULL;
  }
  gate_init (&d->gate);
  d->flags = flags;
  d->writable = flags & VHDKIT_OPEN_RDWR;
  struct drv_hooks hooks = { .before_data_write_guid = hook_dwg, .opaque = d };
  d->top = image_open (path, flags, &hooks);
  if (!d->top) goto fail;
  /* Tracking attaches to every handle, however opened: a write through
   * any handle must be recorded. */
  if (!untracked && rct_attach (d->top, d->writable, &d->rct) == -1) goto fail;
  return d;
 fail:
  if (d->top) image_abandon (d->top);
  gate_destroy (&d->gate);
  free (d);
  return NULL;
}

/* Flush, detach, close what D holds; the gate is closed. */
static int
close_contents (struct disk *d)
{
  int r = 0;
  if (d->rct) {
    /* The image first, then the tracking state that describes it. */
    if (d->writable && image_flush (d->top) == -1) r = -1;
    if (rct_detach (d->rct) == -1) r = -1;
    d->rct = NULL;
  }
  if (d->top && image_close (d->top) == -1) r = -1;
  d->top = NULL;
  return r;
}

int
disk_close (struct disk *d)
{
  if (!d) return 0;
  gate_kill (&d->gate);
  int r = close_contents (d);
  gate_destroy (&d->gate);
  free (d);
  return r;
}

void
disk_abandon (struct disk *d)
{
  error_hold ();
  disk_close (d);
  error_release ();
}

/* ---- data ---- */

int
disk_pread (struct disk *d, void *buf, size_t n, uint64_t off)
{
  ENTER (d);
  int r = check_range (d, "read", n, off, false);
  if (r == 0 && n) r = image_pread (d->top, buf, n, off);
  LEAVE (d);
  return r;
}

/* Every change of the disk: recorded by tracking before it reaches the
 * image (RCT-2), and once more when it ended (L-11).  Zeroing and
 * discarding both leave zeros (every driver makes a discarded range
 * read as zeros). */
enum change { C_WRITE, C_ZERO, C_DISCARD, C_MARK };

static int
change (struct disk *d, enum change k, const void *buf, uint64_t n, uint64_t off, unsigned flags)
{
  static const char *const what[] = { "write", "zero", "discard", "mark" };
  ENTER (d);
  struct rct_op op;
  int r = check_range (d, what[k], n, off, true);
  if (r == 0 && n == 0) { LEAVE (d); return 0; }
  if (r == 0) r = rct_write_begin (d->rct, off, n, k == C_ZERO || k == C_DISCARD, &op);
  if (r == 0) {
    switch (k) {
    case C_WRITE: r = image_pwrite (d->top, buf, (size_t) n, off, flags); break;
    case C_ZERO: r = image_zero (d->top, n, off, flags); break;
    case C_DISCARD:
      /* Drivers take no flags for discard: FUA is a flush of the image
       * after it (the tracking record is durable already, L-11). */
      r = image_discard (d->top, n, off);
      if (r == 0 && (flags & VHDKIT_IO_FUA)) r = image_flush (d->top);
      break;
    case C_MARK: break;
    }
    rct_write_end (d->rct, &op);
  }
  LEAVE (d);
  return r;
}

int
disk_pwrite (struct disk *d, const void *buf, size_t n, uint64_t off, unsigned flags)
{
  return change (d, C_WRITE, buf, n, off, flags);
}

int
disk_zero (struct disk *d, uint64_t n, uint64_t off, unsigned flags)
{
  return change (d, C_ZERO, NULL, n, off, flags);
}

int
disk_discard (struct disk *d, uint64_t n, uint64_t off, unsigned flags)
{
  return change (d, C_DISCARD, NULL, n, off, flags);
}

int
disk_mark_changed (struct disk *d, uint64_t off, uint64_t len)
{
  return change (d, C_MARK, NULL, len, off, 0);
}

/* RCT-3: the image, then the tracking state. */
static int
flush_inside (struct disk *d)
{
  if (image_flush (d->top) == -1) return -1;
  return rct_flush (d->rct);
}

int
disk_flush (struct disk *d)
{
  if (!d->writable) return 0;
  ENTER (d);
  int r = flush_inside (d);
  LEAVE (d);
  return r;
}

int
disk_get_info (struct disk *d, struct vhdkit_disk_info *info)
{
  ENTER (d);
  image_get_info (d->top, info);
  LEAVE (d);
  return 0;
}

void
disk_get_size (struct disk *d, uint64_t *size, uint32_t *lss)
{
  int s = gate_enter (&d->gate);
  bool ok = s >= 0 && d->top;
  if (size) *size = ok ? LOAD_RELAXED (&d->top->size) : 0;
  if (lss) *lss = ok ? d->top->lss : 512;
  if (s >= 0) gate_leave (&d->gate, s);
}

/* The extent map, in batches: the callback runs with no lock and the
 * gate not held (L-4), so it may call anything, on this disk too. */
#define MAP_BATCH 256

int
disk_map (struct disk *d, uint64_t off, uint64_t len, vhdkit_extent_fn fn, void *opaque)
{
  struct image_extent *e = malloc (MAP_BATCH * sizeof *e);
  if (!e) {
    set_error_errno (ENOMEM, "map");
    return -1;
  }
  uint64_t end = off + len;
  struct image_extent pend = { 0 };
  bool have = false;
  int ret = -1;
  while (off < end) {
    size_t n = 0;
    int slot = gate_enter (&d->gate);
    if (slot < 0) { closed_error (d); goto out; }
    if (!d->top) { gate_leave (&d->gate, slot); gone_error (d); goto out; }
    uint64_t size = LOAD_RELAXED (&d->top->size);
    int r;
    if (end > size) {
      set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
                 "%s: map: the disk shrank to %" PRIu64 " bytes meanwhile", d->top->path, size);
      r = -1;
    }
    else
      r = image_extents (d->top, off, end - off, e, MAP_BATCH, &n);
    gate_leave (&d->gate, slot);
    if (r == -1) goto out;
    for (size_t i = 0; i < n; i++) {
      if (have && pend.flags == e[i].flags && pend.off + pend.len == e[i].off) {
        pend.len += e[i].len;
        continue;
      }
      if (have && fn (opaque, pend.off, pend.len, pend.flags) != 0) goto cancelled;
      pend = e[i];
      have = true;
    }
    if (n == 0) {
      set_error (VHDKIT_RC_FAILED, 0, "%s: internal error: no extents at %" PRIu64, d->top->path, off);
      goto out;
    }
    off = e[n - 1].off + e[n - 1].len;
  }
  if (have && fn (opaque, pend.off, pend.len, pend.flags) != 0) goto cancelled;
  ret = 0;
  goto out;
 cancelled:
  if (error_code () == VHDKIT_RC_OK)
    set_error (VHDKIT_RC_FAILED, ECANCELED, "%s: map cancelled by the caller", d->top->path);
 out:
  free (e);
  return ret;
}

/* ---- exclusive calls (the gate closed) ---- */

int
disk_exclusive (struct disk *d, int (*fn) (struct disk *, void *), void *opaque)
{
  gate_close (&d->gate);
  int r = fn (d, opaque);
  gate_open (&d->gate);
  return r;
}

/* Shrinking: every extent of the removed tail that is not known to read
 * as zeros must read as zeros. */
static int
tail_is_zero (struct disk *d, uint64_t from, uint64_t to)
{
  struct image_extent e[64];
  uint8_t *buf = malloc (MiB);
  if (!buf) { set_error_errno (ENOMEM, "%s", d->top->path); return -1; }
  int ret = -1;
  for (uint64_t off = from; off < to; ) {
    size_t n;
    if (image_extents (d->top, off, to - off, e, 64, &n) == -1) goto out;
    for (size_t i = 0; i < n; i++) {
      if (e[i].flags & VHDKIT_EXTENT_ZERO) continue;
      for (uint64_t done = 0; done < e[i].len; ) {
        size_t k = e[i].len - done < MiB ? (size_t) (e[i].len - done) : MiB;
        if (image_pread (d->top, buf, k, e[i].off + done) == -1) goto out;
        for (size_t b = 0; b < k; b++)
          if (buf[b]) {
            set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
                       "%s: cannot shrink: byte %" PRIu64 " beyond the new size holds data",
                       d->top->path, e[i].off + done + b);
            goto out;
          }
        done += k;
      }
    }
    off = e[n - 1].off + e[n - 1].len;
  }
  ret = 0;
 out:
  free (buf);
  return ret;
}

static int
resize_alone (struct disk *d, void *opaque)
{
  if (!d->top) return gone_error (d);
  uint64_t new_size = *(uint64_t *) opaque, old = d->top->size;
  if (!d->writable) {
    set_error (VHDKIT_RC_ACCESS_DENIED, EBADF, "%s: resize: the image was opened read-only", d->top->path);
    return -1;
  }
  if (new_size == 0 || new_size % d->top->lss || new_size > VHDKIT_MAX_VIRTUAL_SIZE) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: resize: new size %" PRIu64 " must be a non-zero multiple of %" PRIu32
               " and at most 64 TiB", d->top->path, new_size, d->top->lss);
    return -1;
  }
  if (new_size == old) return 0;
  if (new_size < old && tail_is_zero (d, new_size, old) == -1) return -1;
  if (rct_resize_prepare (d->rct, old, new_size) == -1 || image_resize (d->top, new_size) == -1)
    return -1;
  return rct_resized (d->rct, new_size);
}

int
disk_resize (struct disk *d, uint64_t new_size)
{
  return disk_exclusive (d, resize_alone, &new_size);
}

static int
enable_alone (struct disk *d, void *opaque)
{
  if (!d->top) return gone_error (d);
  if (!d->writable) {
    set_error (VHDKIT_RC_ACCESS_DENIED, 0, "%s: enabling change tracking needs the image open for writing", d->top->path);
    return -1;
  }
  if (d->rct) {
    set_error (VHDKIT_RC_INVALID_STATE, 0, "%s: change tracking is already enabled", d->top->path);
    return -1;
  }
  return rct_enable (d->top, *(uint32_t *) opaque, &d->rct);
}

int
disk_rct_enable (struct disk *d, uint32_t granularity)
{
  return disk_exclusive (d, enable_alone, &granularity);
}

static int
disable_alone (struct disk *d, void *opaque)
{
  if (!d->top) return gone_error (d);
  if (!d->writable) {
    set_error (VHDKIT_RC_ACCESS_DENIED, 0, "%s: disabling change tracking needs the image open for writing", d->top->path);
    return -1;
  }
  int r = rct_disable (d->rct, d->top->path);
  d->rct = NULL;
  return r;
}

int
disk_rct_disable (struct disk *d)
{
  return disk_exclusive (d, disable_alone, NULL);
}

int
disk_release_image (struct disk *d, char **path)
{
  *path = NULL;
  if (d->top && !(*path = strdup (d->top->path))) {
    set_error_errno (ENOMEM, "%s", d->top->path);
    return -1;
  }
  return close_contents (d);
}

void
disk_adopt (struct disk *d, struct disk *from)
{
  d->top = from->top;
  d->rct = from->rct;
  d->flags = from->flags;
  d->writable = from->writable;
  /* The driver's hook now reaches this disk's tracking. */
  image_set_hooks_opaque (d->top, d);
  gate_destroy (&from->gate);
  free (from);
}

/* ---- tracking ---- */

int
disk_rct_status (struct disk *d, struct vhdkit_rct_status *st)
{
  ENTER (d);
  int r = d->rct ? rct_get_status (d->rct, st) : 0;
  LEAVE (d);
  return r;
}

bool
disk_rct_current (struct disk *d, struct guid *epoch, uint32_t *cur, uint32_t *granularity)
{
  int s = gate_enter (&d->gate);
  if (s < 0) return false;
  if (!d->top) { gate_leave (&d->gate, s); return false; }
  bool ok = d->rct && rct_ready (d->rct) == 0 && d->rct->state == RCT_OK;
  if (ok) rct_current (d->rct, epoch, cur, granularity);
  gate_leave (&d->gate, s);
  return ok;
}

static int
new_epoch_alone (struct disk *d, void *opaque)
{
  if (!d->rct || !rct_needs_new_epoch (d->rct)) return 0;
  return rct_new_epoch (d->rct, "the generation counter ran out");
}

int
disk_checkpoint (struct disk *d, char *id)
{
  for (;;) {
    ENTER (d);
    struct rct *r = d->rct;
    if (!r) {
      LEAVE (d);
      set_error (VHDKIT_RC_INVALID_STATE, 0, "%s: change tracking is not enabled", d->top->path);
      return -1;
    }
    if (!d->writable) {
      LEAVE (d);
      set_error (VHDKIT_RC_ACCESS_DENIED, 0, "%s: a reference point needs the image open for writing", d->top->path);
      return -1;
    }
    /* From here on a write that ends is reported since the new ID
     * (L-11), even one that ends before the seal below. */
    rct_checkpoint_begin (r);
    if (r->state != RCT_OK) {
      rct_checkpoint_end (r);
      LEAVE (d);
      return rct_state_error (r);
    }
    if (rct_needs_new_epoch (r)) {
      rct_checkpoint_end (r);
      LEAVE (d);
      if (disk_exclusive (d, new_epoch_alone, NULL) == -1) return -1;
      continue;
    }
    /* Seal: a write in flight now takes the next generation at its end,
     * one that ended since rct_checkpoint_begin takes it now (L-11);
     * then the image and the tracking state, with the new generation,
     * durable before the ID is given out. */
    uint32_t sealed;
    int rr = rct_seal (r, &sealed);
    if (rr == 0) rr = flush_inside (d);
    if (rr == 0) rct_format_id (&r->h.epoch, sealed, id);
    rct_checkpoint_end (r);
    LEAVE (d);
    return rr;
  }
}

int
disk_changes (struct disk *d, const char *limit_id, uint64_t off, uint64_t len,
              size_t max_ranges, struct vhdkit_changes *c)
{
  ENTER (d);
  int r = rct_query (d->rct, d->top->path, LOAD_RELAXED (&d->top->size), d->top->lss,
                     limit_id, off, len, max_ranges, c);
  LEAVE (d);
  return r;
}

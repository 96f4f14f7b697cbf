/* The VHDX format driver: open (with log replay), read, write, zero,
 * discard, flush, close, extents, resize, and the parent locator.
 *
 * Ownership: struct vhdx (the instance) owns the io and the caches.
 * Locking (docs/ARCHITECTURE.md, struct vhdx in vhdx.h): reads and
 * writes of allocated blocks take no lock; allocating a block, changing
 * a sector bitmap or a BAT entry takes the meta lock for memory work
 * only (L-3); two writers of one unallocated block meet in the pending
 * list (L-3); commits take the commit lock (L-5).
 * Crash behaviour: payload data is written in place (never through the
 * log); block allocation, sector bitmaps, and size changes are
 * metadata, changed in memory after the data they describe and made
 * durable by vhdx_commit through the log (bat.c, docs/CRASH-SAFETY.md
 * VX-1..VX-7). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdx.h"
#include "endian.h"
#include "crc32c.h"
#include "utf16.h"

#define CORRUPT(s, ...) do {                                         \
    set_error (VHDKIT_RC_FAILED, 0, __VA_ARGS__);                    \
    error_prefix ("%s: corrupt VHDX image", (s)->path);              \
    return -1;                                                       \
  } while (0)

/* Sectors of the next log entry an operation may dirty (L-3). */
#define ROOM_ALLOC 4     /* payload BAT sector, bitmap BAT sector, bitmap sector, spare */
#define ROOM_BITS  2     /* a bitmap sector (and its BAT sector) */
#define ROOM_ENTRY 2     /* a BAT sector */

int
vhdx_meta_pread (struct vhdx *s, void *buf, size_t n, uint64_t off)
{
  if (io_pread_full (s->io, buf, n, off) == -1) {
    int e = errno;
    if (e == ENODATA && s->nov == 0) {
      set_error (VHDKIT_RC_FAILED, 0,
                 "%s: corrupt VHDX image: a structure at %" PRIu64 "+%zu lies beyond the end of the file (%" PRIu64 " bytes); the file is truncated",
                 s->path, off, n, LOAD_RELAXED (&s->file_size));
      errno = e;
      return -1;
    }
    if (e != ENODATA) {
      set_error_errno (e, "%s: read at %" PRIu64, s->path, off);
      errno = e;
      return -1;
    }
    /* With an in-memory replay the file may be shorter than the
     * replayed structures: read what there is. */
    ssize_t r = io_pread (s->io, buf, n, off);
    if (r < 0) r = 0;
    memset ((uint8_t *) buf + r, 0, n - (size_t) r);
  }
  for (size_t i = 0; i < s->nov; i++) {
    const struct overlay *o = &s->ov[i];
    if (o->off >= off + n || o->off + o->len <= off) continue;
    uint64_t a = o->off > off ? o->off : off;
    uint64_t b = o->off + o->len < off + n ? o->off + o->len : off + n;
    if (o->data) memcpy ((uint8_t *) buf + (a - off), o->data + (a - o->off), b - a);
    else memset ((uint8_t *) buf + (a - off), 0, b - a);
  }
  return 0;
}

/* Payload reads: plain reads unless a replay overlay exists. */
static int
data_pread (struct vhdx *s, void *buf, size_t n, uint64_t off)
{
  if (s->nov)
    return vhdx_meta_pread (s, buf, n, off);
  ssize_t r = io_pread (s->io, buf, n, off);
  if (r < 0) {
    set_error_errno (errno, "%s: read at %" PRIu64, s->path, off);
    return -1;
  }
  /* A block's tail may lie past a foreign writer's end of file. */
  memset ((uint8_t *) buf + r, 0, n - (size_t) r);
  return 0;
}

static int
data_pwrite (struct vhdx *s, const void *buf, size_t n, uint64_t off)
{
  if (io_pwrite (s->io, buf, n, off) == -1) {
    set_error_errno (errno, "%s: write at %" PRIu64, s->path, off);
    return -1;
  }
  return 0;
}

/* New space at the end of the file: extended, so it reads as zeros.
 * Meta held (the ftruncate is the only system call made under it). */
static int
alloc_region_locked (struct vhdx *s, uint64_t size, uint64_t *off)
{
  uint64_t o = s->file_end;
  if (io_truncate (s->io, o + size) == -1) {
    set_error_errno (errno, "%s: extend the file to %" PRIu64, s->path, o + size);
    return -1;
  }
  s->file_end = o + size;
  STORE_RELAXED (&s->file_size, o + size);
  *off = o;
  return 0;
}

/* ---- pending allocations (meta held, L-3) ---- */

static bool
pending (const struct vhdx *s, uint64_t idx)
{
  for (size_t i = 0; i < s->npend; i++)
    if (s->pend[i].idx == idx) return true;
  return false;
}

static int
pending_add (struct vhdx *s, uint64_t idx)
{
  if (s->npend == s->pend_cap) {
    size_t cap = s->pend_cap ? s->pend_cap * 2 : 16;
    struct alloc_pending *p = realloc (s->pend, cap * sizeof *p);
    if (!p) { set_error_errno (ENOMEM, "%s", s->path); return -1; }
    s->pend = p;
    s->pend_cap = cap;
  }
  s->pend[s->npend++].idx = idx;
  return 0;
}

static void
pending_del (struct vhdx *s, uint64_t idx)
{
  for (size_t i = 0; i < s->npend; i++)
    if (s->pend[i].idx == idx) {
      s->pend[i] = s->pend[--s->npend];
      break;
    }
  pthread_cond_broadcast (&s->alloc_cv);
}

/* Wait (meta held) until no allocation of block entry IDX is pending
 * and the next log entry has room for ROOM sectors.  The entry may have
 * changed when it returns. */
static int
settle_locked (struct vhdx *s, uint64_t idx, size_t room)
{
  for (;;) {
    if (pending (s, idx)) {
      pthread_cond_wait (&s->alloc_cv, &s->meta);
      continue;
    }
    size_t before = s->ndirty + s->nreserved;
    if (vhdx_room_locked (s, room) == -1) return -1;
    /* Room was made by dropping the lock: look again. */
    if (s->ndirty + s->nreserved < before || pending (s, idx)) continue;
    return 0;
  }
}

/* ---- sector bitmaps (2.4) ---- */

/* The BAT entry of the sector bitmap block of CHUNK, allocating the
 * block if ALLOCATE (meta held; the entry's BAT sector is loaded). */
static int
sb_entry_locked (struct vhdx *s, uint64_t chunk, bool allocate, uint64_t *e)
{
  uint64_t idx = sb_index (s, chunk);
  *e = s->bat[idx];
  if (BAT_STATE (*e) == SB_BLOCK_PRESENT || !allocate) return 0;
  uint64_t o;
  if (alloc_region_locked (s, VHDX_SB_BLOCK_SIZE, &o) == -1) return -1;
  *e = BAT_ENTRY (SB_BLOCK_PRESENT, o);
  vhdx_bat_set_locked (s, idx, *e);
  /* The new block reads as zeros: cache its sectors as such on use. */
  return 0;
}

/* Where the bit of virtual sector VS lives: the 4 KiB bitmap sector at
 * *OFF, bit *BIT; from the chunk's bitmap BAT entry E. */
static int
sb_where (struct vhdx *s, uint64_t vs, uint64_t e, uint64_t *off, uint32_t *bit)
{
  uint64_t chunk = vs / VHDX_CHUNK_SECTORS;
  if (BAT_STATE (e) != SB_BLOCK_PRESENT)
    CORRUPT (s, "a partially present block in chunk %" PRIu64 " has no sector bitmap block", chunk);
  uint64_t in = vs % VHDX_CHUNK_SECTORS;
  uint64_t base = BAT_OFFSET (e);
  if (base < MiB || base + VHDX_SB_BLOCK_SIZE > LOAD_RELAXED (&s->file_size))
    CORRUPT (s, "the sector bitmap block of chunk %" PRIu64 " at %" PRIu64 " lies outside the file", chunk, base);
  *off = base + (in / (VHDX_SECTOR * 8)) * VHDX_SECTOR;
  *bit = (uint32_t) (in % (VHDX_SECTOR * 8));
  return 0;
}

/* Length (in sectors, at most MAX) of the run starting at virtual
 * sector VS whose bits all equal the first; *PRESENT gets that bit.
 * Takes meta for the look-ups; loads bitmap sectors without it. */
static int
sb_run (struct vhdx *s, uint64_t vs, uint64_t max, bool *present, uint64_t *len)
{
  uint64_t n = 0, e;
  bool first = false;
  while (n < max) {
    uint64_t off;
    uint32_t bit;
    uint8_t *b;
    uint64_t chunk = (vs + n) / VHDX_CHUNK_SECTORS;
    if (vhdx_bat_get (s, sb_index (s, chunk), &e) == -1 ||
        sb_where (s, vs + n, e, &off, &bit) == -1)
      return -1;
    pthread_mutex_lock (&s->meta);
    int hit = vhdx_ms_lookup_locked (s, off, &b);
    if (hit == 0) {
      pthread_mutex_unlock (&s->meta);
      if (vhdx_ms_load (s, off) == -1) return -1;
      continue;
    }
    bool stop = false;
    for (; bit < VHDX_SECTOR * 8 && n < max; bit++, n++) {
      bool v = (b[bit / 8] >> (bit % 8)) & 1;
      if (n == 0) first = v;
      else if (v != first) { stop = true; break; }
    }
    pthread_mutex_unlock (&s->meta);
    if (stop) break;
  }
  *present = first;
  *len = n;
  return 0;
}

/* Set the bits of sectors [VS, VS+N) (N within one bitmap sector),
 * allocating the bitmap block if needed.  Meta not held.  Called after
 * the data of those sectors is written (VX-2). */
static int
sb_set (struct vhdx *s, uint64_t vs, uint64_t n)
{
  uint64_t chunk = vs / VHDX_CHUNK_SECTORS, idx = sb_index (s, chunk), e, dummy;
  if (vhdx_bat_get (s, idx, &dummy) == -1) return -1;      /* its BAT sector loaded */
  for (;;) {
    uint64_t off;
    uint32_t bit;
    uint8_t *b;
    pthread_mutex_lock (&s->meta);
    if (settle_locked (s, idx, ROOM_BITS) == -1) goto fail;
    if (sb_entry_locked (s, chunk, true, &e) == -1 || sb_where (s, vs, e, &off, &bit) == -1)
      goto fail;
    if (vhdx_ms_lookup_locked (s, off, &b) == 0) {
      /* Load without the lock (a new bitmap block reads as zeros). */
      pthread_mutex_unlock (&s->meta);
      if (vhdx_ms_load (s, off) == -1) return -1;
      continue;
    }
    bool changed = false;
    for (uint64_t i = 0; i < n; i++, bit++)
      if (!((b[bit / 8] >> (bit % 8)) & 1)) {
        b[bit / 8] |= (uint8_t) (1u << (bit % 8));
        changed = true;
      }
    if (changed) vhdx_ms_mark_dirty_locked (s, off);
    pthread_mutex_unlock (&s->meta);
    return 0;
  fail:
    pthread_mutex_unlock (&s->meta);
    return -1;
  }
}

/* ---- reads ---- */

static int
parent_read (struct vhdx *s, void *buf, size_t n, uint64_t off)
{
  if (!s->next.opaque) {
    set_error (VHDKIT_RC_FILE_NOT_FOUND, 0,
               "%s: reading %" PRIu64 "+%zu needs the parent image, which was not opened",
               s->path, off, n);
    return -1;
  }
  return s->next.pread (s->next.opaque, buf, n, off);
}

/* Validate an allocated block's location: past the header section,
 * wholly inside the file, clear of the log, BAT and metadata regions. */
static int
check_block (struct vhdx *s, uint64_t block, uint64_t e)
{
  uint64_t o = BAT_OFFSET (e), end, fsize = LOAD_RELAXED (&s->file_size);
  if (BAT_RESERVED (e))
    CORRUPT (s, "BAT entry of block %" PRIu64 " has reserved bits set", block);
  if (o < MiB || !add_ok (o, s->block_size, &end) || end > fsize)
    CORRUPT (s, "block %" PRIu64 " at %" PRIu64 "+%" PRIu32 " lies outside the file (%" PRIu64 " bytes)",
             block, o, s->block_size, fsize);
  const uint64_t r[3][2] = { { s->log_off, s->log_len },
                             { s->bat_off, s->bat_len }, { s->meta_off, s->meta_len } };
  static const char *names[3] = { "log", "BAT region", "metadata region" };
  for (int i = 0; i < 3; i++)
    if (o < r[i][0] + r[i][1] && r[i][0] < end)
      CORRUPT (s, "block %" PRIu64 " at %" PRIu64 " overlaps the %s", block, o, names[i]);
  return 0;
}

static int
vhdx_pread (void *inst, void *buf, size_t n, uint64_t off)
{
  struct vhdx *s = inst;
  uint8_t *p = buf;
  while (n) {
    uint64_t block = off / s->block_size, in = off % s->block_size, e;
    size_t len = s->block_size - in < n ? (size_t) (s->block_size - in) : n;
    if (vhdx_bat_get (s, payload_index (s, block), &e) == -1) return -1;
    switch (BAT_STATE (e)) {
    case PAYLOAD_BLOCK_FULLY_PRESENT:
      if (check_block (s, block, e) == -1 ||
          data_pread (s, p, len, BAT_OFFSET (e) + in) == -1)
        return -1;
      break;
    case PAYLOAD_BLOCK_PARTIALLY_PRESENT: {
      if (!s->has_parent)
        CORRUPT (s, "block %" PRIu64 " is partially present in an image without a parent", block);
      if (check_block (s, block, e) == -1) return -1;
      uint64_t vs = off / s->lss, ns = len / s->lss;
      size_t done = 0;
      while (ns) {
        bool present;
        uint64_t run;
        if (sb_run (s, vs, ns, &present, &run) == -1) return -1;
        size_t bytes = (size_t) (run * s->lss);
        int r = present
          ? data_pread (s, p + done, bytes, BAT_OFFSET (e) + in + done)
          : parent_read (s, p + done, bytes, off + done);
        if (r == -1) return -1;
        done += bytes; vs += run; ns -= run;
      }
      break;
    }
    case PAYLOAD_BLOCK_NOT_PRESENT:
    case PAYLOAD_BLOCK_UNDEFINED:
      if (s->has_parent) {
        if (parent_read (s, p, len, off) == -1) return -1;
      }
      else
        memset (p, 0, len);
      break;
    case PAYLOAD_BLOCK_ZERO:
    case PAYLOAD_BLOCK_UNMAPPED:
    case PAYLOAD_BLOCK_UNMAPPED_V095:
      memset (p, 0, len);
      break;
    default:
      CORRUPT (s, "BAT entry of block %" PRIu64 " has the reserved state %u", block, BAT_STATE (e));
    }
    p += len; off += len; n -= len;
  }
  return 0;
}

/* ---- writes ---- */

/* Write within one block (and, in a differencing image, within one
 * bitmap sector's span). */
static int
write_block (struct vhdx *s, const uint8_t *p, size_t len, uint64_t off)
{
  uint64_t block = off / s->block_size, in = off % s->block_size, e;
  uint64_t idx = payload_index (s, block);
 again:
  if (vhdx_bat_get (s, idx, &e) == -1) return -1;
  unsigned st = BAT_STATE (e);
  if (st == PAYLOAD_BLOCK_FULLY_PRESENT || st == PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
    /* L-1: in place, no lock. */
    if (check_block (s, block, e) == -1 ||
        data_pwrite (s, p, len, BAT_OFFSET (e) + in) == -1)
      return -1;
    if (st == PAYLOAD_BLOCK_PARTIALLY_PRESENT)
      return sb_set (s, off / s->lss, len / s->lss);
    return 0;
  }
  if (st == 4) CORRUPT (s, "BAT entry of block %" PRIu64 " has the reserved state 4", block);

  /* Allocate (L-3): reserve the space and the entry under meta, write
   * the data without it, then publish the entry.  A second writer of
   * the block waits for the first to publish, then writes in place. */
  pthread_mutex_lock (&s->meta);
  if (settle_locked (s, idx, ROOM_ALLOC) == -1) {
    pthread_mutex_unlock (&s->meta);
    return -1;
  }
  e = s->bat[idx];
  st = BAT_STATE (e);
  if (st == PAYLOAD_BLOCK_FULLY_PRESENT || st == PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
    pthread_mutex_unlock (&s->meta);
    goto again;
  }
  /* A new block reads as zeros outside what we write (the file was
   * extended, not written), which is right unless the sectors must come
   * from the parent. */
  uint64_t block_end = (block + 1) * (uint64_t) s->block_size;
  bool whole = in == 0 && (off + len == block_end || off + len == s->size);
  bool partial = s->has_parent && !whole &&
    (st == PAYLOAD_BLOCK_NOT_PRESENT || st == PAYLOAD_BLOCK_UNDEFINED);
  uint64_t bo;
  if (alloc_region_locked (s, s->block_size, &bo) == -1 || pending_add (s, idx) == -1) {
    pthread_mutex_unlock (&s->meta);
    return -1;
  }
  s->nreserved += ROOM_ALLOC;
  pthread_mutex_unlock (&s->meta);

  int r = data_pwrite (s, p, len, bo + in);

  pthread_mutex_lock (&s->meta);
  s->nreserved -= ROOM_ALLOC;
  uint64_t sbe = 0;
  if (r == 0 && partial)
    /* 2.5.1.1: the bitmap block exists before a partially present
     * entry names it (in the same commit at the latest). */
    r = sb_entry_locked (s, block / s->chunk_ratio, true, &sbe);
  if (r == 0) {
    vhdx_bat_set_locked (s, idx, BAT_ENTRY (partial ? PAYLOAD_BLOCK_PARTIALLY_PRESENT
                                            : PAYLOAD_BLOCK_FULLY_PRESENT, bo));
    s->allocated_blocks++;
  }
  /* A failed data write leaves the space unreferenced (VX-6). */
  pending_del (s, idx);
  pthread_mutex_unlock (&s->meta);
  if (r == 0 && partial)
    r = sb_set (s, off / s->lss, len / s->lss);
  return r;
}

static int
do_write (struct vhdx *s, const uint8_t *p, size_t n, uint64_t off)
{
  while (n) {
    uint64_t in = off % s->block_size;
    size_t len = s->block_size - in < n ? (size_t) (s->block_size - in) : n;
    if (s->has_parent) {
      /* Keep each step within one sector-bitmap sector so a step
       * dirties a bounded number of metadata sectors. */
      uint64_t span = (uint64_t) VHDX_SECTOR * 8 * s->lss;
      uint64_t lim = span - off % span;
      if (len > lim) len = (size_t) lim;
    }
    if (write_block (s, p, len, off) == -1) return -1;
    p += len; off += len; n -= len;
  }
  return 0;
}

static int
vhdx_pwrite (void *inst, const void *buf, size_t n, uint64_t off, unsigned flags)
{
  struct vhdx *s = inst;
  if (vhdx_begin_write (s, true) == -1 || do_write (s, buf, n, off) == -1)
    return -1;
  return (flags & DRV_FUA) ? vhdx_flush_all (s) : 0;
}

static int
write_zeros (struct vhdx *s, uint64_t count, uint64_t off)
{
  static const uint8_t zeros[256 * 1024];
  while (count) {
    size_t n = count < sizeof zeros ? (size_t) count : sizeof zeros;
    if (do_write (s, zeros, n, off) == -1) return -1;
    count -= n; off += n;
  }
  return 0;
}

/* How zero (or discard) treats block entry state ST for a piece of LEN
 * bytes at IN within the block. */
enum zero_how { Z_NOTHING, Z_RELEASE, Z_WRITE };

static enum zero_how
zero_how (const struct vhdx *s, unsigned st, uint64_t in, uint64_t len, uint64_t off, unsigned flags)
{
  bool fixed = s->leave_allocated && !s->has_parent;
  bool whole = in == 0 && (len == s->block_size || off + len == s->size);
  bool reads_zero = st == PAYLOAD_BLOCK_ZERO || st == PAYLOAD_BLOCK_UNMAPPED ||
    st == PAYLOAD_BLOCK_UNMAPPED_V095 ||
    (!s->has_parent && (st == PAYLOAD_BLOCK_NOT_PRESENT || st == PAYLOAD_BLOCK_UNDEFINED));
  if (flags & DRV_NO_HOLE)
    /* Leave it allocated: zeros written (a block that reads as zeros
     * without space is allocated by the write). */
    return Z_WRITE;
  /* A fixed image's block that reads as zeros without space (written so
   * by another program) gets its space. */
  if (reads_zero && !(fixed && whole)) return Z_NOTHING;
  if (whole && !fixed) return Z_RELEASE;
  return Z_WRITE;
}

/* Release whole block BLOCK to STATE (ZERO or UNMAPPED).  A
 * differencing image gets a fresh block instead: the file is only
 * extended, so it costs no disk space, and libvhdi (against MS-VHDX
 * 2.5.1.1) reads ZERO blocks of a differencing image from the parent.
 * The old space is left unreferenced and never reused (VX-6, L-7). */
static int
release_block (struct vhdx *s, uint64_t block, unsigned state)
{
  uint64_t idx = payload_index (s, block), e;
  if (vhdx_bat_get (s, idx, &e) == -1) return -1;
  LOCK_FOR_SCOPE (&s->meta);
  if (settle_locked (s, idx, ROOM_ENTRY) == -1) return -1;
  uint64_t ne = BAT_ENTRY (state, 0), bo;
  if (s->has_parent) {
    if (alloc_region_locked (s, s->block_size, &bo) == -1) return -1;
    ne = BAT_ENTRY (PAYLOAD_BLOCK_FULLY_PRESENT, bo);
  }
  vhdx_bat_set_locked (s, idx, ne);
  return 0;
}

static int
vhdx_zero (void *inst, uint64_t count, uint64_t off, unsigned flags)
{
  struct vhdx *s = inst;
  if (flags & DRV_FAST_ZERO) {
    /* Nothing may be written: look first, change nothing if any part
     * would need zeros written. */
    for (uint64_t o = off, c = count; c; ) {
      uint64_t block = o / s->block_size, in = o % s->block_size, e;
      uint64_t len = s->block_size - in < c ? s->block_size - in : c;
      if (vhdx_bat_get (s, payload_index (s, block), &e) == -1) return -1;
      if (zero_how (s, BAT_STATE (e), in, len, o, flags) == Z_WRITE) {
        set_error (VHDKIT_RC_NOT_SUPPORTED, ENOTSUP,
                   "%s: zeroing %" PRIu64 "+%" PRIu64 " would write zeros (block %" PRIu64 "), which is not fast",
                   s->path, off, count, block);
        return -1;
      }
      o += len; c -= len;
    }
  }
  if (vhdx_begin_write (s, true) == -1) return -1;
  while (count) {
    uint64_t block = off / s->block_size, in = off % s->block_size, e;
    uint64_t len = s->block_size - in < count ? s->block_size - in : count;
    if (vhdx_bat_get (s, payload_index (s, block), &e) == -1) return -1;
    switch (zero_how (s, BAT_STATE (e), in, len, off, flags)) {
    case Z_NOTHING: break;
    case Z_RELEASE: if (release_block (s, block, PAYLOAD_BLOCK_ZERO) == -1) return -1; break;
    case Z_WRITE: if (write_zeros (s, len, off) == -1) return -1; break;
    }
    off += len; count -= len;
  }
  return (flags & DRV_FUA) ? vhdx_flush_all (s) : 0;
}

/* Discard: whole blocks of a dynamic image become UNMAPPED (2.5.1.1;
 * read as zeros, the space given up) instead of ZERO; everything else is
 * zeroed as by vhdx_zero, so that a discarded range always reads as
 * zeros and never shows stale or parent data. */
static int
vhdx_discard (void *inst, uint64_t count, uint64_t off)
{
  struct vhdx *s = inst;
  if (s->has_parent || s->leave_allocated) return vhdx_zero (inst, count, off, 0);
  if (vhdx_begin_write (s, true) == -1) return -1;
  while (count) {
    uint64_t block = off / s->block_size, in = off % s->block_size, e;
    uint64_t len = s->block_size - in < count ? s->block_size - in : count;
    bool whole = in == 0 && (len == s->block_size || off + len == s->size);
    if (vhdx_bat_get (s, payload_index (s, block), &e) == -1) return -1;
    unsigned st = BAT_STATE (e);
    if (whole) {
      if (st != PAYLOAD_BLOCK_UNMAPPED && release_block (s, block, PAYLOAD_BLOCK_UNMAPPED) == -1)
        return -1;
    }
    else if (zero_how (s, st, in, len, off, 0) == Z_WRITE && write_zeros (s, len, off) == -1)
      return -1;
    off += len; count -= len;
  }
  return 0;
}

static int
vhdx_flush (void *inst)
{
  struct vhdx *s = inst;
  if (!s->writable) return 0;
  return vhdx_flush_all (s);
}

static void
free_vhdx (struct vhdx *s)
{
  vhdx_free_caches (s);
  free (s->loc_relative);
  free (s->loc_volume);
  free (s->loc_absolute);
  pthread_mutex_destroy (&s->meta);
  pthread_mutex_destroy (&s->commit);
  pthread_cond_destroy (&s->alloc_cv);
  free (s);
}

int
vhdx_close_inst (struct vhdx *s)
{
  int r = 0;
  if (s->writable && s->session_started && !s->poisoned) {
    if (vhdx_flush_all (s) == -1)
      r = -1;
    /* VX-7: a clean close empties the log so that readers (qemu refuses
     * read-only opens of an image with a log to replay) see a clean
     * image. */
    else if (!guid_is_zero (&s->hdr[s->cur].log_guid)) {
      struct guid z = {{ 0 }};
      pthread_mutex_lock (&s->commit);
      if (vhdx_write_header (s, NULL, &z, 1) == -1) r = -1;
      pthread_mutex_unlock (&s->commit);
    }
  }
  else if (s->writable && s->poisoned) {
    set_error (VHDKIT_RC_FAILED, EIO, "%s: closed after a failed metadata write; the next open recovers from the log", s->path);
    r = -1;
  }
  if (io_close (s->io) == -1 && s->writable && r == 0) {
    set_error_errno (errno, "%s: close", s->path);
    r = -1;
  }
  free_vhdx (s);
  return r;
}

static int
vhdx_close (void *inst)
{
  return vhdx_close_inst (inst);
}

/* ---- info and extents ---- */

static void
vhdx_get_info (void *inst, struct vhdkit_disk_info *info)
{
  struct vhdx *s = inst;
  info->format = VHDKIT_FORMAT_VHDX;
  info->type = s->has_parent ? VHDKIT_TYPE_DIFFERENCING
    : s->leave_allocated ? VHDKIT_TYPE_FIXED : VHDKIT_TYPE_DYNAMIC;
  info->block_size = s->block_size;
  info->file_size = LOAD_RELAXED (&s->file_size);
  char t[40];
  guid_to_text (&s->disk_id, t);
  for (char *c = t; *c; c++) *c = (char) (*c >= 'a' && *c <= 'f' ? *c - 32 : *c);
  snprintf (info->virtual_disk_id, sizeof info->virtual_disk_id, "%s", t);
  pthread_mutex_lock (&s->commit);
  guid_to_text (&s->hdr[s->cur].data_write, t);
  snprintf (info->data_write_guid, sizeof info->data_write_guid, "{%s}", t);
  if (s->has_parent) {
    guid_to_text (&s->linkage, t);
    snprintf (info->parent_linkage, sizeof info->parent_linkage, "{%s}", t);
  }
  pthread_mutex_unlock (&s->commit);
  /* One pass over the BAT for allocation, fragmentation and the
   * smallest size a shrink could reach. */
  uint64_t alloc = 0, frag = 0, last_end = 0, prev = UINT64_MAX;
  for (uint64_t b = 0; b < s->data_blocks; b++) {
    uint64_t e;
    if (vhdx_bat_get (s, payload_index (s, b), &e) == -1) break;
    unsigned st = BAT_STATE (e);
    if (st != PAYLOAD_BLOCK_FULLY_PRESENT && st != PAYLOAD_BLOCK_PARTIALLY_PRESENT)
      continue;
    alloc++;
    if (prev != UINT64_MAX && BAT_OFFSET (e) != prev + s->block_size) frag++;
    prev = BAT_OFFSET (e);
    last_end = (b + 1) * (uint64_t) s->block_size;
  }
  info->allocated_bytes = alloc * s->block_size;
  info->fragmentation_percentage = alloc > 1 ? (unsigned) (frag * 100 / (alloc - 1)) : 0;
  info->min_internal_size = last_end > s->size ? s->size : last_end;
  if (info->min_internal_size == 0) info->min_internal_size = s->lss;
}

static int
vhdx_extents (void *inst, uint64_t off, uint64_t len, struct drv_extents *out)
{
  struct vhdx *s = inst;
  while (len) {
    uint64_t block = off / s->block_size, in = off % s->block_size, e;
    uint64_t n = s->block_size - in < len ? s->block_size - in : len;
    if (vhdx_bat_get (s, payload_index (s, block), &e) == -1) return -1;
    switch (BAT_STATE (e)) {
    case PAYLOAD_BLOCK_FULLY_PRESENT:
      if (!drv_extents_add (out, off, n, LAYER_DATA)) return 0;
      break;
    case PAYLOAD_BLOCK_PARTIALLY_PRESENT: {
      uint64_t vs = off / s->lss, ns = n / s->lss, o = off;
      while (ns) {
        bool present;
        uint64_t run;
        if (sb_run (s, vs, ns, &present, &run) == -1) return -1;
        if (!drv_extents_add (out, o, run * s->lss, present ? LAYER_DATA : LAYER_PARENT)) return 0;
        o += run * s->lss; vs += run; ns -= run;
      }
      break;
    }
    case PAYLOAD_BLOCK_NOT_PRESENT:
    case PAYLOAD_BLOCK_UNDEFINED:
      if (!drv_extents_add (out, off, n, s->has_parent ? LAYER_PARENT : LAYER_ZERO)) return 0;
      break;
    case PAYLOAD_BLOCK_ZERO:
    case PAYLOAD_BLOCK_UNMAPPED:
    case PAYLOAD_BLOCK_UNMAPPED_V095:
      if (!drv_extents_add (out, off, n, LAYER_ZERO)) return 0;
      break;
    default:
      CORRUPT (s, "BAT entry of block %" PRIu64 " has the reserved state %u", block, BAT_STATE (e));
    }
    off += n; len -= n;
  }
  return 0;
}

/* ---- resize (the disk layer's gate is closed: no other call runs, L-2) ---- */

/* Replace the cached copy of the 4 KiB sector at OFF and mark it dirty. */
static int
ms_put (struct vhdx *s, uint64_t off, const uint8_t *data)
{
  uint8_t *b;
  if (vhdx_ms_get (s, off, &b) == -1) return -1;
  LOCK_FOR_SCOPE (&s->meta);
  memcpy (b, data, VHDX_SECTOR);
  vhdx_ms_mark_dirty_locked (s, off);
  return 0;
}

/* Make room for one more dirty sector outside the data path. */
static int
room (struct vhdx *s, size_t n)
{
  LOCK_FOR_SCOPE (&s->meta);
  return vhdx_room_locked (s, n);
}

static int
set_entry (struct vhdx *s, uint64_t idx, uint64_t e)
{
  uint64_t old;
  if (vhdx_bat_get (s, idx, &old) == -1 || room (s, ROOM_ENTRY) == -1) return -1;
  LOCK_FOR_SCOPE (&s->meta);
  vhdx_bat_set_locked (s, idx, e);
  return 0;
}

static int
grow_bat_array (struct vhdx *s, uint64_t entries)
{
  uint64_t sectors = div_round_up (entries, VHDX_SECTOR / 8);
  uint64_t *nb = realloc (s->bat, sectors * VHDX_SECTOR);
  if (!nb) return -1;
  s->bat = nb;
  uint8_t *ns = realloc (s->bat_state, sectors);
  if (!ns) return -1;
  s->bat_state = ns;
  memset (ns + s->bat_sectors, 0, sectors - s->bat_sectors);
  /* The old last sector may have been partly loaded: reload it. */
  if (s->bat_sectors && !(ns[s->bat_sectors - 1] & 2))
    ns[s->bat_sectors - 1] = 0;
  s->bat_sectors = sectors;
  return 0;
}

static int
alloc_region (struct vhdx *s, uint64_t size, uint64_t *off)
{
  LOCK_FOR_SCOPE (&s->meta);
  return alloc_region_locked (s, size, off);
}

/* Move the BAT to the end of the file: write the copy directly (it is
 * unreferenced until the region tables change), then point both region
 * tables at it through the log. */
static int
relocate_bat (struct vhdx *s, uint64_t entries)
{
  uint64_t newlen = round_up (entries * 8, MiB), newoff;
  if (newlen > UINT32_MAX) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: the BAT for that size would exceed 4 GiB", s->path);
    return -1;
  }
  for (uint64_t sec = 0; sec < div_round_up (s->bat_entries, VHDX_SECTOR / 8); sec++) {
    uint64_t e;
    if (vhdx_bat_get (s, sec * (VHDX_SECTOR / 8), &e) == -1) return -1;
  }
  if (alloc_region (s, newlen, &newoff) == -1) return -1;
  uint8_t *buf = calloc (1, MiB);
  if (!buf) { set_error_errno (ENOMEM, "%s", s->path); return -1; }
  for (uint64_t i = 0; i < s->bat_entries; i += MiB / 8) {
    uint64_t n = s->bat_entries - i < MiB / 8 ? s->bat_entries - i : MiB / 8;
    memset (buf, 0, MiB);
    for (uint64_t k = 0; k < n; k++) put_le64 (buf + 8 * k, s->bat[i + k]);
    if (data_pwrite (s, buf, MiB, newoff + i * 8) == -1) { free (buf); return -1; }
  }
  /* New region table. */
  int ret = -1;
  uint8_t *rt = buf;   /* 64 KiB of the 1 MiB buffer */
  if (vhdx_meta_pread (s, rt, VHDX_REGION_SIZE, VHDX_REGION1_OFF) == -1 ||
      memcmp (rt, "regi", 4) != 0 || get_le32 (rt + 4) != crc32c_skip (rt, VHDX_REGION_SIZE, 4)) {
    if (vhdx_meta_pread (s, rt, VHDX_REGION_SIZE, VHDX_REGION2_OFF) == -1) goto out;
  }
  uint32_t count = get_le32 (rt + 8);
  for (uint32_t i = 0; i < count && i < 2047; i++) {
    uint8_t *e = rt + 16 + 32 * i;
    if (memcmp (e, VHDX_BAT_GUID.b, 16) == 0) {
      put_le64 (e + 16, newoff);
      put_le32 (e + 24, (uint32_t) newlen);
    }
  }
  put_le32 (rt + 4, 0);
  put_le32 (rt + 4, crc32c_skip (rt, VHDX_REGION_SIZE, 4));
  for (int copy = 0; copy < 2; copy++)
    for (uint64_t k = 0; k < VHDX_REGION_SIZE; k += VHDX_SECTOR) {
      if (room (s, 1) == -1 ||
          ms_put (s, (copy ? VHDX_REGION2_OFF : VHDX_REGION1_OFF) + k, rt + k) == -1)
        goto out;
    }
  s->bat_off = newoff;
  s->bat_len = (uint32_t) newlen;
  ret = 0;
 out:
  free (buf);
  return ret;
}

static int
vhdx_resize (void *inst, uint64_t new_size)
{
  struct vhdx *s = inst;
  bool fixed = s->leave_allocated && !s->has_parent;
  uint64_t old_size = s->size;
  if (vhdx_begin_write (s, true) == -1 || vhdx_commit (s) == -1)
    return -1;
  uint64_t cr, db, entries;
  vhdx_compute_geometry (new_size, s->block_size, s->lss, s->has_parent, &cr, &db, &entries);
  if (new_size > old_size) {
    uint64_t full;
    vhdx_compute_geometry (new_size, s->block_size, s->lss, true, &cr, &db, &full);
    if (full > s->bat_entries) {
      uint64_t old_entries = s->bat_entries;
      if (grow_bat_array (s, full) == -1) {
        set_error_errno (ENOMEM, "%s: resize", s->path);
        return -1;
      }
      if (full * 8 > s->bat_len) {
        if (relocate_bat (s, full) == -1) return -1;
        /* The relocated BAT holds zeros past the old entries. */
        for (uint64_t sec = old_entries / (VHDX_SECTOR / 8); sec < s->bat_sectors; sec++)
          s->bat_state[sec] |= 1;
        memset (s->bat + old_entries, 0, (full - old_entries) * 8);
        s->bat_entries = full;
      }
      else {
        s->bat_entries = full;
        /* Entries past the old end must be NOT_PRESENT (or, in a fixed
         * image, present blocks); clear any leftovers. */
        for (uint64_t i = old_entries; i < full; i++) {
          uint64_t e;
          if (vhdx_bat_get (s, i, &e) == -1) return -1;
          if (e && set_entry (s, i, 0) == -1)
            return -1;
        }
      }
    }
    s->data_blocks = db;
    if (fixed) {
      for (uint64_t b = div_round_up (old_size, s->block_size); b < db; b++) {
        uint64_t e, bo;
        if (vhdx_bat_get (s, payload_index (s, b), &e) == -1) return -1;
        if (BAT_STATE (e) == PAYLOAD_BLOCK_FULLY_PRESENT) continue;
        if (alloc_region (s, s->block_size, &bo) == -1 ||
            set_entry (s, payload_index (s, b), BAT_ENTRY (PAYLOAD_BLOCK_FULLY_PRESENT, bo)) == -1)
          return -1;
      }
    }
  }
  /* The Virtual Disk Size item, through the log. */
  uint64_t sec = s->size_item_off / VHDX_SECTOR * VHDX_SECTOR;
  uint8_t *b;
  if (room (s, 1) == -1 || vhdx_ms_get (s, sec, &b) == -1) return -1;
  if (s->size_item_off % VHDX_SECTOR > VHDX_SECTOR - 8)
    CORRUPT (s, "the Virtual Disk Size item straddles a 4 KiB boundary");
  pthread_mutex_lock (&s->meta);
  put_le64 (b + s->size_item_off % VHDX_SECTOR, new_size);
  vhdx_ms_mark_dirty_locked (s, sec);
  pthread_mutex_unlock (&s->meta);
  s->size = new_size;
  if (new_size < old_size) s->data_blocks = db;
  if (vhdx_commit (s) == -1) return -1;
  /* Growing: the old last block's tail past the old size must read as
   * zeros (a foreign writer may have left data there). */
  if (new_size > old_size && old_size % s->block_size) {
    uint64_t end = round_up (old_size, s->block_size);
    if (end > new_size) end = new_size;
    if (vhdx_zero (s, end - old_size, old_size, 0) == -1 || vhdx_commit (s) == -1)
      return -1;
  }
  return 0;
}

/* ---- identity and merges (VX-8) ---- */

static void
vhdx_data_write_guid (void *inst, uint8_t out[16])
{
  struct vhdx *s = inst;
  LOCK_FOR_SCOPE (&s->commit);
  memcpy (out, s->hdr[s->cur].data_write.b, 16);
}

static int
vhdx_preset_data_write_guid (void *inst, const uint8_t dw[16])
{
  struct vhdx *s = inst;
  LOCK_FOR_SCOPE (&s->commit);
  memcpy (s->next_dw.b, dw, 16);
  s->have_next_dw = true;
  return 0;
}

/* Take the preset DataWriteGuid now, even if nothing is written. */
static int
vhdx_take_data_write_guid (void *inst)
{
  return vhdx_begin_write (inst, true);
}

/* Rewrite the child's parent locator with both linkages, through the
 * log.  The new item goes where the old one was if it fits, else after
 * the last item of the metadata region.  (Merges own the child: no
 * other call runs on it.) */
static int
vhdx_set_linkages (void *inst, const uint8_t link1_b[16], const uint8_t link_b[16])
{
  struct vhdx *s = inst;
  struct guid link1, link;
  memcpy (link1.b, link1_b, 16);
  memcpy (link.b, link_b, 16);
  if (vhdx_begin_write (s, false) == -1) return -1;
  uint8_t *t = malloc (VHDX_META_TABLE_SIZE);
  if (!t) { set_error_errno (ENOMEM, "%s", s->path); return -1; }
  int ret = -1;
  char *vals[6] = { 0 };
  const char *keys[6] = { 0 };
  int nkv = 0;
  uint8_t *item = NULL;
  if (vhdx_meta_pread (s, t, VHDX_META_TABLE_SIZE, s->meta_off) == -1) goto out;
  uint16_t count = get_le16 (t + 10);
  int li = -1;
  uint64_t max_end = VHDX_META_TABLE_SIZE;
  for (uint16_t i = 0; i < count && i < 2047; i++) {
    const uint8_t *e = t + 32 + 32 * i;
    uint64_t end = (uint64_t) get_le32 (e + 16) + get_le32 (e + 20);
    if (end > max_end) max_end = end;
    if (memcmp (e, VHDX_PARENT_LOC_GUID.b, 16) == 0 && !(get_le32 (e + 24) & 1)) li = i;
  }
  if (li < 0) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: no parent locator to update", s->path);
    goto out;
  }
  char a[40], b[40];
  guid_to_text (&link1, a);
  guid_to_text (&link, b);
  const char *k[5] = { "parent_linkage", "parent_linkage2", "relative_path", "volume_path", "absolute_win32_path" };
  const char *v[5] = { NULL, NULL, s->loc_relative, s->loc_volume, s->loc_absolute };
  for (int i = 0; i < 5; i++) {
    if (i >= 2 && !v[i]) continue;
    keys[nkv] = k[i];
    int r = i == 0 ? asprintf (&vals[nkv], "{%s}", a)
          : i == 1 ? asprintf (&vals[nkv], "{%s}", b)
          : ((vals[nkv] = strdup (v[i])) ? 0 : -1);
    if (r == -1) { vals[nkv] = NULL; goto nomem; }
    nkv++;
  }
  /* Encode: header, entries, then the strings. */
  size_t len = 20 + 12 * (size_t) nkv, kl[6], vl[6];
  uint8_t *ku[6] = { 0 }, *vu[6] = { 0 };
  for (int i = 0; i < nkv; i++) {
    ku[i] = utf8_to_utf16le (keys[i], &kl[i]);
    vu[i] = utf8_to_utf16le (vals[i], &vl[i]);
    if (!ku[i] || !vu[i]) {
      for (int j = 0; j <= i; j++) { free (ku[j]); free (vu[j]); }
      goto nomem;
    }
    len += kl[i] + vl[i];
  }
  item = calloc (1, len);
  if (!item) {
    for (int j = 0; j < nkv; j++) { free (ku[j]); free (vu[j]); }
    goto nomem;
  }
  memcpy (item, VHDX_LOCATOR_TYPE_GUID.b, 16);
  put_le16 (item + 18, (uint16_t) nkv);
  size_t pos = 20 + 12 * (size_t) nkv;
  for (int i = 0; i < nkv; i++) {
    uint8_t *e = item + 20 + 12 * i;
    put_le32 (e, (uint32_t) pos); memcpy (item + pos, ku[i], kl[i]); pos += kl[i];
    put_le32 (e + 4, (uint32_t) pos); memcpy (item + pos, vu[i], vl[i]); pos += vl[i];
    put_le16 (e + 8, (uint16_t) kl[i]);
    put_le16 (e + 10, (uint16_t) vl[i]);
    free (ku[i]); free (vu[i]);
  }
  uint8_t *le = t + 32 + 32 * li;
  uint64_t ioff = get_le32 (le + 16);
  if (len > get_le32 (le + 20))
    ioff = round_up (max_end, 8);
  if (ioff + len > s->meta_len) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: no room in the metadata region for the new parent locator", s->path);
    goto out;
  }
  put_le32 (le + 16, (uint32_t) ioff);
  put_le32 (le + 20, (uint32_t) len);
  /* Stage the changed sectors: the table entry's and the item's. */
  uint64_t tsec = (32 + 32 * (uint64_t) li) / VHDX_SECTOR * VHDX_SECTOR;
  if (room (s, 1) == -1 || ms_put (s, s->meta_off + tsec, t + tsec) == -1) goto out;
  for (uint64_t sec = ioff / VHDX_SECTOR * VHDX_SECTOR; sec < ioff + len; sec += VHDX_SECTOR) {
    uint8_t *cb;
    if (room (s, 1) == -1 || vhdx_ms_get (s, s->meta_off + sec, &cb) == -1) goto out;
    uint64_t a0 = sec < ioff ? ioff : sec, a1 = sec + VHDX_SECTOR < ioff + len ? sec + VHDX_SECTOR : ioff + len;
    pthread_mutex_lock (&s->meta);
    memcpy (cb + (a0 - sec), item + (a0 - ioff), a1 - a0);
    vhdx_ms_mark_dirty_locked (s, s->meta_off + sec);
    pthread_mutex_unlock (&s->meta);
  }
  if (vhdx_commit (s) == -1) goto out;
  pthread_mutex_lock (&s->commit);
  s->linkage = link1;
  s->linkage2 = link;
  s->has_linkage2 = true;
  pthread_mutex_unlock (&s->commit);
  ret = 0;
  goto out;
 nomem:
  set_error_errno (ENOMEM, "%s: parent locator", s->path);
 out:
  for (int i = 0; i < 6; i++) free (vals[i]);
  free (item);
  free (t);
  return ret;
}

static void
vhdx_hint_writeback (void *inst)
{
  struct vhdx *s = inst;
  io_hint_writeback (s->io);
}

/* ---- parents ---- */

static char *
win_to_posix (const char *w)
{
  char *p = strdup (w);
  if (p)
    for (char *c = p; *c; c++)
      if (*c == '\\') *c = '/';
  return p;
}

static char *
join_dir (const char *child, const char *rel)
{
  while (strncmp (rel, "./", 2) == 0)
    rel += 2;
  char *tmp = strdup (child);
  if (!tmp) return NULL;
  char *dir = dirname (tmp);
  char *out = NULL;
  if (strcmp (dir, ".") == 0) out = strdup (rel);
  else if (asprintf (&out, "%s%s%s", dir, strcmp (dir, "/") ? "/" : "", rel) == -1) out = NULL;
  free (tmp);
  return out;
}

/* Candidate paths for the parent, in the order of 2.6.2.6.3, then the
 * file name of each beside the child (images moved together); and the
 * identities the parent may have. */
static int
vhdx_parent_req (void *inst, struct drv_parent_req *req)
{
  struct vhdx *s = inst;
  char **c = req->candidates;
  int n = 0, max = DRV_MAX_CANDIDATES;
  const char *locs[3] = { s->loc_relative, s->loc_volume, s->loc_absolute };
  for (int i = 0; i < 3 && n < max; i++) {
    if (!locs[i]) continue;
    char *p = win_to_posix (locs[i]);
    if (!p) continue;
    const char *q = p;
    if (i == 0) {
      c[n++] = q[0] == '/' ? strdup (q) : join_dir (s->path, q);
    }
    else {
      /* "//?/d:/x/y" or "//?/Volume{...}/x": usable on Linux only when
       * what follows the prefix is an absolute POSIX path. */
      if (strncmp (q, "//?/", 4) == 0) q += 4;
      if (q[0] == '/' && !strchr (q, ':') && strncmp (q, "/Volume{", 8) != 0)
        c[n++] = strdup (q);
    }
    free (p);
  }
  for (int i = 0; i < 3 && n < max; i++) {
    if (!locs[i]) continue;
    const char *base = locs[i];
    for (const char *k = locs[i]; *k; k++)
      if (*k == '\\' || *k == '/') base = k + 1;
    if (*base) c[n++] = join_dir (s->path, base);
  }
  req->ncandidates = n;
  LOCK_FOR_SCOPE (&s->commit);
  memcpy (req->linkage[0], s->linkage.b, 16);
  req->nlinkage = 1;
  if (s->has_linkage2) memcpy (req->linkage[req->nlinkage++], s->linkage2.b, 16);
  return 0;
}

static void
vhdx_set_next (void *inst, const struct drv_next *next)
{
  struct vhdx *s = inst;
  s->next = *next;
}

/* ---- probe and open ---- */

static int
vhdx_probe (const uint8_t *head, size_t headlen, const uint8_t *tail, size_t taillen,
            uint64_t file_size)
{
  return headlen >= 8 && memcmp (head, "vhdxfile", 8) == 0;
}

int
vhdx_open_inst (const struct drv_open_args *a, struct vhdx **out, struct drv_geometry *g)
{
  struct vhdx *s = calloc (1, sizeof *s);
  if (!s) {
    set_error_errno (ENOMEM, "%s", a->path);
    io_close (a->io);
    return -1;
  }
  s->path = a->path;
  s->io = a->io;
  s->writable = a->writable;
  s->hooks = a->hooks;
  pthread_mutex_init (&s->meta, NULL);
  pthread_mutex_init (&s->commit, NULL);
  pthread_cond_init (&s->alloc_cv, NULL);
  bool replayed = false;
  if (io_get_size (s->io, &s->file_size) == -1) {
    set_error_errno (errno, "%s: stat", s->path);
    goto fail;
  }
  if (vhdx_read_headers (s) == -1) goto fail;
  s->log_off = s->hdr[s->cur].log_offset;
  s->log_len = s->hdr[s->cur].log_length;
  /* 2.3.3: replay before any other I/O; 2.2.2: a writer renews
   * FileWriteGuid before replaying. */
  if (!guid_is_zero (&s->hdr[s->cur].log_guid)) {
    if (s->writable && vhdx_write_header (s, NULL, NULL, 2) == -1) goto fail;
    if (vhdx_log_replay (s, !s->writable, &replayed) == -1) goto fail;
    if (s->writable) {
      struct guid z = {{ 0 }};
      if (vhdx_write_header (s, NULL, &z, 1) == -1) goto fail;
    }
  }
  if (vhdx_read_regions (s) == -1 || vhdx_read_metadata (s) == -1) goto fail;
  uint64_t need;
  vhdx_compute_geometry (s->size, s->block_size, s->lss, s->has_parent,
                         &s->chunk_ratio, &s->data_blocks, &need);
  if (need * 8 > s->bat_len) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: corrupt VHDX image: the BAT region (%" PRIu32
               " bytes) is too small for %" PRIu64 " entries", s->path, s->bat_len, need);
    goto fail;
  }
  /* Keep room for the differencing layout's trailing sector-bitmap
   * entry where the region has it. */
  uint64_t full;
  vhdx_compute_geometry (s->size, s->block_size, s->lss, true, &s->chunk_ratio, &s->data_blocks, &full);
  s->bat_entries = full * 8 <= s->bat_len ? full : need;
  s->bat_sectors = div_round_up (s->bat_entries, VHDX_SECTOR / 8);
  s->bat = calloc (s->bat_sectors, VHDX_SECTOR);
  s->bat_state = calloc (s->bat_sectors, 1);
  if (!s->bat || !s->bat_state) {
    set_error_errno (ENOMEM, "%s: BAT of %" PRIu64 " entries", s->path, s->bat_entries);
    goto fail;
  }
  s->file_end = round_up (s->file_size, MiB);
  g->size = s->size;
  g->lss = s->lss;
  g->pss = s->pss;
  g->has_parent = s->has_parent;
  *out = s;
  return 0;
 fail:
  io_close (s->io);
  s->io = NULL;
  free_vhdx (s);
  return -1;
}

static int
vhdx_open (const struct drv_open_args *a, void **inst, struct drv_geometry *g)
{
  struct vhdx *s;
  if (vhdx_open_inst (a, &s, g) == -1) return -1;
  *inst = s;
  return 0;
}

const struct driver vhdx_driver = {
  .name = "VHDX",
  .format = VHDKIT_FORMAT_VHDX,
  .caps = DRV_CAN_ZERO_FAST | DRV_CAN_DISCARD | DRV_HAS_PARENTS | DRV_HAS_DWG,
  .probe = vhdx_probe,
  .create = vhdx_create,
  .check = vhdx_check,
  .open = vhdx_open,
  .parent_req = vhdx_parent_req,
  .set_next = vhdx_set_next,
  .close = vhdx_close,
  .pread = vhdx_pread,
  .pwrite = vhdx_pwrite,
  .zero = vhdx_zero,
  .discard = vhdx_discard,
  .flush = vhdx_flush,
  .extents = vhdx_extents,
  .get_info = vhdx_get_info,
  .resize = vhdx_resize,
  .data_write_guid = vhdx_data_write_guid,
  .preset_data_write_guid = vhdx_preset_data_write_guid,
  .take_data_write_guid = vhdx_take_data_write_guid,
  .set_linkages = vhdx_set_linkages,
  .hint_writeback = vhdx_hint_writeback,
};

/* The VHDX format driver: open (with log replay), read, write, zero,
 * flush, close, extent map, resize.
 *
 * Ownership: struct vhdx (d->priv) owns the io and the caches.  Locking:
 * every entry point runs under the disk lock (lib/disk.c).
 * Crash behaviour: payload data is written in place (never through the
 * log); block allocation, sector bitmaps, and size changes are
 * metadata, changed in memory and made durable by vhdx_commit through
 * the log (lib/vhdx/bat.c, docs/CRASH-SAFETY.md VX-1..VX-7). */
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

static const struct driver vhdx_driver;

#define CORRUPT(s, ...) do {                                         \
    set_error (VHDKIT_RC_FAILED, 0, __VA_ARGS__);                    \
    error_prefix ("%s: corrupt VHDX image", (s)->d->path);           \
    return -1;                                                       \
  } while (0)

int
vhdx_meta_pread (struct vhdx *s, void *buf, size_t n, uint64_t off)
{
  if (io_pread_full (s->io, buf, n, off) == -1) {
    int e = errno;
    if (e == ENODATA && s->nov == 0) {
      set_error (VHDKIT_RC_FAILED, 0,
                 "%s: corrupt VHDX image: a structure at %" PRIu64 "+%zu lies beyond the end of the file (%" PRIu64 " bytes); the file is truncated",
                 s->d->path, off, n, s->file_size);
      errno = e;
      return -1;
    }
    if (e != ENODATA) {
      set_error_errno (e, "%s: read at %" PRIu64, s->d->path, off);
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
    set_error_errno (errno, "%s: read at %" PRIu64, s->d->path, off);
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
    set_error_errno (errno, "%s: write at %" PRIu64, s->d->path, off);
    return -1;
  }
  return 0;
}

/* ---- sector bitmaps (2.4) ---- */

/* The file offset of the sector-bitmap 4 KiB sector holding the bit of
 * virtual sector VS, and the bit's index in it. */
static int
sb_locate (struct vhdx *s, uint64_t vs, bool allocate, uint64_t *off, uint32_t *bit)
{
  uint64_t chunk = vs / VHDX_CHUNK_SECTORS, e;
  if (vhdx_bat_get (s, sb_index (s, chunk), &e) == -1)
    return -1;
  if (BAT_STATE (e) != SB_BLOCK_PRESENT) {
    if (!allocate)
      CORRUPT (s, "a partially present block in chunk %" PRIu64 " has no sector bitmap block", chunk);
    uint64_t o = s->file_end;
    if (io_truncate (s->io, o + VHDX_SB_BLOCK_SIZE) == -1) {
      set_error_errno (errno, "%s: extend file for a sector bitmap", s->d->path);
      return -1;
    }
    s->file_end = s->file_size = o + VHDX_SB_BLOCK_SIZE;
    e = BAT_ENTRY (SB_BLOCK_PRESENT, o);
    if (vhdx_bat_set (s, sb_index (s, chunk), e) == -1)
      return -1;
  }
  uint64_t in = vs % VHDX_CHUNK_SECTORS;
  uint64_t base = BAT_OFFSET (e);
  if (base < MiB || base + VHDX_SB_BLOCK_SIZE > s->file_size)
    CORRUPT (s, "the sector bitmap block of chunk %" PRIu64 " at %" PRIu64 " lies outside the file", chunk, base);
  *off = base + (in / (VHDX_SECTOR * 8)) * VHDX_SECTOR;
  *bit = (uint32_t) (in % (VHDX_SECTOR * 8));
  return 0;
}

/* Length (in sectors, at most MAX) of the run starting at virtual
 * sector VS whose bits all equal the first; *PRESENT gets that bit. */
static int
sb_run (struct vhdx *s, uint64_t vs, uint64_t max, bool *present, uint64_t *len)
{
  uint64_t n = 0;
  bool first = false;
  while (n < max) {
    uint64_t off;
    uint32_t bit;
    uint8_t *b;
    if (sb_locate (s, vs + n, false, &off, &bit) == -1 || vhdx_ms_get (s, off, &b) == -1)
      return -1;
    for (; bit < VHDX_SECTOR * 8 && n < max; bit++, n++) {
      bool v = (b[bit / 8] >> (bit % 8)) & 1;
      if (n == 0) first = v;
      else if (v != first) goto done;
    }
  }
 done:
  *present = first;
  *len = n;
  return 0;
}

/* Set the bits of sectors [VS, VS+N) (N within one bitmap sector). */
static int
sb_set (struct vhdx *s, uint64_t vs, uint64_t n)
{
  uint64_t off;
  uint32_t bit;
  uint8_t *b;
  if (sb_locate (s, vs, true, &off, &bit) == -1 || vhdx_ms_get (s, off, &b) == -1)
    return -1;
  bool changed = false;
  for (uint64_t i = 0; i < n; i++, bit++)
    if (!((b[bit / 8] >> (bit % 8)) & 1)) {
      b[bit / 8] |= (uint8_t) (1u << (bit % 8));
      changed = true;
    }
  return changed ? vhdx_ms_mark_dirty (s, off) : 0;
}

/* ---- reads ---- */

static int
parent_read (struct vhdx *s, void *buf, size_t n, uint64_t off)
{
  if (!s->d->parent) {
    set_error (VHDKIT_RC_FILE_NOT_FOUND, 0,
               "%s: reading %" PRIu64 "+%zu needs the parent image, which was not opened",
               s->d->path, off, n);
    return -1;
  }
  return disk_pread_unlocked (s->d->parent, buf, n, off);
}

/* Validate an allocated block's location: past the header section,
 * wholly inside the file, clear of the log, BAT and metadata regions. */
static int
check_block (struct vhdx *s, uint64_t block, uint64_t e)
{
  uint64_t o = BAT_OFFSET (e), end;
  if (BAT_RESERVED (e))
    CORRUPT (s, "BAT entry of block %" PRIu64 " has reserved bits set", block);
  if (o < MiB || !add_ok (o, s->block_size, &end) || end > s->file_size)
    CORRUPT (s, "block %" PRIu64 " at %" PRIu64 "+%" PRIu32 " lies outside the file (%" PRIu64 " bytes)",
             block, o, s->block_size, s->file_size);
  const struct vhdx_header *h = &s->hdr[s->cur];
  const uint64_t r[3][2] = { { h->log_offset, h->log_length },
                             { s->bat_off, s->bat_len }, { s->meta_off, s->meta_len } };
  static const char *names[3] = { "log", "BAT region", "metadata region" };
  for (int i = 0; i < 3; i++)
    if (o < r[i][0] + r[i][1] && r[i][0] < end)
      CORRUPT (s, "block %" PRIu64 " at %" PRIu64 " overlaps the %s", block, o, names[i]);
  return 0;
}

static int
vhdx_pread (struct vhdkit_disk *d, void *buf, size_t n, uint64_t off)
{
  struct vhdx *s = d->priv;
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
      uint64_t vs = off / d->lss, ns = len / d->lss;
      size_t done = 0;
      while (ns) {
        bool present;
        uint64_t run;
        if (sb_run (s, vs, ns, &present, &run) == -1) return -1;
        size_t bytes = (size_t) (run * d->lss);
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
        break;
      }
      /* fall through */
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

static int
alloc_region (struct vhdx *s, uint64_t size, uint64_t *off)
{
  uint64_t o = s->file_end;
  if (io_truncate (s->io, o + size) == -1) {
    set_error_errno (errno, "%s: extend the file to %" PRIu64, s->d->path, o + size);
    return -1;
  }
  s->file_end = s->file_size = o + size;
  *off = o;
  return 0;
}

/* Write within one block. */
static int
write_block (struct vhdx *s, const uint8_t *p, size_t len, uint64_t off)
{
  struct vhdkit_disk *d = s->d;
  uint64_t block = off / s->block_size, in = off % s->block_size, e;
  uint64_t idx = payload_index (s, block);
  if (vhdx_bat_get (s, idx, &e) == -1) return -1;
  unsigned st = BAT_STATE (e);
  if (st == PAYLOAD_BLOCK_FULLY_PRESENT || st == PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
    if (check_block (s, block, e) == -1 ||
        data_pwrite (s, p, len, BAT_OFFSET (e) + in) == -1)
      return -1;
    if (st == PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
      if (vhdx_make_room (s) == -1) return -1;
      return sb_set (s, off / d->lss, len / d->lss);
    }
    return 0;
  }
  if (st == 4) CORRUPT (s, "BAT entry of block %" PRIu64 " has the reserved state 4", block);
  /* Allocate.  A new block reads as zeros outside what we write (the
   * file was extended, not written), which is right unless the sectors
   * must come from the parent. */
  uint64_t block_end = (block + 1) * (uint64_t) s->block_size;
  bool whole = in == 0 && (off + len == block_end || off + len == d->size);
  bool partial = s->has_parent && !whole &&
    (st == PAYLOAD_BLOCK_NOT_PRESENT || st == PAYLOAD_BLOCK_UNDEFINED);
  uint64_t bo;
  if (vhdx_make_room (s) == -1 || alloc_region (s, s->block_size, &bo) == -1 ||
      data_pwrite (s, p, len, bo + in) == -1)
    return -1;
  if (vhdx_bat_set (s, idx, BAT_ENTRY (partial ? PAYLOAD_BLOCK_PARTIALLY_PRESENT
                                       : PAYLOAD_BLOCK_FULLY_PRESENT, bo)) == -1)
    return -1;
  s->allocated_blocks++;
  return partial ? sb_set (s, off / d->lss, len / d->lss) : 0;
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
      uint64_t span = (uint64_t) VHDX_SECTOR * 8 * s->d->lss;
      uint64_t lim = span - off % span;
      if (len > lim) len = (size_t) lim;
    }
    if (write_block (s, p, len, off) == -1) return -1;
    p += len; off += len; n -= len;
  }
  return 0;
}

static int
vhdx_pwrite (struct vhdkit_disk *d, const void *buf, size_t n, uint64_t off)
{
  struct vhdx *s = d->priv;
  if (vhdx_begin_write (s, true) == -1) return -1;
  return do_write (s, buf, n, off);
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

static int
vhdx_zero (struct vhdkit_disk *d, uint64_t count, uint64_t off)
{
  struct vhdx *s = d->priv;
  bool fixed = s->leave_allocated && !s->has_parent;
  if (vhdx_begin_write (s, true) == -1) return -1;
  while (count) {
    uint64_t block = off / s->block_size, in = off % s->block_size, e;
    uint64_t len = s->block_size - in < count ? s->block_size - in : count;
    uint64_t idx = payload_index (s, block);
    if (vhdx_bat_get (s, idx, &e) == -1) return -1;
    unsigned st = BAT_STATE (e);
    bool whole = in == 0 && (len == s->block_size || off + len == d->size);
    bool reads_zero = st == PAYLOAD_BLOCK_ZERO || st == PAYLOAD_BLOCK_UNMAPPED ||
      st == PAYLOAD_BLOCK_UNMAPPED_V095 ||
      (!s->has_parent && (st == PAYLOAD_BLOCK_NOT_PRESENT || st == PAYLOAD_BLOCK_UNDEFINED));
    if (reads_zero && !(fixed && whole))
      ;                                   /* nothing to do */
    else if (whole && !fixed) {
      /* Release the block: its old space is left unreferenced and never
       * reused in this session (VX-6).  A differencing image gets a fresh
       * block instead of the ZERO state: the file is only extended, so
       * it costs no disk space, and libvhdi (against MS-VHDX 2.5.1.1)
       * reads ZERO blocks of a differencing image from the parent. */
      uint64_t ne = BAT_ENTRY (PAYLOAD_BLOCK_ZERO, 0), bo;
      if (vhdx_make_room (s) == -1) return -1;
      if (s->has_parent) {
        if (alloc_region (s, s->block_size, &bo) == -1) return -1;
        ne = BAT_ENTRY (PAYLOAD_BLOCK_FULLY_PRESENT, bo);
      }
      if (vhdx_bat_set (s, idx, ne) == -1)
        return -1;
    }
    else if (!reads_zero && write_zeros (s, len, off) == -1)
      return -1;
    else if (reads_zero && fixed && write_zeros (s, len, off) == -1)
      return -1;
    off += len; count -= len;
  }
  return 0;
}

static int
vhdx_flush (struct vhdkit_disk *d)
{
  struct vhdx *s = d->priv;
  if (s->ndirty)
    return vhdx_commit (s);
  if (s->poisoned) {
    set_error (VHDKIT_RC_FAILED, EIO, "%s: an earlier metadata write failed; reopen the image to recover it", d->path);
    return -1;
  }
  if (io_sync (s->io) == -1) {
    set_error_errno (errno, "%s: flush", d->path);
    return -1;
  }
  return 0;
}

static void
free_vhdx (struct vhdx *s)
{
  vhdx_free_caches (s);
  free (s->loc_relative);
  free (s->loc_volume);
  free (s->loc_absolute);
  free (s);
}

static int
vhdx_close (struct vhdkit_disk *d)
{
  struct vhdx *s = d->priv;
  int r = 0;
  if (d->writable && s->session_started && !s->poisoned) {
    if (vhdx_flush (d) == -1)
      r = -1;
    /* VX-7: a clean close empties the log so that readers (qemu refuses
     * read-only opens of an image with a log to replay) see a clean
     * image. */
    else if (!guid_is_zero (&s->hdr[s->cur].log_guid)) {
      struct guid z = {{ 0 }};
      if (vhdx_write_header (s, NULL, &z, 1) == -1) r = -1;
    }
  }
  else if (d->writable && s->poisoned) {
    set_error (VHDKIT_RC_FAILED, EIO, "%s: closed after a failed metadata write; the next open recovers from the log", d->path);
    r = -1;
  }
  if (io_close (s->io) == -1 && d->writable && r == 0) {
    set_error_errno (errno, "%s: close", d->path);
    r = -1;
  }
  free_vhdx (s);
  d->priv = NULL;
  return r;
}

/* ---- info and map ---- */

static void
vhdx_get_info (struct vhdkit_disk *d, struct vhdkit_disk_info *info)
{
  struct vhdx *s = d->priv;
  info->format = VHDKIT_FORMAT_VHDX;
  info->type = s->has_parent ? VHDKIT_TYPE_DIFFERENCING
    : s->leave_allocated ? VHDKIT_TYPE_FIXED : VHDKIT_TYPE_DYNAMIC;
  info->block_size = s->block_size;
  info->file_size = s->file_size;
  char t[40];
  guid_to_text (&s->disk_id, t);
  for (char *c = t; *c; c++) *c = (char) (*c >= 'a' && *c <= 'f' ? *c - 32 : *c);
  snprintf (info->virtual_disk_id, sizeof info->virtual_disk_id, "%s", t);
  guid_to_text (&s->hdr[s->cur].data_write, t);
  snprintf (info->data_write_guid, sizeof info->data_write_guid, "{%s}", t);
  if (s->has_parent) {
    guid_to_text (&s->linkage, t);
    snprintf (info->parent_linkage, sizeof info->parent_linkage, "{%s}", t);
  }
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
  info->min_internal_size = last_end > d->size ? d->size : last_end;
  if (info->min_internal_size == 0) info->min_internal_size = d->lss;
}

static int
vhdx_map_layer (struct vhdkit_disk *d, uint64_t off, uint64_t len,
                layer_fn fn, void *opaque)
{
  struct vhdx *s = d->priv;
  while (len) {
    uint64_t block = off / s->block_size, in = off % s->block_size, e;
    uint64_t n = s->block_size - in < len ? s->block_size - in : len;
    if (vhdx_bat_get (s, payload_index (s, block), &e) == -1) return -1;
    int r;
    switch (BAT_STATE (e)) {
    case PAYLOAD_BLOCK_FULLY_PRESENT:
      r = fn (opaque, off, n, LAYER_DATA);
      break;
    case PAYLOAD_BLOCK_PARTIALLY_PRESENT: {
      uint64_t vs = off / d->lss, ns = n / d->lss, o = off;
      r = 0;
      while (ns && r == 0) {
        bool present;
        uint64_t run;
        if (sb_run (s, vs, ns, &present, &run) == -1) return -1;
        r = fn (opaque, o, run * d->lss, present ? LAYER_DATA : LAYER_PARENT);
        o += run * d->lss; vs += run; ns -= run;
      }
      break;
    }
    case PAYLOAD_BLOCK_NOT_PRESENT:
    case PAYLOAD_BLOCK_UNDEFINED:
      r = fn (opaque, off, n, LAYER_PARENT);
      break;
    case PAYLOAD_BLOCK_ZERO:
    case PAYLOAD_BLOCK_UNMAPPED:
    case PAYLOAD_BLOCK_UNMAPPED_V095:
      r = fn (opaque, off, n, LAYER_ZERO);
      break;
    default:
      CORRUPT (s, "BAT entry of block %" PRIu64 " has the reserved state %u", block, BAT_STATE (e));
    }
    if (r != 0) return -1;
    off += n; len -= n;
  }
  return 0;
}

/* ---- resize ---- */

/* Replace the cached copy of the 4 KiB sector at OFF and mark it dirty. */
static int
ms_put (struct vhdx *s, uint64_t off, const uint8_t *data)
{
  uint8_t *b;
  if (vhdx_ms_get (s, off, &b) == -1) return -1;
  memcpy (b, data, VHDX_SECTOR);
  return vhdx_ms_mark_dirty (s, off);
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

/* Move the BAT to the end of the file: write the copy directly (it is
 * unreferenced until the region tables change), then point both region
 * tables at it through the log. */
static int
relocate_bat (struct vhdx *s, uint64_t entries)
{
  uint64_t newlen = round_up (entries * 8, MiB), newoff;
  if (newlen > UINT32_MAX) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: the BAT for that size would exceed 4 GiB", s->d->path);
    return -1;
  }
  for (uint64_t sec = 0; sec < div_round_up (s->bat_entries, VHDX_SECTOR / 8); sec++) {
    uint64_t e;
    if (vhdx_bat_get (s, sec * (VHDX_SECTOR / 8), &e) == -1) return -1;
  }
  if (alloc_region (s, newlen, &newoff) == -1) return -1;
  uint8_t *buf = calloc (1, MiB);
  if (!buf) { set_error_errno (ENOMEM, "%s", s->d->path); return -1; }
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
      if (vhdx_make_room (s) == -1 ||
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
vhdx_resize (struct vhdkit_disk *d, uint64_t new_size)
{
  struct vhdx *s = d->priv;
  bool fixed = s->leave_allocated && !s->has_parent;
  uint64_t old_size = d->size;
  if (vhdx_begin_write (s, true) == -1 || vhdx_commit (s) == -1)
    return -1;
  uint64_t cr, db, entries;
  vhdx_compute_geometry (new_size, s->block_size, d->lss, s->has_parent, &cr, &db, &entries);
  if (new_size > old_size) {
    uint64_t full;
    vhdx_compute_geometry (new_size, s->block_size, d->lss, true, &cr, &db, &full);
    if (full > s->bat_entries) {
      uint64_t old_entries = s->bat_entries;
      if (grow_bat_array (s, full) == -1) {
        set_error_errno (ENOMEM, "%s: resize", d->path);
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
          if (e && (vhdx_make_room (s) == -1 || vhdx_bat_set (s, i, 0) == -1))
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
        if (vhdx_make_room (s) == -1 || alloc_region (s, s->block_size, &bo) == -1 ||
            vhdx_bat_set (s, payload_index (s, b), BAT_ENTRY (PAYLOAD_BLOCK_FULLY_PRESENT, bo)) == -1)
          return -1;
      }
    }
  }
  /* The Virtual Disk Size item, through the log. */
  uint64_t sec = s->size_item_off / VHDX_SECTOR * VHDX_SECTOR;
  uint8_t *b;
  if (vhdx_make_room (s) == -1 || vhdx_ms_get (s, sec, &b) == -1) return -1;
  if (s->size_item_off % VHDX_SECTOR > VHDX_SECTOR - 8)
    CORRUPT (s, "the Virtual Disk Size item straddles a 4 KiB boundary");
  put_le64 (b + s->size_item_off % VHDX_SECTOR, new_size);
  if (vhdx_ms_mark_dirty (s, sec) == -1) return -1;
  d->size = new_size;
  if (new_size < old_size) s->data_blocks = db;
  if (vhdx_commit (s) == -1) return -1;
  /* Growing: the old last block's tail past the old size must read as
   * zeros (a foreign writer may have left data there). */
  if (new_size > old_size && old_size % s->block_size) {
    uint64_t end = round_up (old_size, s->block_size);
    if (end > new_size) end = new_size;
    if (vhdx_zero (d, end - old_size, old_size) == -1 || vhdx_commit (s) == -1)
      return -1;
  }
  return 0;
}

static void
vhdx_data_write_guid (struct vhdkit_disk *d, uint8_t out[16])
{
  struct vhdx *s = d->priv;
  memcpy (out, s->hdr[s->cur].data_write.b, 16);
}

static struct io *
vhdx_get_io (struct vhdkit_disk *d)
{
  return ((struct vhdx *) d->priv)->io;
}

static const struct driver vhdx_driver = {
  "vhdx", vhdx_pread, vhdx_pwrite, vhdx_zero, vhdx_flush, vhdx_close,
  vhdx_get_info, vhdx_map_layer, vhdx_resize, vhdx_data_write_guid,
  vhdx_get_io,
};

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
 * file name of each beside the child (images moved together). */
static int
parent_candidates (struct vhdx *s, char **c, int max)
{
  int n = 0;
  const char *locs[3] = { s->loc_relative, s->loc_volume, s->loc_absolute };
  for (int i = 0; i < 3 && n < max; i++) {
    if (!locs[i]) continue;
    char *p = win_to_posix (locs[i]);
    if (!p) continue;
    const char *q = p;
    if (i == 0) {
      c[n++] = q[0] == '/' ? strdup (q) : join_dir (s->d->path, q);
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
    if (*base) c[n++] = join_dir (s->d->path, base);
  }
  return n;
}

static int
open_parent (struct vhdx *s, const uint64_t *chain_ids)
{
  char *cand[6] = { 0 };
  int n = parent_candidates (s, cand, 6), ret = -1;
  char tried[2048] = "";
  for (int i = 0; i < n; i++) {
    if (!cand[i]) continue;
    bool dup = false;
    for (int k = 0; k < i; k++) dup |= cand[k] && strcmp (cand[k], cand[i]) == 0;
    if (dup) continue;
    size_t tl = strlen (tried);
    snprintf (tried + tl, sizeof tried - tl, "%s%s", tl ? ", " : "", cand[i]);
    if (access (cand[i], F_OK) == -1) continue;
    struct vhdkit_disk *p = disk_open_depth (cand[i], VHDKIT_OPEN_RDONLY,
                                             s->d->depth + 1, chain_ids);
    if (!p) { error_prefix ("%s: parent", s->d->path); goto out; }
    if (p->drv != &vhdx_driver) {
      set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: the parent %s is not a VHDX image", s->d->path, cand[i]);
      disk_close_unlocked (p);
      goto out;
    }
    struct vhdx *ps = p->priv;
    const struct guid *dw = &ps->hdr[ps->cur].data_write;
    if (!guid_eq (dw, &s->linkage) && !(s->has_linkage2 && guid_eq (dw, &s->linkage2))) {
      char a[40], b[40];
      guid_to_text (dw, a);
      guid_to_text (&s->linkage, b);
      set_error (VHDKIT_RC_FAILED, 0,
                 "%s: the parent %s has DataWriteGuid {%s} but the child was made from {%s}: the parent was modified after the child was created, so the chain is broken",
                 s->d->path, cand[i], a, b);
      disk_close_unlocked (p);
      goto out;
    }
    if (p->lss != s->d->lss) {
      set_error (VHDKIT_RC_FAILED, 0, "%s: the parent %s has logical sector size %" PRIu32 ", the child %" PRIu32,
                 s->d->path, cand[i], p->lss, s->d->lss);
      disk_close_unlocked (p);
      goto out;
    }
    s->d->parent = p;
    s->d->parent_path = realpath (cand[i], NULL);
    if (!s->d->parent_path) s->d->parent_path = strdup (cand[i]);
    ret = 0;
    goto out;
  }
  set_error (VHDKIT_RC_FILE_NOT_FOUND, ENOENT, "%s: parent image not found (tried %s)",
             s->d->path, *tried ? tried : "no usable locator path");
 out:
  for (int i = 0; i < n; i++) free (cand[i]);
  return ret;
}

/* ---- open ---- */

int
vhdx_open_io (struct vhdkit_disk *d, struct io *io, const uint64_t *chain_ids,
              struct vhdx **out)
{
  struct vhdx *s = calloc (1, sizeof *s);
  if (!s) {
    set_error_errno (ENOMEM, "%s", d->path);
    io_close (io);
    return -1;
  }
  s->d = d;
  s->io = io;
  d->priv = s;
  d->drv = &vhdx_driver;
  bool replayed = false;
  if (io_get_size (io, &s->file_size) == -1) {
    set_error_errno (errno, "%s: stat", d->path);
    goto fail;
  }
  if (vhdx_read_headers (s) == -1) goto fail;
  /* 2.3.3: replay before any other I/O; 2.2.2: a writer renews
   * FileWriteGuid before replaying. */
  if (!guid_is_zero (&s->hdr[s->cur].log_guid)) {
    if (d->writable && vhdx_write_header (s, NULL, NULL, 2) == -1) goto fail;
    if (vhdx_log_replay (s, !d->writable, &replayed) == -1) goto fail;
    if (d->writable) {
      struct guid z = {{ 0 }};
      if (vhdx_write_header (s, NULL, &z, 1) == -1) goto fail;
    }
  }
  if (vhdx_read_regions (s) == -1 || vhdx_read_metadata (s) == -1) goto fail;
  uint64_t need;
  vhdx_compute_geometry (d->size, s->block_size, d->lss, s->has_parent,
                         &s->chunk_ratio, &s->data_blocks, &need);
  if (need * 8 > s->bat_len) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: corrupt VHDX image: the BAT region (%" PRIu32
               " bytes) is too small for %" PRIu64 " entries", d->path, s->bat_len, need);
    goto fail;
  }
  /* Keep room for the differencing layout's trailing sector-bitmap
   * entry where the region has it. */
  uint64_t full;
  vhdx_compute_geometry (d->size, s->block_size, d->lss, true, &s->chunk_ratio, &s->data_blocks, &full);
  s->bat_entries = full * 8 <= s->bat_len ? full : need;
  s->bat_sectors = div_round_up (s->bat_entries, VHDX_SECTOR / 8);
  s->bat = calloc (s->bat_sectors, VHDX_SECTOR);
  s->bat_state = calloc (s->bat_sectors, 1);
  if (!s->bat || !s->bat_state) {
    set_error_errno (ENOMEM, "%s: BAT of %" PRIu64 " entries", d->path, s->bat_entries);
    goto fail;
  }
  s->file_end = round_up (s->file_size, MiB);
  if (s->has_parent && !(d->flags & VHDKIT_OPEN_NO_PARENT) &&
      open_parent (s, chain_ids) == -1)
    goto fail;
  if (s->has_parent && (d->flags & VHDKIT_OPEN_NO_PARENT)) {
    /* Not opened: report the first place the parent is looked for. */
    char *cand[6] = { 0 };
    int n = parent_candidates (s, cand, 6);
    for (int i = 0; i < n; i++) {
      if (!d->parent_path && cand[i]) d->parent_path = cand[i];
      else free (cand[i]);
    }
  }
  if (out) *out = s;
  return 0;
 fail:
  io_close (io);
  s->io = NULL;
  free_vhdx (s);
  d->priv = NULL;
  d->drv = NULL;
  return -1;
}

int
vhdx_open (struct vhdkit_disk *d, struct io *io, const uint64_t *chain_ids)
{
  return vhdx_open_io (d, io, chain_ids, NULL);
}

int
vhdx_preset_data_write_guid (struct vhdkit_disk *d, const struct guid *dw)
{
  if (d->drv != &vhdx_driver) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: not a VHDX image", d->path);
    return -1;
  }
  struct vhdx *s = d->priv;
  s->next_dw = *dw;
  s->have_next_dw = true;
  return 0;
}

/* Take the preset DataWriteGuid now, even if nothing is written. */
int
vhdx_take_data_write_guid (struct vhdkit_disk *d)
{
  if (d->drv != &vhdx_driver) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: not a VHDX image", d->path);
    return -1;
  }
  return vhdx_begin_write (d->priv, true);
}

/* Rewrite the child's parent locator with both linkages, through the
 * log.  The new item goes where the old one was if it fits, else after
 * the last item of the metadata region. */
int
vhdx_set_linkage2 (struct vhdkit_disk *d, const struct guid *link)
{
  struct vhdx *ps = d->parent->priv;
  return vhdx_set_linkages (d, &ps->hdr[ps->cur].data_write, link);
}

int
vhdx_set_linkages (struct vhdkit_disk *d, const struct guid *link1, const struct guid *link)
{
  struct vhdx *s = d->priv;
  if (vhdx_begin_write (s, false) == -1) return -1;
  uint8_t *t = malloc (VHDX_META_TABLE_SIZE);
  if (!t) { set_error_errno (ENOMEM, "%s", d->path); return -1; }
  int ret = -1;
  char *keys[6] = { 0 }, *vals[6] = { 0 };
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
    set_error (VHDKIT_RC_FAILED, 0, "%s: no parent locator to update", d->path);
    goto out;
  }
  char a[40], b[40];
  guid_to_text (link1, a);
  guid_to_text (link, b);
  const char *k[5] = { "parent_linkage", "parent_linkage2", "relative_path", "volume_path", "absolute_win32_path" };
  const char *v[5] = { NULL, NULL, s->loc_relative, s->loc_volume, s->loc_absolute };
  if (asprintf (&vals[0], "{%s}", a) == -1 || asprintf (&vals[1], "{%s}", b) == -1) goto nomem;
  for (int i = 0; i < 5; i++) {
    if (i >= 2 && !v[i]) continue;
    keys[nkv] = (char *) k[i];
    if (i >= 2 && !(vals[nkv] = strdup (v[i]))) goto nomem;
    if (i < 2 && nkv != i) { vals[nkv] = vals[i]; vals[i] = NULL; }
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
    set_error (VHDKIT_RC_FAILED, 0, "%s: no room in the metadata region for the new parent locator", d->path);
    goto out;
  }
  put_le32 (le + 16, (uint32_t) ioff);
  put_le32 (le + 20, (uint32_t) len);
  /* Stage the changed sectors: the table entry's and the item's. */
  uint64_t tsec = (32 + 32 * (uint64_t) li) / VHDX_SECTOR * VHDX_SECTOR;
  if (vhdx_make_room (s) == -1 || ms_put (s, s->meta_off + tsec, t + tsec) == -1) goto out;
  for (uint64_t sec = ioff / VHDX_SECTOR * VHDX_SECTOR; sec < ioff + len; sec += VHDX_SECTOR) {
    uint8_t *cb;
    if (vhdx_make_room (s) == -1 || vhdx_ms_get (s, s->meta_off + sec, &cb) == -1) goto out;
    uint64_t a0 = sec < ioff ? ioff : sec, a1 = sec + VHDX_SECTOR < ioff + len ? sec + VHDX_SECTOR : ioff + len;
    memcpy (cb + (a0 - sec), item + (a0 - ioff), a1 - a0);
    if (vhdx_ms_mark_dirty (s, s->meta_off + sec) == -1) goto out;
  }
  if (vhdx_commit (s) == -1) goto out;
  s->linkage = *link1;
  s->linkage2 = *link;
  s->has_linkage2 = true;
  ret = 0;
  goto out;
 nomem:
  set_error_errno (ENOMEM, "%s: parent locator", d->path);
 out:
  for (int i = 0; i < 2; i++) free (vals[i]);
  for (int i = 2; i < 6; i++) free (vals[i]);
  free (item);
  free (t);
  return ret;
}

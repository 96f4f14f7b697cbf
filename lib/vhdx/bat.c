/* The BAT and metadata-sector caches, and the commit path that makes
 * them durable through the log.
 *
 * Every metadata change is first made in memory (the BAT array or a
 * cached 4 KiB metadata sector, marked dirty).  vhdx_commit writes all
 * dirty sectors as one log entry.  The order, which docs/CRASH-SAFETY.md
 * states as VX-2..VX-5, is:
 *   1. flush payload data                       (VX-2: data before metadata)
 *   2. write the log entry, flush               (VX-3)
 *   3. name the log in the header if it does not yet (VX-3)
 *   4. write the sectors in place, flush        (VX-4)
 * A crash before 3 completes leaves the old metadata; after 3, replay
 * produces the new metadata.  A failure of any write poisons the handle
 * (VX-5): its in-memory state may be ahead of the file, so it refuses
 * further writes and the next open recovers from the log.
 *
 * Locking: called with the disk lock held. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vhdx.h"
#include "endian.h"

#define BAT_PER_SECTOR (VHDX_SECTOR / 8)
#define MAX_DIRTY 120          /* sectors per log entry: fits half a 1 MiB log */
#define MS_CLEAN_LIMIT 65536   /* cached clean sectors before a purge */

static int
load_bat_sector (struct vhdx *s, uint64_t sec)
{
  uint8_t buf[VHDX_SECTOR];
  uint64_t off = s->bat_off + sec * VHDX_SECTOR;
  if (vhdx_meta_pread (s, buf, VHDX_SECTOR, off) == -1)
    return -1;
  uint64_t first = sec * BAT_PER_SECTOR;
  for (uint64_t i = 0; i < BAT_PER_SECTOR && first + i < s->bat_entries; i++)
    s->bat[first + i] = get_le64 (buf + 8 * i);
  s->bat_state[sec] |= 1;
  return 0;
}

int
vhdx_bat_get (struct vhdx *s, uint64_t idx, uint64_t *entry)
{
  if (idx >= s->bat_entries) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: internal error: BAT index %" PRIu64 " out of range",
               s->d->path, idx);
    return -1;
  }
  uint64_t sec = idx / BAT_PER_SECTOR;
  if (!(s->bat_state[sec] & 1) && load_bat_sector (s, sec) == -1)
    return -1;
  *entry = s->bat[idx];
  return 0;
}

int
vhdx_bat_set (struct vhdx *s, uint64_t idx, uint64_t entry)
{
  uint64_t old;
  if (vhdx_bat_get (s, idx, &old) == -1)
    return -1;
  uint64_t sec = idx / BAT_PER_SECTOR;
  s->bat[idx] = entry;
  if (!(s->bat_state[sec] & 2)) {
    s->bat_state[sec] |= 2;
    s->ndirty++;
  }
  return 0;
}

/* ---- metadata sector cache (open addressing, linear probing) ---- */

static size_t
ms_slot (const struct vhdx *s, uint64_t off)
{
  uint64_t h = (off >> 12) * UINT64_C(0x9E3779B97F4A7C15);
  size_t i = (size_t) (h >> 20) & (s->ms_cap - 1);
  while (s->ms[i].off && s->ms[i].off != off)
    i = (i + 1) & (s->ms_cap - 1);
  return i;
}

static int
ms_rehash (struct vhdx *s, size_t cap, bool drop_clean)
{
  struct msector *old = s->ms;
  size_t oldcap = s->ms_cap;
  struct msector *n = calloc (cap, sizeof *n);
  if (!n) return -1;
  s->ms = n;
  s->ms_cap = cap;
  s->ms_count = 0;
  for (size_t i = 0; i < oldcap; i++) {
    if (!old[i].off) continue;
    if (drop_clean && !old[i].dirty) { free (old[i].buf); continue; }
    n[ms_slot (s, old[i].off)] = old[i];
    s->ms_count++;
  }
  free (old);
  return 0;
}

/* The cached copy of the metadata sector at file offset OFF. */
int
vhdx_ms_get (struct vhdx *s, uint64_t off, uint8_t **buf)
{
  if (s->ms_cap == 0 && ms_rehash (s, 1024, false) == -1) goto nomem;
  size_t i = ms_slot (s, off);
  if (s->ms[i].off) { *buf = s->ms[i].buf; return 0; }
  if (s->ms_count >= MS_CLEAN_LIMIT) {
    if (ms_rehash (s, s->ms_cap, true) == -1) goto nomem;
    i = ms_slot (s, off);
  }
  if ((s->ms_count + 1) * 2 > s->ms_cap) {
    if (ms_rehash (s, s->ms_cap * 2, false) == -1) goto nomem;
    i = ms_slot (s, off);
  }
  uint8_t *b = malloc (VHDX_SECTOR);
  if (!b) goto nomem;
  if (vhdx_meta_pread (s, b, VHDX_SECTOR, off) == -1) { free (b); return -1; }
  s->ms[i].off = off;
  s->ms[i].buf = b;
  s->ms[i].dirty = false;
  s->ms_count++;
  *buf = b;
  return 0;
 nomem:
  set_error_errno (ENOMEM, "%s: metadata cache", s->d->path);
  return -1;
}

int
vhdx_ms_mark_dirty (struct vhdx *s, uint64_t off)
{
  size_t i = ms_slot (s, off);
  if (!s->ms[i].off) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: internal error: dirtying an uncached sector", s->d->path);
    return -1;
  }
  if (!s->ms[i].dirty) {
    s->ms[i].dirty = true;
    s->ndirty++;
  }
  return 0;
}

void
vhdx_free_caches (struct vhdx *s)
{
  for (size_t i = 0; i < s->ms_cap; i++)
    free (s->ms[i].buf);
  free (s->ms);
  s->ms = NULL;
  s->ms_cap = s->ms_count = 0;
  free (s->bat);
  free (s->bat_state);
  s->bat = NULL;
  s->bat_state = NULL;
  for (size_t i = 0; i < s->nov; i++)
    free (s->ov[i].data);
  free (s->ov);
  s->ov = NULL;
  s->nov = 0;
}

/* The first change of a session renews FileWriteGuid, and DataWriteGuid
 * when the change is visible to readers (2.2.2, VX-1). */
int
vhdx_begin_write (struct vhdx *s, bool data_change)
{
  if (s->poisoned) {
    set_error (VHDKIT_RC_FAILED, EIO,
               "%s: an earlier metadata write failed; reopen the image to recover it", s->d->path);
    return -1;
  }
  if (s->session_started && (!data_change || s->data_guid_renewed))
    return 0;
  struct guid dw;
  bool renew = data_change && !s->data_guid_renewed;
  if (renew && s->have_next_dw)
    dw = s->next_dw;
  else if (renew && guid_generate (&dw) == -1) {
    set_error_errno (errno, "%s: random GUID", s->d->path);
    return -1;
  }
  /* INV-4: change tracking records the new value durably first, so that
   * a crash between the two never looks like a foreign write. */
  if (renew && rct_before_data_write_guid (s->d, dw.b) == -1)
    return -1;
  if (vhdx_write_header (s, renew ? &dw : NULL, NULL, 2) == -1)
    return -1;
  if (renew) s->data_guid_renewed = true;
  return 0;
}

int
vhdx_commit (struct vhdx *s)
{
  if (s->ndirty == 0) return 0;
  if (s->poisoned) {
    set_error (VHDKIT_RC_FAILED, EIO,
               "%s: an earlier metadata write failed; reopen the image to recover it", s->d->path);
    return -1;
  }
  size_t n = 0, cap = s->ndirty;
  uint64_t *offs = malloc (cap * sizeof *offs);
  uint8_t **bufs = calloc (cap, sizeof *bufs);
  uint8_t *batbufs = NULL;
  size_t nbat = 0;
  int ret = -1;
  if (!offs || !bufs) goto nomem;
  for (uint64_t sec = 0; sec < s->bat_sectors; sec++)
    if (s->bat_state[sec] & 2) nbat++;
  if (nbat && !(batbufs = calloc (nbat, VHDX_SECTOR))) goto nomem;
  size_t k = 0;
  for (uint64_t sec = 0; sec < s->bat_sectors && n < cap; sec++) {
    if (!(s->bat_state[sec] & 2)) continue;
    uint8_t *b = batbufs + k++ * VHDX_SECTOR;
    uint64_t first = sec * BAT_PER_SECTOR;
    /* Entries past bat_entries in the last sector keep their on-disk
     * value: read the sector first. */
    if (first + BAT_PER_SECTOR > s->bat_entries &&
        vhdx_meta_pread (s, b, VHDX_SECTOR, s->bat_off + sec * VHDX_SECTOR) == -1)
      goto out;
    for (uint64_t i = 0; i < BAT_PER_SECTOR && first + i < s->bat_entries; i++)
      put_le64 (b + 8 * i, s->bat[first + i]);
    offs[n] = s->bat_off + sec * VHDX_SECTOR;
    bufs[n++] = b;
  }
  for (size_t i = 0; i < s->ms_cap && n < cap; i++)
    if (s->ms[i].off && s->ms[i].dirty) {
      offs[n] = s->ms[i].off;
      bufs[n++] = s->ms[i].buf;
    }
  /* 1. payload data first (VX-2) */
  if (io_sync (s->io) == -1) {
    set_error_errno (errno, "%s: flush data", s->d->path);
    s->poisoned = true;
    goto out;
  }
  /* 2. the log entry, under this session's LogGuid (VX-3) */
  if (guid_is_zero (&s->session_log_guid)) {
    if (guid_generate (&s->session_log_guid) == -1) {
      set_error_errno (errno, "%s: random GUID", s->d->path);
      goto out;
    }
    s->log_seq = 0;
    s->log_half = 0;
  }
  if (vhdx_log_write (s, offs, bufs, n) == -1) goto out;
  /* 3. only now may the header name that log: a header never names a
   * log without a valid entry (MS-VHDX 2.3.3 calls that corrupt). */
  if (!guid_eq (&s->hdr[s->cur].log_guid, &s->session_log_guid) &&
      vhdx_write_header (s, NULL, &s->session_log_guid, 1) == -1)
    goto out;
  /* 4. in place */
  for (size_t i = 0; i < n; i++)
    if (io_pwrite (s->io, bufs[i], VHDX_SECTOR, offs[i]) == -1) {
      set_error_errno (errno, "%s: write metadata at %" PRIu64, s->d->path, offs[i]);
      s->poisoned = true;
      goto out;
    }
  if (io_sync (s->io) == -1) {
    set_error_errno (errno, "%s: flush metadata", s->d->path);
    s->poisoned = true;
    goto out;
  }
  for (uint64_t sec = 0; sec < s->bat_sectors; sec++)
    s->bat_state[sec] &= (uint8_t) ~2;
  for (size_t i = 0; i < s->ms_cap; i++)
    s->ms[i].dirty = false;
  s->ndirty = 0;
  ret = 0;
  goto out;
 nomem:
  set_error_errno (ENOMEM, "%s: commit", s->d->path);
 out:
  free (offs);
  free (bufs);
  free (batbufs);
  return ret;
}

/* Callers dirtying metadata first make room: a log entry holds at most
 * MAX_DIRTY sectors. */
int
vhdx_make_room (struct vhdx *s)
{
  return s->ndirty + 4 > MAX_DIRTY ? vhdx_commit (s) : 0;
}

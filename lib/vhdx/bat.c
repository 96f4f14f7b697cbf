/* The BAT and metadata-sector caches, and the commit path that makes
 * them durable through the log.
 *
 * Every metadata change is first made in memory (the BAT array or a
 * cached 4 KiB metadata sector, marked dirty) under the meta lock (L-3).
 * vhdx_commit writes all dirty sectors as one log entry.  The order,
 * which docs/CRASH-SAFETY.md states as VX-2..VX-5, is:
 *   0. take the dirty sectors' contents (under meta) and mark them clean
 *   1. flush payload data                       (VX-2: data before metadata)
 *   2. write the log entry, flush               (VX-3)
 *   3. name the log in the header if it does not yet (VX-3)
 *   4. write the sectors in place, flush        (VX-4)
 * A crash before 3 completes leaves the old metadata; after 3, replay
 * produces the new metadata.  A failure at any step after 0 poisons the
 * handle (VX-5): the changes it took are durable nowhere and memory is
 * ahead of the file, so the handle refuses further writes and the next
 * open recovers from the log.
 *
 * Locking: the commit lock (L-5) is held for the whole commit, across
 * its I/O; the meta lock only for step 0.  Writes to allocated blocks go
 * on meanwhile: what they change after step 0 goes into the next commit.
 * A metadata change is made after the data it describes was written
 * (writers publish a new block's BAT entry only after its data), so step
 * 1 covers the data of every change step 0 took.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vhdx.h"
#include "endian.h"

#define BAT_PER_SECTOR (VHDX_SECTOR / 8)
#define MAX_DIRTY 120          /* sectors per log entry: fits half a 1 MiB log */
#define MS_CLEAN_LIMIT 65536   /* cached clean sectors before a purge */

/* ---- the BAT (lock-free reads, L-3) ---- */

/* Read BAT sector SEC and install it unless another thread did. */
static int
load_bat_sector (struct vhdx *s, uint64_t sec)
{
  uint8_t buf[VHDX_SECTOR];
  uint64_t off = s->bat_off + sec * VHDX_SECTOR;
  if (vhdx_meta_pread (s, buf, VHDX_SECTOR, off) == -1)
    return -1;
  LOCK_FOR_SCOPE (&s->meta);
  if (s->bat_state[sec] & 1) return 0;
  uint64_t first = sec * BAT_PER_SECTOR;
  /* The last sector's bytes past the last entry are kept as they are on
   * disk when the sector is written back. */
  if (first + BAT_PER_SECTOR > s->bat_entries) {
    if (!s->bat_tail && !(s->bat_tail = malloc (VHDX_SECTOR))) {
      set_error_errno (ENOMEM, "%s: BAT", s->path);
      return -1;
    }
    memcpy (s->bat_tail, buf, VHDX_SECTOR);
    s->bat_tail_sec = sec;
  }
  for (uint64_t i = 0; i < BAT_PER_SECTOR && first + i < s->bat_entries; i++)
    STORE_RELAXED (&s->bat[first + i], get_le64 (buf + 8 * i));
  /* Release: a reader that sees the bit sees the entries. */
  __atomic_or_fetch (&s->bat_state[sec], 1, __ATOMIC_RELEASE);
  return 0;
}

int
vhdx_bat_get (struct vhdx *s, uint64_t idx, uint64_t *entry)
{
  if (idx >= s->bat_entries) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: internal error: BAT index %" PRIu64 " out of range",
               s->path, idx);
    return -1;
  }
  uint64_t sec = idx / BAT_PER_SECTOR;
  if (!(LOAD_ACQUIRE (&s->bat_state[sec]) & 1) && load_bat_sector (s, sec) == -1)
    return -1;
  /* Acquire: the data of a block is written before its entry is
   * published (release in vhdx_bat_set_locked). */
  *entry = LOAD_ACQUIRE (&s->bat[idx]);
  return 0;
}

void
vhdx_bat_set_locked (struct vhdx *s, uint64_t idx, uint64_t entry)
{
  uint64_t sec = idx / BAT_PER_SECTOR;
  STORE_RELEASE (&s->bat[idx], entry);
  if (!(s->bat_state[sec] & 2)) {
    __atomic_or_fetch (&s->bat_state[sec], 2, __ATOMIC_RELAXED);
    s->ndirty++;
  }
}

/* ---- metadata sector cache (open addressing, linear probing; meta) ---- */

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

int
vhdx_ms_lookup_locked (struct vhdx *s, uint64_t off, uint8_t **buf)
{
  if (s->ms_cap == 0) return 0;
  size_t i = ms_slot (s, off);
  if (!s->ms[i].off) return 0;
  *buf = s->ms[i].buf;
  return 1;
}

/* Insert B as the cached copy of OFF (meta held); B is freed if the
 * sector is cached already. */
static int
ms_insert_locked (struct vhdx *s, uint64_t off, uint8_t *b)
{
  if (s->ms_cap == 0 && ms_rehash (s, 1024, false) == -1) goto nomem;
  size_t i = ms_slot (s, off);
  if (s->ms[i].off) { free (b); return 0; }
  if ((s->ms_count + 1) * 2 > s->ms_cap) {
    if (ms_rehash (s, s->ms_cap * 2, false) == -1) goto nomem;
    i = ms_slot (s, off);
  }
  s->ms[i].off = off;
  s->ms[i].buf = b;
  s->ms[i].dirty = false;
  s->ms_count++;
  return 0;
 nomem:
  free (b);
  set_error_errno (ENOMEM, "%s: metadata cache", s->path);
  return -1;
}

int
vhdx_ms_load (struct vhdx *s, uint64_t off)
{
  uint8_t *b = malloc (VHDX_SECTOR);
  if (!b) {
    set_error_errno (ENOMEM, "%s: metadata cache", s->path);
    return -1;
  }
  if (vhdx_meta_pread (s, b, VHDX_SECTOR, off) == -1) { free (b); return -1; }
  LOCK_FOR_SCOPE (&s->meta);
  return ms_insert_locked (s, off, b);
}

int
vhdx_ms_get (struct vhdx *s, uint64_t off, uint8_t **buf)
{
  for (;;) {
    pthread_mutex_lock (&s->meta);
    int r = vhdx_ms_lookup_locked (s, off, buf);
    pthread_mutex_unlock (&s->meta);
    if (r != 0) return r < 0 ? -1 : 0;
    if (vhdx_ms_load (s, off) == -1) return -1;
  }
}

void
vhdx_ms_mark_dirty_locked (struct vhdx *s, uint64_t off)
{
  size_t i = ms_slot (s, off);
  if (s->ms[i].off && !s->ms[i].dirty) {
    s->ms[i].dirty = true;
    s->ndirty++;
  }
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
  free (s->pend);
  s->pend = NULL;
  free (s->bat_tail);
  s->bat_tail = NULL;
  s->npend = s->pend_cap = 0;
}

/* ---- failure state (VX-5) ---- */

bool
vhdx_poisoned (struct vhdx *s)
{
  return LOAD_ACQUIRE (&s->poisoned);
}

int
vhdx_poisoned_error (struct vhdx *s)
{
  set_error (VHDKIT_RC_FAILED, EIO,
             "%s: an earlier write of metadata or a flush failed; reopen the image to recover it", s->path);
  return -1;
}

/* ---- sessions ---- */

/* The first change of a session renews FileWriteGuid, and DataWriteGuid
 * when the change is visible to readers (2.2.2, VX-1).  Commit lock
 * held. */
static int
begin_write_locked (struct vhdx *s, bool data_change)
{
  if (s->poisoned) return vhdx_poisoned_error (s);
  if (s->session_started && (!data_change || s->data_guid_renewed))
    return 0;
  struct guid dw;
  bool renew = data_change && !s->data_guid_renewed;
  if (renew && s->have_next_dw)
    dw = s->next_dw;
  else if (renew && guid_generate (&dw) == -1) {
    set_error_errno (errno, "%s: random GUID", s->path);
    return -1;
  }
  /* INV-4: the layers above (change tracking) record the new value
   * durably first, so that a crash between the two never looks like a
   * foreign write. */
  if (renew && s->hooks && s->hooks->before_data_write_guid &&
      s->hooks->before_data_write_guid (s->hooks->opaque, dw.b) == -1)
    return -1;
  if (vhdx_write_header (s, renew ? &dw : NULL, NULL, 2) == -1)
    return -1;
  if (renew) STORE_RELEASE (&s->data_guid_renewed, true);
  return 0;
}

int
vhdx_begin_write (struct vhdx *s, bool data_change)
{
  /* The common case, once the session has begun: no lock. */
  if (LOAD_ACQUIRE (&s->session_started) &&
      (!data_change || LOAD_ACQUIRE (&s->data_guid_renewed))) {
    if (vhdx_poisoned (s)) return vhdx_poisoned_error (s);
    return 0;
  }
  LOCK_FOR_SCOPE (&s->commit);
  return begin_write_locked (s, data_change);
}

/* ---- commit ---- */

/* What step 0 took. */
struct snap {
  size_t n;
  uint64_t *offs;
  uint8_t **bufs;
  uint8_t *mem;                 /* the sectors' copies */
  uint64_t flushed, last;       /* file_size and file_end then */
};

static void
snap_free (struct snap *c)
{
  free (c->offs);
  free (c->bufs);
  free (c->mem);
}

/* Step 0 (meta held): copy every dirty sector, mark them clean.  No I/O:
 * the last BAT sector's bytes past the last entry come from the copy
 * load_bat_sector kept. */
static int
take_dirty_locked (struct vhdx *s, struct snap *c)
{
  size_t cap = s->ndirty;
  memset (c, 0, sizeof *c);
  if (cap == 0) return 0;
  c->offs = malloc (cap * sizeof *c->offs);
  c->bufs = malloc (cap * sizeof *c->bufs);
  c->mem = malloc (cap * VHDX_SECTOR);
  if (!c->offs || !c->bufs || !c->mem) {
    snap_free (c);
    set_error_errno (ENOMEM, "%s: commit", s->path);
    return -1;
  }
  for (uint64_t sec = 0; sec < s->bat_sectors && c->n < cap; sec++) {
    if (!(s->bat_state[sec] & 2)) continue;
    uint8_t *b = c->mem + c->n * VHDX_SECTOR;
    uint64_t first = sec * BAT_PER_SECTOR;
    memset (b, 0, VHDX_SECTOR);
    if (first + BAT_PER_SECTOR > s->bat_entries && s->bat_tail && s->bat_tail_sec == sec)
      memcpy (b, s->bat_tail, VHDX_SECTOR);
    for (uint64_t i = 0; i < BAT_PER_SECTOR && first + i < s->bat_entries; i++)
      put_le64 (b + 8 * i, s->bat[first + i]);
    c->offs[c->n] = s->bat_off + sec * VHDX_SECTOR;
    c->bufs[c->n++] = b;
    __atomic_and_fetch (&s->bat_state[sec], (uint8_t) ~2, __ATOMIC_RELAXED);
  }
  for (size_t i = 0; i < s->ms_cap && c->n < cap; i++)
    if (s->ms[i].off && s->ms[i].dirty) {
      uint8_t *b = c->mem + c->n * VHDX_SECTOR;
      memcpy (b, s->ms[i].buf, VHDX_SECTOR);
      c->offs[c->n] = s->ms[i].off;
      c->bufs[c->n++] = b;
      s->ms[i].dirty = false;
    }
  s->ndirty -= c->n;
  c->flushed = s->file_size;
  c->last = s->file_end;
  /* Clean sectors pile up in a long session: drop them now and then. */
  if (s->ms_count >= MS_CLEAN_LIMIT)
    ms_rehash (s, s->ms_cap, true);
  return 0;
}

/* The commit, commit lock held. */
static int
commit_locked (struct vhdx *s)
{
  if (s->poisoned) return vhdx_poisoned_error (s);
  struct snap c;
  pthread_mutex_lock (&s->meta);
  int r = take_dirty_locked (s, &c);
  pthread_mutex_unlock (&s->meta);
  if (r == -1) {
    STORE_RELEASE (&s->poisoned, true);    /* the dirty state may be half taken */
    return -1;
  }
  if (c.n == 0) return 0;
  int ret = -1;
  /* 1. payload data first (VX-2) */
  if (io_sync (s->io) == -1) {
    set_error_errno (errno, "%s: flush data", s->path);
    goto fail;
  }
  /* 2. the log entry, under this session's LogGuid (VX-3) */
  if (guid_is_zero (&s->session_log_guid)) {
    if (guid_generate (&s->session_log_guid) == -1) {
      set_error_errno (errno, "%s: random GUID", s->path);
      goto fail;
    }
    s->log_seq = 0;
    s->log_half = 0;
  }
  if (vhdx_log_write (s, c.offs, c.bufs, c.n, c.flushed, c.last) == -1) goto fail;
  /* 3. only now may the header name that log: a header never names a
   * log without a valid entry (MS-VHDX 2.3.3 calls that corrupt). */
  if (!guid_eq (&s->hdr[s->cur].log_guid, &s->session_log_guid) &&
      vhdx_write_header (s, NULL, &s->session_log_guid, 1) == -1)
    goto fail;
  /* 4. in place */
  for (size_t i = 0; i < c.n; i++)
    if (io_pwrite (s->io, c.bufs[i], VHDX_SECTOR, c.offs[i]) == -1) {
      set_error_errno (errno, "%s: write metadata at %" PRIu64, s->path, c.offs[i]);
      goto fail;
    }
  if (io_sync (s->io) == -1) {
    set_error_errno (errno, "%s: flush metadata", s->path);
    goto fail;
  }
  ret = 0;
  goto out;
 fail:
  STORE_RELEASE (&s->poisoned, true);
 out:
  snap_free (&c);
  return ret;
}

int
vhdx_commit (struct vhdx *s)
{
  LOCK_FOR_SCOPE (&s->commit);
  return commit_locked (s);
}

/* The flush barrier: every change completed before the call is durable
 * when it returns.  Taking the commit lock waits for a commit in
 * progress, whose log entry may hold a change that completed before. */
int
vhdx_flush_all (struct vhdx *s)
{
  LOCK_FOR_SCOPE (&s->commit);
  if (s->poisoned) return vhdx_poisoned_error (s);
  pthread_mutex_lock (&s->meta);
  size_t dirty = s->ndirty;
  pthread_mutex_unlock (&s->meta);
  if (dirty) return commit_locked (s);
  /* Nothing to commit: the data.  A failed sync may have lost writes
   * that reported success (the kernel drops the pages), so the handle
   * is poisoned as after a failed commit. */
  if (io_sync (s->io) == -1) {
    set_error_errno (errno, "%s: flush", s->path);
    STORE_RELEASE (&s->poisoned, true);
    return -1;
  }
  return 0;
}

int
vhdx_room_locked (struct vhdx *s, size_t count)
{
  while (s->ndirty + s->nreserved + count > MAX_DIRTY) {
    if (s->ndirty == 0) {
      /* Only reservations: wait for them to be published. */
      pthread_cond_wait (&s->alloc_cv, &s->meta);
      continue;
    }
    pthread_mutex_unlock (&s->meta);
    int r = vhdx_commit (s);
    pthread_mutex_lock (&s->meta);
    if (r == -1) return -1;
  }
  return 0;
}

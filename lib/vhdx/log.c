/* The VHDX log (MS-VHDX 2.3): finding and replaying the active sequence
 * at open, and writing one entry per metadata commit.
 *
 * Writing (VX-3, VX-4 in docs/CRASH-SAFETY.md): every entry vhdkit
 * writes has Tail = itself, because a commit applies and flushes an
 * entry's sectors before the next entry is written.  So the active
 * sequence is always exactly the newest complete entry, and replaying
 * it again is harmless.  Entries alternate between the two halves of the
 * log, so writing one can never tear the previous one: a valid entry
 * exists at every instant once the header names the log.
 *
 * Replay reads entries that may wrap (other writers may produce them). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vhdx.h"
#include "crc32c.h"
#include "endian.h"

#define LOG_HDR_SIZE 64
#define DESC_SIZE 32

struct entry {
  uint32_t pos, len, tail;
  uint64_t seq;
  uint32_t ndesc;
  uint64_t flushed_off, last_off;
};

/* Descriptor sectors needed for N descriptors (126 in the first). */
static uint32_t
desc_sectors (uint64_t n)
{
  return n <= 126 ? 1 : 1 + (uint32_t) div_round_up (n - 126, 128);
}

/* Copy LEN bytes of the entry at POS+K into OUT (wrapping). */
static void
copy_wrapped (const uint8_t *log, uint32_t loglen, uint32_t pos, uint64_t k,
              uint8_t *out, size_t len)
{
  uint64_t start = (pos + k) % loglen;
  size_t first = loglen - start < len ? (size_t) (loglen - start) : len;
  memcpy (out, log + start, first);
  memcpy (out + first, log, len - first);
}

/* Validate the entry at POS (2.3.1); fill E.  Returns true if valid. */
static bool
entry_valid (const uint8_t *log, uint32_t loglen, uint32_t pos,
             const struct guid *log_guid, struct entry *e, uint8_t *scratch)
{
  uint8_t h[LOG_HDR_SIZE];
  copy_wrapped (log, loglen, pos, 0, h, sizeof h);
  if (memcmp (h, "loge", 4) != 0) return false;
  e->pos = pos;
  e->len = get_le32 (h + 8);
  e->tail = get_le32 (h + 12);
  e->seq = get_le64 (h + 16);
  e->ndesc = get_le32 (h + 24);
  e->flushed_off = get_le64 (h + 48);
  e->last_off = get_le64 (h + 56);
  if (e->len == 0 || e->len % VHDX_SECTOR || e->len > loglen ||
      e->tail % VHDX_SECTOR || e->tail >= loglen || e->seq == 0 ||
      memcmp (h + 32, log_guid->b, 16) != 0)
    return false;
  uint64_t ds = desc_sectors (e->ndesc);
  if (ds * VHDX_SECTOR > e->len) return false;
  /* Checksum over the whole entry with the checksum field as zero. */
  copy_wrapped (log, loglen, pos, 0, scratch, e->len);
  if (get_le32 (scratch + 4) != crc32c_skip (scratch, e->len, 4))
    return false;
  uint64_t ndata = 0;
  for (uint32_t i = 0; i < e->ndesc; i++) {
    uint64_t doff = i < 126 ? LOG_HDR_SIZE + (uint64_t) i * DESC_SIZE
                            : VHDX_SECTOR * (1 + (i - 126) / 128) + (uint64_t) ((i - 126) % 128) * DESC_SIZE;
    const uint8_t *d = scratch + doff;
    if (get_le64 (d + 24) != e->seq) return false;
    if (get_le64 (d + 16) % VHDX_SECTOR) return false;
    if (memcmp (d, "desc", 4) == 0) {
      uint64_t s = (ds + ndata) * VHDX_SECTOR;
      if (s + VHDX_SECTOR > e->len) return false;
      const uint8_t *sec = scratch + s;
      if (memcmp (sec, "data", 4) != 0 ||
          get_le32 (sec + 4) != (uint32_t) (e->seq >> 32) ||
          get_le32 (sec + 4092) != (uint32_t) e->seq)
        return false;
      ndata++;
    }
    else if (memcmp (d, "zero", 4) == 0) {
      if (get_le64 (d + 8) % VHDX_SECTOR) return false;
    }
    else
      return false;
  }
  return true;
}

/* Record an in-memory replay write. */
static int
overlay_add (struct vhdx *s, uint64_t off, uint64_t len, const uint8_t *data)
{
  struct overlay *n = realloc (s->ov, (s->nov + 1) * sizeof *n);
  if (!n) return -1;
  s->ov = n;
  n[s->nov].off = off;
  n[s->nov].len = len;
  n[s->nov].data = NULL;
  if (data) {
    if (!(n[s->nov].data = malloc (len))) return -1;
    memcpy (n[s->nov].data, data, len);
  }
  s->nov++;
  return 0;
}

static int
apply (struct vhdx *s, bool in_memory, uint64_t off, uint64_t len,
       const uint8_t *data)
{
  if (in_memory) {
    if (overlay_add (s, off, len, data) == -1) {
      set_error_errno (ENOMEM, "%s: log replay", s->path);
      return -1;
    }
    if (off + len > s->file_size) s->file_size = off + len;
    return 0;
  }
  if (data) {
    if (io_pwrite (s->io, data, len, off) == -1) goto err;
  }
  else {
    static const uint8_t zeros[VHDX_SECTOR];
    for (uint64_t k = 0; k < len; k += VHDX_SECTOR)
      if (io_pwrite (s->io, zeros, VHDX_SECTOR, off + k) == -1) goto err;
  }
  if (off + len > s->file_size) s->file_size = off + len;
  return 0;
 err:
  set_error_errno (errno, "%s: log replay: write at %" PRIu64, s->path, off);
  STORE_RELEASE (&s->poisoned, true);
  return -1;
}

static int
replay_entry (struct vhdx *s, bool in_memory, const uint8_t *log,
              uint32_t loglen, const struct entry *e, uint8_t *scratch)
{
  copy_wrapped (log, loglen, e->pos, 0, scratch, e->len);
  uint64_t ds = desc_sectors (e->ndesc), ndata = 0;
  uint8_t sector[VHDX_SECTOR];
  for (uint32_t i = 0; i < e->ndesc; i++) {
    uint64_t doff = i < 126 ? LOG_HDR_SIZE + (uint64_t) i * DESC_SIZE
                            : VHDX_SECTOR * (1 + (i - 126) / 128) + (uint64_t) ((i - 126) % 128) * DESC_SIZE;
    const uint8_t *d = scratch + doff;
    uint64_t foff = get_le64 (d + 16);
    if (memcmp (d, "desc", 4) == 0) {
      const uint8_t *sec = scratch + (ds + ndata++) * VHDX_SECTOR;
      memcpy (sector, d + 8, 8);              /* LeadingBytes */
      memcpy (sector + 8, sec + 8, 4084);     /* Data */
      memcpy (sector + 4092, d + 4, 4);       /* TrailingBytes */
      if (apply (s, in_memory, foff, VHDX_SECTOR, sector) == -1) return -1;
    }
    else if (apply (s, in_memory, foff, get_le64 (d + 8), NULL) == -1)
      return -1;
  }
  return 0;
}

/* 2.3.3: find the active sequence and replay it. */
int
vhdx_log_replay (struct vhdx *s, bool in_memory, bool *replayed)
{
  const struct vhdx_header *h = &s->hdr[s->cur];
  *replayed = false;
  if (guid_is_zero (&h->log_guid) || h->log_length == 0)
    return 0;
  uint32_t loglen = h->log_length;
  uint8_t *log = malloc (loglen), *scratch = malloc (loglen);
  struct entry *seqv = malloc ((loglen / VHDX_SECTOR) * sizeof *seqv);
  struct entry *best = malloc ((loglen / VHDX_SECTOR) * sizeof *best);
  int ret = -1;
  if (!log || !scratch || !seqv || !best) {
    set_error_errno (ENOMEM, "%s: log of %" PRIu32 " bytes", s->path, loglen);
    goto out;
  }
  if (io_pread_full (s->io, log, loglen, h->log_offset) == -1) {
    set_error (VHDKIT_RC_FAILED, errno, "%s: corrupt VHDX image: cannot read the log at %" PRIu64,
               s->path, h->log_offset);
    goto out;
  }
  size_t nbest = 0;
  uint64_t best_seq = 0;
  uint32_t cur_tail = 0, old_tail = 0;
  for (;;) {
    size_t n = 0;
    uint32_t pos = cur_tail;
    struct entry e;
    while (n < loglen / VHDX_SECTOR &&
           entry_valid (log, loglen, pos, &h->log_guid, &e, scratch) &&
           (n == 0 || e.seq == seqv[n - 1].seq + 1)) {
      seqv[n++] = e;
      pos = (uint32_t) ((pos + (uint64_t) e.len) % loglen);
    }
    /* Valid if the head's tail is one of the sequence's entries. */
    size_t tail_idx = n;
    if (n)
      for (size_t i = 0; i < n; i++)
        if (seqv[i].pos == seqv[n - 1].tail) { tail_idx = i; break; }
    bool valid = n && tail_idx < n;
    if (valid && seqv[n - 1].seq > best_seq) {
      nbest = n - tail_idx;
      memcpy (best, seqv + tail_idx, nbest * sizeof *best);
      best_seq = seqv[n - 1].seq;
    }
    if (!valid)
      cur_tail = (cur_tail + VHDX_SECTOR) % loglen;
    else
      cur_tail = pos;
    if (cur_tail <= old_tail)
      break;
    old_tail = cur_tail;
  }
  if (nbest == 0) {
    set_error (VHDKIT_RC_FAILED, 0,
               "%s: corrupt VHDX image: the header names a log (LogGuid set) but the log holds no valid entry sequence",
               s->path);
    goto out;
  }
  const struct entry *head = &best[nbest - 1];
  if (s->file_size < head->flushed_off) {
    set_error (VHDKIT_RC_FAILED, 0,
               "%s: corrupt VHDX image: the file is %" PRIu64 " bytes but the log says it was flushed at %" PRIu64
               " bytes: it has been truncated", s->path, s->file_size, head->flushed_off);
    goto out;
  }
  for (size_t i = 0; i < nbest; i++)
    if (replay_entry (s, in_memory, log, loglen, &best[i], scratch) == -1)
      goto out;
  if (head->last_off > s->file_size) {
    if (!in_memory && io_truncate (s->io, head->last_off) == -1) {
      set_error_errno (errno, "%s: log replay: extend to %" PRIu64, s->path, head->last_off);
      STORE_RELEASE (&s->poisoned, true);
      goto out;
    }
    s->file_size = head->last_off;
  }
  if (!in_memory && io_sync (s->io) == -1) {
    set_error_errno (errno, "%s: log replay: flush", s->path);
    STORE_RELEASE (&s->poisoned, true);
    goto out;
  }
  *replayed = true;
  ret = 0;
 out:
  free (log); free (scratch); free (seqv); free (best);
  return ret;
}

/* Write one entry holding N full-sector updates under the session's
 * LogGuid, then flush (VX-3).  The caller applies the sectors in place
 * afterwards. */
int
vhdx_log_write (struct vhdx *s, uint64_t *offs, uint8_t **bufs, size_t n,
                uint64_t flushed, uint64_t last)
{
  uint32_t half = s->log_len / 2 / VHDX_SECTOR * VHDX_SECTOR;
  uint64_t ds = desc_sectors (n);
  uint64_t len = (ds + n) * VHDX_SECTOR;
  if (len > half) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: a log entry of %" PRIu64 " bytes does not fit half the %" PRIu32 "-byte log",
               s->path, len, s->log_len);
    return -1;
  }
  uint8_t *e = calloc (1, len);
  if (!e) { set_error_errno (ENOMEM, "%s: log entry", s->path); return -1; }
  uint32_t pos = s->log_half ? half : 0;
  uint64_t seq = ++s->log_seq;
  memcpy (e, "loge", 4);
  put_le32 (e + 8, (uint32_t) len);
  put_le32 (e + 12, pos);                 /* Tail: this entry */
  put_le64 (e + 16, seq);
  put_le32 (e + 24, (uint32_t) n);
  memcpy (e + 32, s->session_log_guid.b, 16);
  put_le64 (e + 48, flushed / MiB * MiB);   /* flushed by the caller */
  put_le64 (e + 56, round_up (last, MiB));
  for (size_t i = 0; i < n; i++) {
    uint64_t doff = i < 126 ? LOG_HDR_SIZE + (uint64_t) i * DESC_SIZE
                            : VHDX_SECTOR * (1 + (i - 126) / 128) + (uint64_t) ((i - 126) % 128) * DESC_SIZE;
    uint8_t *d = e + doff, *sec = e + (ds + i) * VHDX_SECTOR;
    memcpy (d, "desc", 4);
    memcpy (d + 4, bufs[i] + 4092, 4);
    memcpy (d + 8, bufs[i], 8);
    put_le64 (d + 16, offs[i]);
    put_le64 (d + 24, seq);
    memcpy (sec, "data", 4);
    put_le32 (sec + 4, (uint32_t) (seq >> 32));
    memcpy (sec + 8, bufs[i] + 8, 4084);
    put_le32 (sec + 4092, (uint32_t) seq);
  }
  put_le32 (e + 4, crc32c_skip (e, len, 4));
  int r = io_pwrite (s->io, e, len, s->log_off + pos);
  free (e);
  if (r == -1 || io_sync (s->io) == -1) {
    set_error_errno (errno, "%s: write log entry", s->path);
    STORE_RELEASE (&s->poisoned, true);
    return -1;
  }
  s->log_half ^= 1;
  return 0;
}

/* Resilient change tracking: the tracking files of one image, their
 * recovery on open, new epochs, status, enabling and disabling, and the
 * copies VHD Sets make.  The write path, flushes and reference points
 * are in track.c; queries in query.c.
 *
 * What it owns: IMAGE.rct (header copies, L1 summary pages, leaf pages
 * of per-block generation tags) and IMAGE.mrt (the coarse write-ahead
 * map: one bit per leaf page), both through the io layer so the crash
 * simulator covers them.  docs/FORMAT-rct.md gives the layout and the
 * invariants RCT-1..RCT-10 cited below.
 *
 * Locking: attach, detach, new epochs and resizes run with the disk
 * layer's gate closed (L-2): nothing else runs on the state.  Header
 * writes run under the tracking lock (L-8), as does a read-only view's
 * one pass over its L1 pages (rct_ready), which may run while queries
 * of other threads are in progress: it publishes its results with
 * release.  The files are flock()ed (exclusive for a writer, shared for
 * a reader) for the life of the handle (INV-5), so the pages a view
 * reads again later are the ones it read before.
 *
 * Crash behaviour: before any write reaches the image, the MRT bit of
 * every leaf page it touches is durable (RCT-2); tags change in memory
 * and become durable at flush, after which the bits are cleared (RCT-3).
 * Recovery marks every block of a page whose bit is set as changed in
 * the current generation (RCT-4), so a crash over-reports only those
 * pages and never loses a change. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rct.h"
#include "endian.h"

static char *
sidecar (const char *path, const char *ext)
{
  char *p = NULL;
  if (asprintf (&p, "%s%s", path, ext) == -1) return NULL;
  return p;
}

/* ---- header (RCT-1: two copies, sequence numbers, CRC) ---- */

/* Write the copy that is not current with sequence + 1 and flush; then
 * the other the same way, so that both copies hold the new contents: a
 * torn write leaves the previous contents in the other copy, and damage
 * to one copy later never falls back to an older generation counter
 * (which would issue an RCT ID twice).  L-8 held (or the gate closed). */
int
rct_write_header (struct rct *r)
{
  uint8_t b[RCT_HDR_SIZE];
  for (int t = 0; t < 2; t++) {
    int slot = 1 - r->hslot;
    r->h.seq++;
    rct_encode_header (&r->h, b);
    if (io_pwrite (r->io, b, sizeof b, (uint64_t) slot * RCT_HDR_SIZE) == -1 ||
        io_sync (r->io) == -1) {
      set_error_errno (errno, "%s: write tracking header", r->path);
      return -1;
    }
    r->hslot = slot;
  }
  return 0;
}

/* What the image is now (INV-4): its DataWriteGuid, or for a raw image
 * its device, inode, size and times. */
static void
fingerprint (struct image *img, struct rct_header *h)
{
  if (image_data_write_guid (img, h->dwg.b)) {
    h->image_format = VHDKIT_FORMAT_VHDX;
    memset (h->pending_dwg.b, 0, 16);
  }
  else {
    struct io_stat st;
    h->image_format = VHDKIT_FORMAT_RAW;
    if (image_stat (img, &st) == 0) {
      h->st_dev = st.dev;
      h->st_ino = st.ino;
      h->st_size = st.size;
      h->st_mtime_ns = st.mtime_ns;
      h->st_ctime_ns = st.ctime_ns;
    }
  }
}

int
rct_state_error (struct rct *r)
{
  if (r->state == RCT_BUSY)
    set_error (VHDKIT_RC_IN_USE, 0, "%s", r->why);
  else if (r->state == RCT_FAILED)
    set_error (VHDKIT_RC_FAILED, EIO, "%s; reopen the image to recover", r->why);
  else
    set_error (VHDKIT_RC_INVALID_STATE, 0, "%s", r->why);
  return -1;
}

/* ---- geometry and arrays ---- */

void
rct_free_arrays (struct rct *r)
{
  free (r->l1); free (r->l1s); free (r->l1t); free (r->l2); free (r->l1_dirty);
  free (r->mrt); free (r->mrt_want); free (r->recovered);
  free (r->inflight); free (r->touch);
  if (r->dir) {
    for (uint64_t p = 0; p < r->npages; p++) free (r->dir[p]);
    free (r->dir);
  }
  free (r->dirty_list);
  r->l1 = r->l1s = r->l2 = r->inflight = r->touch = NULL;
  r->l1t = NULL;
  r->l1_dirty = r->mrt = r->mrt_want = r->recovered = NULL;
  r->dir = NULL;
  r->dirty_list = NULL;
  r->ndirty_list = r->dirty_cap = 0;
  r->npages_loaded = 0;
}

/* Grow *P from OLD to NEW elements of SIZE bytes, zero-filled.  A new
 * array comes from calloc: the pages of a large one stay the kernel's
 * zero pages until they are written, so a summary of a big disk with
 * few changes costs only what is set in it. */
static int
grow (void *pp, uint64_t old, uint64_t new, size_t size)
{
  void **p = pp;
  void *n;
  if (old == 0) {
    if (!(n = calloc (new ? new : 1, size))) return -1;
    free (*p);
  }
  else {
    if (!(n = realloc (*p, new * size))) return -1;
    memset ((char *) n + old * size, 0, (new - old) * size);
  }
  *p = n;
  return 0;
}

int
rct_size_arrays (struct rct *r, uint64_t size)
{
  uint64_t np = div_round_up (div_round_up (size, r->h.granularity), RCT_PER_PAGE);
  uint64_t nl1 = div_round_up (np, RCT_L1_PER_PAGE);
  uint64_t nm = div_round_up (np, MRT_BITS_PER_PAGE);
  const size_t mb = MRT_BITS_PER_PAGE / 8;
  if (np <= r->npages && r->l2) return 0;
  if (grow (&r->l2, r->nl1, nl1, 4) == -1 || grow (&r->mrt, r->nmrt * mb, nm * mb, 1) == -1)
    goto nomem;
  if (r->writable) {
    if (grow (&r->l1, r->npages, np, 4) == -1 || grow (&r->l1s, r->npages, np, 4) == -1 ||
        grow (&r->l1t, r->npages, np, 2) == -1 || grow (&r->l1_dirty, r->nl1, nl1, 1) == -1 ||
        grow (&r->dir, r->npages, np, sizeof *r->dir) == -1 ||
        grow (&r->inflight, r->npages, np, 4) == -1 || grow (&r->touch, r->npages, np, 4) == -1 ||
        grow (&r->mrt_want, r->nmrt * mb, nm * mb, 1) == -1)
      goto nomem;
  }
  else if (grow (&r->recovered, div_round_up (r->npages, 8), div_round_up (np, 8), 1) == -1)
    goto nomem;
  r->npages = np;
  r->nl1 = nl1;
  r->nmrt = nm;
  return 0;
 nomem:
  set_error_errno (ENOMEM, "%s: tracking state", r->path);
  return -1;
}

static inline void setbit (uint8_t *b, uint64_t i) { b[i / 8] |= (uint8_t) (1u << (i % 8)); }

/* ---- leaf pages ----
 * Pages are read with pread into a buffer of the caller's, never
 * through a mapping: a query reads a few thousand scattered pages once,
 * and on a virtualised kernel a page fault (and the unmapping after)
 * costs more than a system call. */

/* Read leaf page P into TAGS from the file.  A damaged page, or a
 * missing one whose summary (NEWEST) says it has tags, counts as all
 * changed now: the conservative answer (RCT-6).  Returns 1 then. */
int
rct_load_leaf (struct rct *r, uint64_t p, uint32_t newest, uint32_t *tags)
{
  uint8_t *b = (uint8_t *) tags;
  ssize_t n = io_pread (r->io, b, RCT_PAGE, r->leaf_off + p * RCT_PAGE);
  if (n < 0) {
    set_error_errno (errno, "%s: read tracking page %" PRIu64, r->path, p);
    return -1;
  }
  memset (b + n, 0, RCT_PAGE - (size_t) n);
  int c = rct_check_page (b, RCT_LEAF_MAGIC, p, rct_epoch_tag (&r->h.epoch));
  if (c == 0) {
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    for (int k = 0; k < RCT_PER_PAGE; k++) tags[k] = get_le32 (b + 4 * k);
#endif
    return 0;
  }
  if (c == 1 && newest == 0) {
    memset (tags, 0, RCT_PER_PAGE * 4);
    return 0;
  }
  uint32_t cur = LOAD_ACQUIRE (&r->cur);
  for (int k = 0; k < RCT_PER_PAGE; k++) tags[k] = cur;
  return 1;
}

void
rct_summarize (const uint32_t *tags, uint32_t *max, uint32_t *second, uint16_t *top)
{
  uint32_t m = 0, s = 0;
  unsigned t = 0;
  for (unsigned k = 0; k < RCT_PER_PAGE; k++) {
    uint32_t g = RCT_GEN (tags[k]);
    if (g > m) { s = m; m = g; t = k; }
    else if (g > s) s = g;
  }
  *max = m;
  *second = s;
  *top = (uint16_t) (t | (tags[t] & RCT_ZERO_KIND ? RCT_TOP_ZERO : 0));
}

/* ---- L1 summary pages ---- */

int
rct_l1_cursor_init (struct rct *r, struct rct_l1_cursor *c)
{
  memset (c, 0, offsetof (struct rct_l1_cursor, sums));
  c->j = UINT64_MAX;
  if (!(c->buf = malloc (RCT_L1_BATCH * RCT_PAGE))) {
    set_error_errno (ENOMEM, "%s: tracking summary", r->path);
    return -1;
  }
  return 0;
}

void
rct_l1_cursor_free (struct rct_l1_cursor *c)
{
  free (c->buf);
  c->buf = NULL;
}

/* The bytes of L1 page J in *OUT, read with the pages after it in the
 * same batch.  A batch wholly inside a hole of the file is not read: its
 * pages are zeros (never written), as a read would give, and *OUT is
 * NULL for them. */
static int
l1_page (struct rct *r, struct rct_l1_cursor *c, uint64_t j, const uint8_t **out)
{
  if (j < c->first || j >= c->first + c->count) {
    uint64_t first = j - j % RCT_L1_BATCH;
    uint64_t count = r->nl1 - first < RCT_L1_BATCH ? r->nl1 - first : RCT_L1_BATCH;
    uint64_t at = RCT_L1_OFF + first * RCT_PAGE, len = count * RCT_PAGE;
    c->count = 0;
    if (at < c->probe || at >= c->hole) {
      c->probe = at;
      if (io_next_data (r->io, at, &c->data, &c->hole) == -1) {
        if (errno == ENXIO)
          c->data = c->hole = UINT64_MAX;     /* only a hole after AT */
        else {
          c->data = at;                       /* cannot tell: read it all */
          c->hole = UINT64_MAX;
        }
      }
    }
    c->zeros = at + len <= c->data;
    if (!c->zeros) {
      ssize_t n = io_pread (r->io, c->buf, len, at);
      if (n < 0) {
        set_error_errno (errno, "%s: read tracking summary page %" PRIu64, r->path, first);
        return -1;
      }
      memset (c->buf + n, 0, len - (size_t) n);
    }
    c->first = first;
    c->count = count;
  }
  *out = c->zeros ? NULL : c->buf + (j - c->first) * RCT_PAGE;
  return 0;
}

/* Summary entry K of an L1 page (RCT-9): newest, newest of the others,
 * top block. */
static void
l1_get (const uint8_t *b, unsigned k, uint32_t *max, uint32_t *second, uint16_t *top)
{
  *max = get_le32 (b + RCT_L1_ENTRY * k);
  *second = get_le32 (b + RCT_L1_ENTRY * k + 4);
  *top = get_le16 (b + RCT_L1_ENTRY * k + 8);
}

int
rct_l1_read (struct rct *r, struct rct_l1_cursor *c, uint64_t j)
{
  if (c->j == j) return 0;
  const uint8_t *b;
  if (l1_page (r, c, j, &b) == -1) return -1;
  int st = b ? rct_check_page (b, RCT_L1_MAGIC, j, rct_epoch_tag (&r->h.epoch)) : 1;
  /* A damaged or lost summary page is rebuilt from its leaves (a
   * damaged leaf counts as all changed now); so is an entry holding
   * values a writer never produces. */
  bool lost = st == -1 || (st == 1 && j < r->h.max_l1);
  uint32_t *tags = NULL;
  uint64_t first = j * RCT_L1_PER_PAGE;
  c->j = UINT64_MAX;
  c->newest = 0;
  if (!lost && st != 0) {
    /* Never written: no tags under it. */
    memset (&c->sums, 0, sizeof c->sums);
    c->j = j;
    return 0;
  }
  for (unsigned k = 0; k < RCT_L1_PER_PAGE; k++) {
    uint32_t max = 0, second = 0;
    uint16_t top = 0;
    bool rebuild = lost;
    if (first + k >= r->npages) rebuild = false;
    else if (st == 0) {
      l1_get (b, k, &max, &second, &top);
      rebuild = max > r->h.cur || second > max || (top & ~RCT_TOP_ZERO) >= RCT_PER_PAGE;
    }
    if (rebuild) {
      if (!tags && !(tags = malloc (RCT_PAGE))) {
        set_error_errno (ENOMEM, "%s: tracking summary", r->path);
        return -1;
      }
      if (rct_load_leaf (r, first + k, 0, tags) == -1) { free (tags); return -1; }
      rct_summarize (tags, &max, &second, &top);
      c->rebuilt = true;
    }
    c->sums.max[k] = max;
    c->sums.second[k] = second;
    c->sums.top[k] = top;
    if (max > c->newest) c->newest = max;
  }
  free (tags);
  c->j = j;
  return 0;
}

/* ---- loading ---- */

/* Every L1 page, in order: a writer keeps the summaries (and rewrites a
 * rebuilt page at its next flush); both count the pages with tags and
 * compute l2. */
static int
scan_l1 (struct rct *r)
{
  struct rct_l1_cursor c;
  if (rct_l1_cursor_init (r, &c) == -1) return -1;
  uint64_t with_tags = 0;
  for (uint64_t j = 0; j < r->nl1; j++) {
    c.rebuilt = false;
    if (rct_l1_read (r, &c, j) == -1) { rct_l1_cursor_free (&c); return -1; }
    uint64_t first = j * RCT_L1_PER_PAGE;
    uint32_t l2 = 0;
    for (uint64_t k = 0; k < RCT_L1_PER_PAGE && first + k < r->npages; k++) {
      uint32_t max = c.sums.max[k];
      if (max > l2) l2 = max;
      if (max) with_tags++;
      /* The arrays are new and zero: only what is set is written. */
      if (r->writable && (max || c.sums.second[k] || c.sums.top[k])) {
        r->l1[first + k] = max;
        r->l1s[first + k] = c.sums.second[k];
        r->l1t[first + k] = c.sums.top[k];
      }
    }
    r->l2[j] = l2;
    if (r->writable && c.rebuilt) r->l1_dirty[j] = 1;
  }
  rct_l1_cursor_free (&c);
  r->leaves_with_tags = with_tags;
  return 0;
}

/* RCT-6: fewer pages with tags than were durably written means pages
 * (and their summary) were lost: zeroed pages would read as never
 * written.  True then, with the sentence in WHY.  After scan_l1. */
static bool
lost_pages (struct rct *r, char *why, size_t n)
{
  if (r->h.leaves_span != r->npages || r->leaves_with_tags >= r->h.leaves_written) return false;
  snprintf (why, n, "the tracking file %s has lost pages of tags (%" PRIu64 " of %" PRIu64 " remain)",
            r->path, r->leaves_with_tags, r->h.leaves_written);
  return true;
}

/* The write-ahead map of the session that did not close cleanly
 * (RCT-10).  Returns 1 if it belongs to that session (its bits are
 * loaded: a damaged or missing bit page counts as all set), 0 if it
 * does not (the caller treats the epoch as unrecoverable), -1 on a read
 * error. */
static int
load_mrt (struct rct *r)
{
  uint8_t b[RCT_PAGE];
  uint64_t nbits;
  ssize_t n = r->mio ? io_pread (r->mio, b, sizeof b, 0) : 0;
  if (n < 0) { set_error_errno (errno, "%s: read", r->mrt_path); return -1; }
  if (n != (ssize_t) sizeof b ||
      rct_decode_mrt_header (b, &r->h.epoch, &r->h.session, &nbits) == -1)
    return 0;
  uint32_t tag = rct_session_tag (&r->h.epoch, &r->h.session);
  for (uint64_t j = 0; j < r->nmrt; j++) {
    uint8_t *bits = r->mrt + j * (MRT_BITS_PER_PAGE / 8);
    /* Bit pages the session never had: the disk grew after its last
     * write-ahead record, so nothing was written there (RCT-8 reports
     * the grown area). */
    if (j >= nbits) { memset (bits, 0, MRT_BITS_PER_PAGE / 8); continue; }
    n = io_pread (r->mio, b, sizeof b, (j + 1) * RCT_PAGE);
    if (n < 0) { set_error_errno (errno, "%s: read", r->mrt_path); return -1; }
    memset (b + n, 0, sizeof b - (size_t) n);
    if (rct_check_page (b, RCT_MRT_MAGIC, j + 1, tag) == 0)
      memcpy (bits, b, MRT_BITS_PER_PAGE / 8);
    else
      memset (bits, 0xff, MRT_BITS_PER_PAGE / 8);   /* damaged or lost: assume all */
  }
  return 1;
}

/* ---- new epochs (RCT-7) ---- */

static void
reset_reason (struct rct *r, const char *why)
{
  snprintf (r->why, sizeof r->why, "%s", why);
}

/* Start a new epoch in place: new GUID, generation 1, no tags, no
 * write-ahead bits.  The old tags are cut off by truncation.  Gate
 * closed.  A failure half way leaves files the next open treats as
 * damaged (RCT-6), and this handle refusing writes. */
static int
new_epoch (struct rct *r, const char *why)
{
  uint64_t size = LOAD_RELAXED (&r->img->size);
  struct rct_header h = { 0 };
  h.seq = r->h.seq;
  h.granularity = r->h.granularity;
  if (!h.granularity || h.granularity < r->lss)
    h.granularity = r->lss > VHDKIT_RCT_DEFAULT_GRANULARITY ? r->lss : VHDKIT_RCT_DEFAULT_GRANULARITY;
  if (guid_generate (&h.epoch) == -1) {
    set_error_errno (errno, "%s: random GUID", r->path);
    return -1;
  }
  h.cur = 1;
  h.nsizes = 1;
  h.sizes[0].gen = 1;
  h.sizes[0].min = h.sizes[0].last = size;
  snprintf (h.reason, sizeof h.reason, "%s", why);
  r->h = h;
  STORE_RELEASE (&r->cur, 1);
  fingerprint (r->img, &r->h);
  /* The next change begins a session of the new epoch (RCT-10). */
  r->session_marked = false;
  r->hdr_dirty = false;
  rct_free_arrays (r);
  r->npages = r->nl1 = r->nmrt = 0;
  r->leaf_off = round_up (RCT_L1_OFF + rct_l1_pages (r->h.granularity) * RCT_PAGE, MiB);
  r->leaves_with_tags = 0;
  if (io_truncate (r->io, 2 * RCT_HDR_SIZE) == -1 || io_truncate (r->mio, 0) == -1 ||
      io_sync (r->mio) == -1) {
    set_error_errno (errno, "%s: reset tracking state", r->path);
    goto failed;
  }
  if (rct_write_header (r) == -1 || rct_size_arrays (r, size) == -1) goto failed;
  reset_reason (r, why);
  return 0;
 failed:
  r->state = RCT_FAILED;
  snprintf (r->why, sizeof r->why, "%s: starting a new tracking epoch failed half way: %s",
            r->path, error_message ());
  return -1;
}

int
rct_new_epoch (struct rct *r, const char *why)
{
  return new_epoch (r, why);
}

/* ---- attach / detach ---- */

static void
release (struct rct *r)
{
  if (!r) return;
  if (r->io) io_close (r->io);
  if (r->mio) io_close (r->mio);
  rct_free_arrays (r);
  pthread_mutex_destroy (&r->lock);
  pthread_mutex_destroy (&r->mrt_lock);
  pthread_mutex_destroy (&r->carry_lock);
  free (r->carry);
  pthread_mutex_destroy (&r->dirty_lock);
  for (int i = 0; i < RCT_STRIPES; i++) pthread_mutex_destroy (&r->stripe[i]);
  free (r->path);
  free (r->mrt_path);
  free (r);
}

void
rct_abandon (struct rct *r)
{
  release (r);
}

/* A read-only view that cannot answer (RCT_INVALID) or a busy one. */
static int
degrade (struct rct *r, enum rct_state st, const char *why)
{
  r->state = st;
  reset_reason (r, why);
  return 0;
}

int
rct_ready (struct rct *r)
{
  if (r->writable || LOAD_ACQUIRE (&r->checked)) return 0;
  /* L-8: one pass per view; a second caller waits for it. */
  LOCK_FOR_SCOPE (&r->lock);
  if (r->checked) return 0;
  if (r->l1_due) {
    char why[400];
    if (scan_l1 (r) == -1) return -1;
    /* Queries in flight read the state lock-free, and the sentence once
     * the state is not RCT_OK: a view already invalid keeps its own;
     * otherwise the sentence first, then the state (release). */
    if (lost_pages (r, why, sizeof why) && r->state == RCT_OK) {
      reset_reason (r, why);
      STORE_RELEASE (&r->state, RCT_INVALID);
    }
  }
  STORE_RELEASE (&r->checked, true);
  return 0;
}

/* A raw image is unchanged if its size and modification time are: a
 * move (INV-6) changes ctime and, across filesystems, the inode, so those
 * are recorded but not compared. */
static bool
raw_matches (const struct rct_header *h, struct image *img)
{
  struct io_stat st;
  if (image_stat (img, &st) == -1) return false;
  return h->st_size == st.size && h->st_mtime_ns == st.mtime_ns;
}

static int
attach_files (struct rct *r)
{
  char why[400];
  struct image *img = r->img;
  uint64_t size = LOAD_RELAXED (&img->size);
  /* Header: the valid copy with the higher sequence number. */
  uint8_t b[RCT_HDR_SIZE];
  struct rct_header h[2];
  bool ok[2] = { false, false };
  uint32_t version = 0;
  for (int i = 0; i < 2; i++) {
    ssize_t n = io_pread (r->io, b, sizeof b, (uint64_t) i * RCT_HDR_SIZE);
    if (n < 0) { set_error_errno (errno, "%s: read", r->path); return -1; }
    ok[i] = n == (ssize_t) sizeof b && rct_decode_header (b, &h[i]) == 0;
    if (n == (ssize_t) sizeof b && rct_header_version (b) != RCT_VERSION) version = rct_header_version (b);
  }
  bool damaged = !ok[0] && !ok[1];
  if (!damaged) {
    r->hslot = ok[0] && ok[1] ? (h[1].seq > h[0].seq) : ok[1];
    r->h = h[r->hslot];
    STORE_RELEASE (&r->cur, r->h.cur);
  }
  uint64_t fsize = 0;
  io_get_size (r->io, &fsize);
  if (damaged && version > 0 && version < RCT_VERSION)
    snprintf (why, sizeof why, "the tracking file %s has format version %" PRIu32 ", which this vhdkit replaces with version %d",
              r->path, version, RCT_VERSION);
  else if (damaged)
    snprintf (why, sizeof why, "the tracking file %s is damaged (no valid header)", r->path);
  else if (r->h.granularity < r->lss) {
    damaged = true;
    snprintf (why, sizeof why, "the tracking file %s has granularity %" PRIu32 " below the sector size", r->path, r->h.granularity);
  }
  else {
    r->leaf_off = round_up (RCT_L1_OFF + rct_l1_pages (r->h.granularity) * RCT_PAGE, MiB);
    if ((r->h.max_leaf && fsize < r->leaf_off + r->h.max_leaf * RCT_PAGE) ||
        (r->h.max_l1 && fsize < RCT_L1_OFF + r->h.max_l1 * RCT_PAGE)) {
      damaged = true;
      snprintf (why, sizeof why, "the tracking file %s has been truncated", r->path);
    }
  }
  /* The write-ahead map. */
  r->mio = io_open (r->mrt_path, r->writable ? O_RDWR : O_RDONLY, 0);
  if (!r->mio && errno != ENOENT) {
    set_error_errno (errno, "%s: open", r->mrt_path);
    return -1;
  }
  if (!damaged && !r->mio && r->h.session_dirty) {
    damaged = true;
    snprintf (why, sizeof why, "the write-ahead map %s is missing after an unclean close", r->mrt_path);
  }
  /* A writer needs the map (after a clean close it may be gone: only
   * its absence after an unclean close is damage). */
  if (!r->mio && r->writable &&
      !(r->mio = io_open (r->mrt_path, O_RDWR | O_CREAT, 0666))) {
    set_error_errno (errno, "%s: create", r->mrt_path);
    return -1;
  }
  if (!damaged && rct_size_arrays (r, size) == -1) return -1;
  /* RCT-10: after an unclean close the map must be the one that
   * session wrote; a map that is empty, cut short, zeroed, damaged in
   * its header, or another image's or another session's cannot say
   * which writes were in flight. */
  if (!damaged && r->h.session_dirty) {
    int m = load_mrt (r);
    if (m == -1) return -1;
    if (m == 0) {
      damaged = true;
      snprintf (why, sizeof why, "the write-ahead map %s does not belong to the writing session that did not close cleanly "
                "(it is empty, cut short, damaged, or another image's or session's copy)", r->mrt_path);
    }
  }
  if (damaged) {
    if (!r->writable) return degrade (r, RCT_INVALID, why);
    return new_epoch (r, why);
  }
  /* A writer needs every summary in memory; a read-only view reads
   * the L1 pages when a call first needs them (rct_ready). */
  if (!r->writable)
    r->l1_due = true;
  else {
    if (scan_l1 (r) == -1) return -1;
    if (lost_pages (r, why, sizeof why)) return new_epoch (r, why);
  }

  /* INV-4: was the image changed by software that does not track? */
  bool foreign = false;
  uint8_t now_b[16];
  if (image_data_write_guid (img, now_b)) {
    struct guid now;
    memcpy (now.b, now_b, 16);
    if (guid_eq (&now, &r->h.dwg)) ;
    else if (!guid_is_zero (&r->h.pending_dwg) && guid_eq (&now, &r->h.pending_dwg)) {
      r->h.dwg = now;       /* our own session's change (RCT-5) */
    }
    else {
      char a[40], e[40];
      guid_to_text (&now, a);
      guid_to_text (&r->h.dwg, e);
      foreign = true;
      snprintf (why, sizeof why, "%s was changed by software that does not track changes (its DataWriteGuid is {%s}, tracking recorded {%s})",
                r->image_path, a, e);
    }
  }
  else if (!raw_matches (&r->h, img) && !r->h.session_dirty) {
    foreign = true;
    snprintf (why, sizeof why, "%s was changed by software that does not track changes (its size or modification time differs from what tracking recorded)",
              r->image_path);
  }
  if (foreign) {
    if (!r->writable) return degrade (r, RCT_INVALID, why);
    return new_epoch (r, why);
  }

  /* RCT-4: recovery from the write-ahead map. */
  bool any = false;
  if (r->h.session_dirty)
    for (uint64_t p = 0; p < r->npages && !any; p++)
      any = rct_mrt_get (r, p);
  if (any) {
    for (uint64_t p = 0; p < r->npages; p++) {
      if (!rct_mrt_get (r, p)) continue;
      if (r->writable) {
        if (rct_recover_page (r, p) == -1) return -1;
      }
      else {
        setbit (r->recovered, p);
        r->any_recovered = true;
      }
    }
    snprintf (r->why, sizeof r->why, "recovered after an unclean close");
    if (r->writable && rct_flush_locked (r, true) == -1) return -1;
  }
  /* A writer that recovered holds every tag durably and no bit: the
   * files describe the image as a clean close would (RCT-10), so the
   * next session's map may replace this one. */
  if (r->writable && r->h.session_dirty) {
    r->h.session_dirty = 0;
    fingerprint (img, &r->h);
    if (rct_write_header (r) == -1) return -1;
  }
  /* Bits of a clean state are all clear (a reader's recovery view is
   * kept in RECOVERED). */
  if (r->writable) memset (r->mrt, 0, r->nmrt * (MRT_BITS_PER_PAGE / 8));
  return 0;
}

static struct rct *
rct_new (struct image *img, bool writable, char *path)
{
  struct rct *r = calloc (1, sizeof *r);
  if (!r) return NULL;
  r->img = img;
  r->image_path = img->path;
  r->path = path;
  r->mrt_path = sidecar (img->path, ".mrt");
  r->writable = writable;
  r->lss = img->lss;
  r->state = RCT_OK;
  pthread_mutex_init (&r->lock, NULL);
  pthread_mutex_init (&r->mrt_lock, NULL);
  pthread_mutex_init (&r->carry_lock, NULL);
  pthread_mutex_init (&r->dirty_lock, NULL);
  for (int i = 0; i < RCT_STRIPES; i++) pthread_mutex_init (&r->stripe[i], NULL);
  if (!r->mrt_path) { r->path = NULL; release (r); return NULL; }
  return r;
}

int
rct_attach (struct image *img, bool writable, struct rct **out)
{
  *out = NULL;
  char *path = sidecar (img->path, ".rct");
  if (!path) { set_error_errno (ENOMEM, "%s", img->path); return -1; }
  if (access (path, F_OK) == -1) { free (path); return 0; }
  struct rct *r = rct_new (img, writable, path);
  if (!r) { free (path); set_error_errno (ENOMEM, "%s", img->path); return -1; }
  r->io = io_open (path, writable ? O_RDWR : O_RDONLY, 0);
  if (!r->io) {
    set_error_errno (errno, "%s: open", path);
    goto fail;
  }
  if (io_lock (r->io, writable) == -1) {
    if (errno != EWOULDBLOCK) { set_error_errno (errno, "%s: lock", path); goto fail; }
    if (writable) {
      set_error (VHDKIT_RC_IN_USE, 0, "%s: the tracking files are held by another writer", path);
      goto fail;
    }
    char why[300];
    snprintf (why, sizeof why, "%s is open for writing by another process; ask that process, or retry when it closes", img->path);
    degrade (r, RCT_BUSY, why);
    *out = r;
    return 0;
  }
  if (attach_files (r) == -1) goto fail;
  *out = r;
  return 0;
 fail:
  error_prefix ("change tracking");
  release (r);
  return -1;
}

int
rct_detach (struct rct *r)
{
  if (!r) return 0;
  int ret = 0;
  if (r->writable && r->state == RCT_OK) {
    /* The image's identity first: asking the driver takes its locks,
     * which come before the tracking lock (L-5 before L-8). */
    struct rct_header fp = { 0 };
    fingerprint (r->img, &fp);
    pthread_mutex_lock (&r->lock);
    if (rct_flush_locked (r, true) == -1) ret = -1;
    else if (r->session_marked || r->h.session_dirty) {
      /* Clean close: record the image as it is now. */
      r->h.session_dirty = 0;
      r->h.image_format = fp.image_format;
      r->h.dwg = fp.dwg;
      r->h.pending_dwg = fp.pending_dwg;
      r->h.st_dev = fp.st_dev; r->h.st_ino = fp.st_ino; r->h.st_size = fp.st_size;
      r->h.st_mtime_ns = fp.st_mtime_ns; r->h.st_ctime_ns = fp.st_ctime_ns;
      if (rct_write_header (r) == -1) ret = -1;
    }
    pthread_mutex_unlock (&r->lock);
  }
  release (r);
  return ret;
}

/* ---- size history (RCT-8) ---- */

uint64_t
rct_min_size_since (const struct rct *r, uint32_t gen)
{
  /* The size when GEN was sealed, then the smallest size of every later
   * generation. */
  uint64_t m = UINT64_MAX, at = r->h.sizes[0].last;
  for (uint32_t i = 0; i < r->h.nsizes; i++) {
    if (r->h.sizes[i].gen <= gen) at = r->h.sizes[i].last;
    else if (r->h.sizes[i].min < m) m = r->h.sizes[i].min;
  }
  return at < m ? at : m;
}

int
rct_resize_prepare (struct rct *r, uint64_t old_size, uint64_t new_size)
{
  if (!r) return 0;
  if (r->state != RCT_OK) return r->state == RCT_FAILED ? rct_state_error (r) : 0;
  LOCK_FOR_SCOPE (&r->lock);
  if (rct_session_begin_locked (r) == -1) return -1;
  struct rct_header *h = &r->h;
  /* Per generation: the smallest size it passed through and its last. */
  struct rct_size *last = &h->sizes[h->nsizes - 1];
  if (last->gen == h->cur) {
    if (new_size < last->min) last->min = new_size;
    last->last = new_size;
  }
  else
    h->sizes[h->nsizes++] = (struct rct_size) { h->cur,
      new_size < old_size ? new_size : old_size, new_size };
  if (h->nsizes >= RCT_SIZE_HISTORY) {
    /* Out of room: start over (documented in FORMAT-rct.md). */
    if (rct_flush_locked (r, true) == -1) return -1;
    return new_epoch (r, "the disk was resized more often than tracking can record");
  }
  return rct_write_header (r);
}

int
rct_resized (struct rct *r, uint64_t new_size)
{
  if (!r || r->state != RCT_OK) return 0;
  uint64_t old_nmrt = r->nmrt;
  if (rct_size_arrays (r, new_size) == -1) return -1;
  /* The grown disk's bit pages join the session's map before any write
   * can reach the new area (RCT-10). */
  if (r->session_marked && r->nmrt > old_nmrt) {
    LOCK_FOR_SCOPE (&r->lock);
    return rct_mrt_put_session (r, old_nmrt);
  }
  return 0;
}

/* ---- IDs ---- */

void
rct_format_id (const struct guid *epoch, uint32_t gen, char *out)
{
  char t[40];
  guid_to_text (epoch, t);
  for (char *c = t; *c; c++) if (*c == '-') *c = ':';
  snprintf (out, VHDKIT_RCT_ID_MAX, "rctX:%s:%08" PRIx32, t, gen);
}

int
rct_parse_id (const char *id, struct guid *epoch, uint32_t *gen)
{
  if (strncmp (id, "rctX:", 5) != 0 || strlen (id) != 5 + 36 + 1 + 8 || id[41] != ':')
    return -1;
  char t[37];
  memcpy (t, id + 5, 36);
  t[36] = '\0';
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (t[i] != ':') return -1;
      t[i] = '-';
    }
  }
  if (guid_from_text (epoch, t) == -1) return -1;
  uint32_t g = 0;
  for (int i = 42; i < 50; i++) {
    char c = id[i];
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
      c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (v < 0) return -1;
    g = g << 4 | (uint32_t) v;
  }
  *gen = g;
  return 0;
}

void
rct_current (struct rct *r, struct guid *epoch, uint32_t *cur, uint32_t *granularity)
{
  LOCK_FOR_SCOPE (&r->lock);
  if (epoch) *epoch = r->h.epoch;
  if (cur) *cur = r->h.cur;
  if (granularity) *granularity = r->h.granularity;
}

/* ---- enable, disable, status ---- */

static int
fsync_dir_of (const char *path)
{
  return io_sync_parent_dir (path);
}

int
rct_enable (struct image *img, uint32_t g, struct rct **out)
{
  if (g == 0) g = VHDKIT_RCT_DEFAULT_GRANULARITY;
  if (!is_pow2 (g) || g < img->lss || g > VHDKIT_RCT_MAX_GRANULARITY) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: tracking granularity %" PRIu32
               " must be a power of two from the sector size %" PRIu32 " to 2 MiB", img->path, g, img->lss);
    return -1;
  }
  char *path = sidecar (img->path, ".rct"), *mpath = sidecar (img->path, ".mrt");
  struct rct *tmp = NULL;
  int ret = -1;
  if (!path || !mpath) { set_error_errno (ENOMEM, "%s", img->path); goto out; }
  /* Leftovers of an earlier, disabled or broken tracking go. */
  unlink (mpath);
  char *tpath = strdup (path);
  if (!tpath || !(tmp = rct_new (img, true, tpath))) {
    free (tpath);
    set_error_errno (ENOMEM, "%s", img->path);
    goto out;
  }
  tmp->io = io_open (path, O_RDWR | O_CREAT | O_EXCL, 0666);
  if (!tmp->io) {
    if (errno == EEXIST)
      set_error (VHDKIT_RC_INVALID_STATE, 0, "%s: %s exists but could not be used; disable tracking first", img->path, path);
    else
      set_error_errno (errno, "%s: create", path);
    goto out;
  }
  tmp->mio = io_open (mpath, O_RDWR | O_CREAT | O_TRUNC, 0666);
  if (!tmp->mio) { set_error_errno (errno, "%s: create", mpath); goto out; }
  tmp->h.granularity = g;
  if (new_epoch (tmp, "") == -1) goto out;
  if (io_sync (tmp->mio) == -1 || fsync_dir_of (path) == -1) {
    set_error_errno (errno, "%s: flush", path);
    goto out;
  }
  release (tmp);
  tmp = NULL;
  ret = rct_attach (img, true, out);
 out:
  if (tmp) release (tmp);
  if (ret == -1 && path) { unlink (path); unlink (mpath); }
  free (path);
  free (mpath);
  return ret;
}

int
rct_disable (struct rct *r, const char *image_path)
{
  char *path = sidecar (image_path, ".rct"), *mpath = sidecar (image_path, ".mrt");
  if (!path || !mpath) { free (path); free (mpath); set_error_errno (ENOMEM, "%s", image_path); return -1; }
  if (!r && access (path, F_OK) == -1) {
    free (path); free (mpath);
    set_error (VHDKIT_RC_INVALID_STATE, 0, "%s: change tracking is not enabled", image_path);
    return -1;
  }
  if (r) release (r);
  int ret = 0;
  if ((unlink (path) == -1 && errno != ENOENT) || (unlink (mpath) == -1 && errno != ENOENT)) {
    set_error_errno (errno, "%s: remove tracking files", image_path);
    ret = -1;
  }
  else
    fsync_dir_of (path);
  free (path); free (mpath);
  return ret;
}

int
rct_get_status (struct rct *r, struct vhdkit_rct_status *st)
{
  if (rct_ready (r) == -1) return -1;
  if (r->state == RCT_BUSY) return rct_state_error (r);
  st->enabled = true;
  if (r->state == RCT_INVALID || r->state == RCT_FAILED) {
    /* What the files say, with the reason they cannot be trusted. */
    snprintf (st->problem, sizeof st->problem, "%s; every reference point is invalid and a full backup is needed", r->why);
  }
  LOCK_FOR_SCOPE (&r->lock);
  st->granularity = r->h.granularity;
  st->generation = r->h.cur;
  char t[40];
  guid_to_text (&r->h.epoch, t);
  snprintf (st->epoch, sizeof st->epoch, "%s", t);
  if (r->h.cur > 1) rct_format_id (&r->h.epoch, r->h.cur - 1, st->most_recent_id);
  for (uint64_t j = 0; j < r->nl1 && !st->newer_changes; j++)
    st->newer_changes = LOAD_RELAXED (&r->l2[j]) >= r->h.cur;
  st->newer_changes |= r->any_recovered && r->state == RCT_OK;
  for (uint32_t i = 0; i < r->h.nsizes; i++)
    st->newer_changes |= r->h.sizes[i].gen >= r->h.cur && r->h.cur > 1;
  st->recovered = r->state == RCT_OK && r->why[0] != '\0';
  return 0;
}

/* ---- copies for VHD Sets ----
 * The tracking state of SRC_IMAGE, closed cleanly, becomes that of
 * DST_IMAGE (a new differencing child with the same content): the same
 * epoch, tags and generations, the child's DataWriteGuid.  Written
 * under a temporary name, flushed, renamed into place. */
int
rct_clone_files (const char *src_image, const char *dst_image, const uint8_t dwg[16])
{
  int r = -1;
  char *src = sidecar (src_image, ".rct"), *dst = sidecar (dst_image, ".rct");
  char *dmrt = sidecar (dst_image, ".mrt"), *tmp = NULL;
  struct io *in = NULL, *out = NULL, *mo = NULL;
  uint8_t *buf = NULL;
  if (!src || !dst || !dmrt || asprintf (&tmp, "%s.tmp", dst) == -1) {
    tmp = NULL;
    set_error_errno (ENOMEM, "%s", dst_image);
    goto out;
  }
  if (!(in = io_open (src, O_RDONLY, 0))) { set_error_errno (errno, "%s: open", src); goto out; }
  struct rct_header h[2];
  bool ok[2];
  uint8_t hb[RCT_HDR_SIZE];
  for (int i = 0; i < 2; i++) {
    ok[i] = io_pread (in, hb, sizeof hb, (uint64_t) i * RCT_HDR_SIZE) == (ssize_t) sizeof hb &&
            rct_decode_header (hb, &h[i]) == 0;
  }
  if (!ok[0] && !ok[1]) {
    set_error (VHDKIT_RC_INVALID_STATE, 0, "%s: the tracking file has no valid header", src);
    goto out;
  }
  struct rct_header nh = h[ok[0] && ok[1] ? (h[1].seq > h[0].seq) : ok[1]];
  if (nh.session_dirty) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: internal error: tracking copied before a clean close", src);
    goto out;
  }
  unlink (tmp);
  if (!(out = io_open (tmp, O_RDWR | O_CREAT | O_EXCL, 0666))) { set_error_errno (errno, "%s: create", tmp); goto out; }
  uint64_t size;
  if (io_get_size (in, &size) == -1) { set_error_errno (errno, "%s", src); goto out; }
  if (!(buf = malloc (MiB))) { set_error_errno (ENOMEM, "%s", dst); goto out; }
  /* Only the data parts: the file is sparse. */
  for (uint64_t pos = RCT_HDR_SIZE * 2; pos < size; ) {
    uint64_t d0, h0;
    if (io_next_data (in, pos, &d0, &h0) == -1) break;   /* ENXIO: only a hole left */
    if (h0 > size) h0 = size;
    for (uint64_t o = d0; o < h0; ) {
      size_t n = h0 - o < MiB ? (size_t) (h0 - o) : MiB;
      if (io_pread_full (in, buf, n, o) == -1 || io_pwrite (out, buf, n, o) == -1) {
        set_error_errno (errno, "%s: copy tracking data", dst);
        goto out;
      }
      o += n;
    }
    pos = h0;
  }
  if (io_truncate (out, size) == -1) { set_error_errno (errno, "%s", tmp); goto out; }
  memcpy (nh.dwg.b, dwg, 16);
  memset (nh.pending_dwg.b, 0, 16);
  nh.image_format = VHDKIT_FORMAT_VHDX;
  nh.st_dev = nh.st_ino = nh.st_size = nh.st_mtime_ns = nh.st_ctime_ns = 0;
  for (int i = 0; i < 2; i++) {
    nh.seq++;
    rct_encode_header (&nh, hb);
    if (io_pwrite (out, hb, sizeof hb, (uint64_t) i * RCT_HDR_SIZE) == -1) {
      set_error_errno (errno, "%s: write", tmp);
      goto out;
    }
  }
  if (io_sync (out) == -1) { set_error_errno (errno, "%s: flush", tmp); goto out; }
  /* An empty write-ahead map: the copy was closed cleanly. */
  if (!(mo = io_open (dmrt, O_RDWR | O_CREAT | O_TRUNC, 0666)) || io_sync (mo) == -1) {
    set_error_errno (errno, "%s", dmrt);
    goto out;
  }
  if (rename (tmp, dst) == -1) { set_error_errno (errno, "%s: rename", dst); goto out; }
  r = 0;
 out:
  if (in) io_close (in);
  if (out) io_close (out);
  if (mo) io_close (mo);
  if (r == -1 && tmp) unlink (tmp);
  free (buf); free (src); free (dst); free (dmrt); free (tmp);
  return r;
}

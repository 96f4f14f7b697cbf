/* Change tracking while the disk is written: the write path, the
 * write-ahead map, flushes and reference points, for many threads on
 * one handle at once.
 *
 * What it owns: the in-memory leaf pages and summaries of a writer, the
 * write-ahead map's bits, and the order in which they reach IMAGE.rct
 * and IMAGE.mrt (docs/FORMAT-rct.md RCT-2, RCT-3, RCT-9, RCT-10).
 *
 * Locking: the rules L-8..L-11 of docs/ARCHITECTURE.md, summed up in
 * struct rct (rct.h).  In short: a write takes a stripe lock per leaf
 * page for memory work, and the map's lock only when a bit must become
 * durable; a flush takes the tracking lock across its writes, and the
 * map's lock to clear bits; a reference point takes the tracking lock
 * to advance the generation.
 *
 * L-11, writes in flight: every write counts itself in inflight[p] of
 * each leaf page it touches from before its bit is checked until after
 * its last tag, then records in touch[p] (atomic max) the flush sequence
 * it saw last.  A flush clears the bit of page p only if no write is in
 * flight there and touch[p] is older than the flush before it (so every
 * tag of every finished write there is in the pages that flush and this
 * one wrote).  Clearing and counting meet as in Dekker's algorithm:
 * clear the bit, then look at inflight; count, then look at the bit
 * (sequentially consistent): one of the two sees the other.
 *
 * Reference points (vhdkit.h): a write tags its blocks with the
 * generation it sees at its start and, if a reference point advanced
 * the generation meanwhile, again with the newer one at its end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rct.h"
#include "endian.h"

#define SEQ __ATOMIC_SEQ_CST

/* ---- bits ---- */

static inline uint8_t *
mrt_byte (uint8_t *bits, uint64_t p)
{
  return bits + (p / MRT_BITS_PER_PAGE) * (MRT_BITS_PER_PAGE / 8) + (p % MRT_BITS_PER_PAGE) / 8;
}

static inline uint8_t
mrt_mask (uint64_t p)
{
  return (uint8_t) (1u << (p % MRT_BITS_PER_PAGE % 8));
}

bool
rct_mrt_get (const struct rct *r, uint64_t p)
{
  return __atomic_load_n (mrt_byte (r->mrt, p), SEQ) & mrt_mask (p);
}

void
rct_mrt_set (struct rct *r, uint64_t p)
{
  __atomic_or_fetch (mrt_byte (r->mrt, p), mrt_mask (p), SEQ);
}

static void
atomic_max32 (uint32_t *v, uint32_t x)
{
  uint32_t old = __atomic_load_n (v, __ATOMIC_RELAXED);
  while (old < x &&
         !__atomic_compare_exchange_n (v, &old, x, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
    ;
}

/* ---- the write-ahead map's pages (RCT-10) ---- */

/* Write bit page J of IMAGE.mrt with BITS (MRT_BITS_PER_PAGE / 8
 * bytes), sealed for the current session.  Not synced. */
static int
mrt_put_page (struct rct *r, uint64_t j, const uint8_t *bits)
{
  uint8_t b[RCT_PAGE];
  memset (b, 0, sizeof b);
  memcpy (b, bits, MRT_BITS_PER_PAGE / 8);
  rct_seal_page (b, RCT_MRT_MAGIC, j + 1, rct_session_tag (&r->h.epoch, &r->h.session));
  if (io_pwrite (r->mio, b, sizeof b, (j + 1) * RCT_PAGE) == -1) {
    set_error_errno (errno, "%s: write the write-ahead map", r->mrt_path);
    return -1;
  }
  return 0;
}

static int
mrt_sync (struct rct *r)
{
  if (io_sync (r->mio) == -1) {
    set_error_errno (errno, "%s: flush the write-ahead map", r->mrt_path);
    return -1;
  }
  return 0;
}

/* The header page and bit pages [FROM, nmrt) from the durable bits, and
 * sync.  L-8 held (the map's writers are kept out: a session begins
 * before any write records a bit). */
int
rct_mrt_put_session (struct rct *r, uint64_t from)
{
  uint8_t b[RCT_PAGE];
  LOCK_FOR_SCOPE (&r->mrt_lock);
  rct_encode_mrt_header (b, &r->h.epoch, &r->h.session, r->nmrt);
  if (io_pwrite (r->mio, b, sizeof b, 0) == -1) {
    set_error_errno (errno, "%s: write the write-ahead map", r->mrt_path);
    return -1;
  }
  uint8_t bits[MRT_BITS_PER_PAGE / 8];
  for (uint64_t j = from; j < r->nmrt; j++) {
    for (size_t k = 0; k < sizeof bits; k++)
      bits[k] = __atomic_load_n (&r->mrt[j * sizeof bits + k], __ATOMIC_RELAXED);
    if (mrt_put_page (r, j, bits) == -1) return -1;
  }
  return mrt_sync (r);
}

/* Write every bit page that has requested bits, or is in REWRITE (may
 * be NULL), with the durable bits and the requests, then sync; on
 * success the requests are durable.  mrt_lock held (L-10).  If it
 * fails, the requests taken are dropped: who made them sees its bit
 * still not durable and fails or tries again. */
static int
mrt_write_locked (struct rct *r, const uint8_t *rewrite)
{
  const size_t pb = MRT_BITS_PER_PAGE / 8;
  uint8_t *taken = calloc (r->nmrt ? r->nmrt : 1, pb);
  uint8_t bits[MRT_BITS_PER_PAGE / 8];
  if (!taken) {
    set_error_errno (ENOMEM, "%s: the write-ahead map", r->mrt_path);
    return -1;
  }
  int ret = -1;
  bool wrote = false;
  for (uint64_t j = 0; j < r->nmrt; j++) {
    bool any = rewrite && rewrite[j];
    for (size_t k = 0; k < pb; k++) {
      uint8_t w = __atomic_exchange_n (&r->mrt_want[j * pb + k], 0, SEQ);
      taken[j * pb + k] = w;
      bits[k] = (uint8_t) (__atomic_load_n (&r->mrt[j * pb + k], SEQ) | w);
      any |= w != 0;
    }
    if (!any) continue;
    if (mrt_put_page (r, j, bits) == -1) goto out;
    wrote = true;
  }
  if (wrote && mrt_sync (r) == -1) goto out;
  for (uint64_t i = 0; i < r->nmrt * pb; i++)
    if (taken[i]) __atomic_or_fetch (&r->mrt[i], taken[i], SEQ);
  ret = 0;
 out:
  free (taken);
  return ret;
}

/* RCT-2: the bits of leaf pages [P0, P1] durable before the write goes
 * on.  Memory says "durable" only after the sync (RCT-2): a failed
 * record fails this write, and the next write there records it again. */
static int
mrt_ensure (struct rct *r, uint64_t p0, uint64_t p1)
{
  bool need = false;
  for (uint64_t p = p0; p <= p1; p++)
    if (!rct_mrt_get (r, p)) {
      __atomic_or_fetch (mrt_byte (r->mrt_want, p), mrt_mask (p), SEQ);
      need = true;
    }
  if (!need) return 0;
  LOCK_FOR_SCOPE (&r->mrt_lock);
  /* A writer before us may have written our requests too. */
  need = false;
  for (uint64_t p = p0; p <= p1; p++)
    if (!rct_mrt_get (r, p)) {
      __atomic_or_fetch (mrt_byte (r->mrt_want, p), mrt_mask (p), SEQ);
      need = true;
    }
  if (!need) return 0;
  return mrt_write_locked (r, NULL);
}

/* ---- sessions (RCT-10) ---- */

/* The first change of a writing session: a new session GUID, the
 * write-ahead map written for it, then the header marked dirty with
 * that GUID.  A crash between the two leaves a header that says the
 * last session closed cleanly, which needs no map.  Until this succeeds
 * the session has not begun and the next change tries again.  L-8 held. */
int
rct_session_begin_locked (struct rct *r)
{
  if (r->session_marked) return 0;
  if (guid_generate (&r->h.session) == -1) {
    set_error_errno (errno, "%s: random GUID", r->path);
    return -1;
  }
  if (rct_mrt_put_session (r, 0) == -1) return -1;
  r->h.session_dirty = 1;
  if (rct_write_header (r) == -1) return -1;
  STORE_RELEASE (&r->session_marked, true);
  return 0;
}

static int
session_begin (struct rct *r)
{
  if (LOAD_ACQUIRE (&r->session_marked)) return 0;
  LOCK_FOR_SCOPE (&r->lock);
  return rct_session_begin_locked (r);
}

int
rct_before_data_write_guid (struct rct *r, const uint8_t guid[16])
{
  if (!r || !r->writable || r->state != RCT_OK) return 0;
  LOCK_FOR_SCOPE (&r->lock);
  memcpy (r->h.pending_dwg.b, guid, 16);
  /* The session's first header write carries the pending value too. */
  if (!r->session_marked) return rct_session_begin_locked (r);
  return rct_write_header (r);
}

/* ---- the summary (RCT-9), stripe lock held ----
 * Every tag written is the current generation, never older than a tag
 * already in the page, so the summary of a page follows each write in
 * constant time: block K becomes the newest, and the former newest
 * generation becomes the newest of the others. */

static void
sum_dirty (struct rct *r, uint64_t p)
{
  STORE_RELAXED (&r->l1_dirty[p / RCT_L1_PER_PAGE], 1);
  atomic_max32 (&r->l2[p / RCT_L1_PER_PAGE], r->l1[p]);
}

/* Leaf page p has its first tag: counted only after its summary is in
 * l1 and its L1 page is marked dirty, with release order.  A flush
 * that reads the count (acquire) before it takes the dirty L1 pages
 * therefore writes, in the same flush, the summary of every page it
 * counts, and the header's leaves_written never exceeds the pages with
 * tags that are durable (RCT-6). */
static void
count_leaf (struct rct *r)
{
  __atomic_add_fetch (&r->leaves_with_tags, 1, __ATOMIC_RELEASE);
}

/* Block K of leaf page P now has tag TAG (of the current generation). */
static void
sum_note (struct rct *r, uint64_t p, unsigned k, uint32_t tag)
{
  uint32_t g = RCT_GEN (tag);
  /* Two blocks already carry this generation: whichever block is named
   * top, the summary says "read the page" for every older reference
   * point, and stays true (the common case of a busy page: one compare). */
  if (r->l1s[p] == g) return;
  uint16_t top = (uint16_t) (k | (tag & RCT_ZERO_KIND ? RCT_TOP_ZERO : 0));
  bool first = r->l1[p] == 0;
  if ((r->l1t[p] & ~RCT_TOP_ZERO) != k) r->l1s[p] = r->l1[p];
  if (r->l1[p] == g && r->l1t[p] == top) return;
  STORE_RELAXED (&r->l1[p], g);
  r->l1t[p] = top;
  sum_dirty (r, p);
  if (first) count_leaf (r);
}

void
rct_sum_from_tags (struct rct *r, uint64_t p, const uint32_t *tags)
{
  uint32_t max, second;
  uint16_t top;
  rct_summarize (tags, &max, &second, &top);
  bool first = r->l1[p] == 0;
  if (first && max == 0) return;
  STORE_RELAXED (&r->l1[p], max);
  r->l1s[p] = second;
  r->l1t[p] = top;
  sum_dirty (r, p);
  if (first && max > 0) count_leaf (r);
}

/* ---- leaf pages in memory (L-9) ---- */

static pthread_mutex_t *
stripe (struct rct *r, uint64_t p)
{
  return &r->stripe[p % RCT_STRIPES];
}

/* Put page P on the list of dirty pages; its stripe lock held. */
static int
mark_dirty_locked (struct rct *r, uint64_t p, struct rct_page *pg)
{
  pg->version++;
  if (pg->dirty) return 0;
  LOCK_FOR_SCOPE (&r->dirty_lock);
  if (r->ndirty_list == r->dirty_cap) {
    size_t cap = r->dirty_cap ? r->dirty_cap * 2 : 256;
    uint64_t *l = realloc (r->dirty_list, cap * sizeof *l);
    if (!l) {
      set_error_errno (ENOMEM, "%s: tracking state", r->path);
      return -1;
    }
    r->dirty_list = l;
    r->dirty_cap = cap;
  }
  r->dirty_list[r->ndirty_list++] = p;
  pg->dirty = true;
  return 0;
}

/* Leaf page P in memory, its stripe lock held on return (0), or -1
 * with the lock not held.  A page is read from the file without the
 * lock; a damaged one counts as all changed now (RCT-6). */
static int
page_locked (struct rct *r, uint64_t p, struct rct_page **out)
{
  pthread_mutex_lock (stripe (r, p));
  if (r->dir[p]) { *out = r->dir[p]; return 0; }
  pthread_mutex_unlock (stripe (r, p));
  struct rct_page *pg = calloc (1, sizeof *pg);
  if (!pg) {
    set_error_errno (ENOMEM, "%s: tracking cache", r->path);
    return -1;
  }
  int sub = rct_load_leaf (r, p, LOAD_RELAXED (&r->l1[p]), pg->tags);
  if (sub == -1) { free (pg); return -1; }
  pthread_mutex_lock (stripe (r, p));
  if (r->dir[p]) {
    free (pg);
    *out = r->dir[p];
    return 0;
  }
  r->dir[p] = pg;
  __atomic_add_fetch (&r->npages_loaded, 1, __ATOMIC_RELAXED);
  if (sub == 1) {
    /* A damaged page now counts as all changed: so must its summary,
     * and the page must be written again. */
    rct_sum_from_tags (r, p, pg->tags);
    if (mark_dirty_locked (r, p, pg) == -1) {
      pthread_mutex_unlock (stripe (r, p));
      return -1;
    }
  }
  *out = pg;
  return 0;
}

/* Tag the blocks of OP with generation GEN (never lowering a tag).  A
 * block keeps the zero kind only if every change of it in GEN was a
 * zero: with writes racing, "the last change" is not known, and a zero
 * kind must never be claimed for a block that may hold data. */
static int
tag (struct rct *r, const struct rct_op *op, uint32_t gen)
{
  for (uint64_t p = op->p0; p <= op->p1; p++) {
    struct rct_page *pg;
    if (page_locked (r, p, &pg) == -1) return -1;
    uint64_t lo = p == op->p0 ? op->b0 % RCT_PER_PAGE : 0;
    uint64_t hi = p == op->p1 ? (op->b1 - 1) % RCT_PER_PAGE : RCT_PER_PAGE - 1;
    bool changed = false;
    for (uint64_t k = lo; k <= hi; k++) {
      uint64_t b = p * RCT_PER_PAGE + k;
      uint32_t old = pg->tags[k];
      uint32_t zero = b >= op->z0 && b < op->z1 ? RCT_ZERO_KIND : 0;
      uint32_t t;
      if (RCT_GEN (old) > gen) continue;
      if (RCT_GEN (old) == gen) t = gen | (old & zero);
      else t = gen | zero;
      if (t == old) continue;
      pg->tags[k] = t;
      sum_note (r, p, (unsigned) k, t);
      changed = true;
    }
    int rr = changed ? mark_dirty_locked (r, p, pg) : 0;
    pthread_mutex_unlock (stripe (r, p));
    if (rr == -1) return -1;
  }
  return 0;
}

/* ---- the write path (RCT-2, L-11) ---- */

static void
unpin (struct rct *r, const struct rct_op *op)
{
  for (uint64_t p = op->p0; p <= op->p1; p++)
    __atomic_sub_fetch (&r->inflight[p], 1, SEQ);
}

int
rct_write_begin (struct rct *r, uint64_t off, uint64_t len, bool zero, struct rct_op *op)
{
  op->active = false;
  if (!r || !len) return 0;
  if (r->state != RCT_OK || !r->writable) {
    if (r->state == RCT_FAILED) return rct_state_error (r);
    set_error (VHDKIT_RC_FAILED, 0, "%s: internal error: a write with tracking that cannot record it", r->image_path);
    return -1;
  }
  if (session_begin (r) == -1) return -1;
  uint64_t g = r->h.granularity;
  op->b0 = off / g;
  op->b1 = div_round_up (off + len, g);
  op->p0 = op->b0 / RCT_PER_PAGE;
  op->p1 = (op->b1 - 1) / RCT_PER_PAGE;
  /* A zero marks as "zero" only the blocks it covers whole: a block it
   * covers in part still holds data (RCT kinds are advice to skip reads,
   * so they must never claim zeros that are not there). */
  op->z0 = zero ? div_round_up (off, g) : UINT64_MAX;
  op->z1 = zero ? (off + len) / g : 0;
  if (op->p1 >= r->npages) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: internal error: a write past the tracked size", r->image_path);
    return -1;
  }
  for (uint64_t p = op->p0; p <= op->p1; p++)
    __atomic_add_fetch (&r->inflight[p], 1, SEQ);
  if (mrt_ensure (r, op->p0, op->p1) == -1) {
    unpin (r, op);
    return -1;
  }
  op->gen = LOAD_ACQUIRE (&r->cur);
  if (tag (r, op, op->gen) == -1) {
    unpin (r, op);
    return -1;
  }
  op->active = true;
  return 0;
}

void
rct_write_end (struct rct *r, struct rct_op *op)
{
  if (!op->active) return;
  op->active = false;
  uint32_t g = __atomic_load_n (&r->cur, SEQ);
  /* A reference point came while the write was in flight: it is
   * reported since that one too.  Its pages are in memory (a page with
   * writes in flight is not evicted), so this cannot fail. */
  if (g != op->gen) tag (r, op, g);
  else if (__atomic_load_n (&r->ck_active, SEQ) > 0) {
    /* One has begun but not sealed yet: the write is in flight during
     * it, so it must be reported since the new ID.  Leave it pinned on
     * the carry list for the seal to tag (L-11), unless the seal came
     * meanwhile; carry_lock orders the two. */
    pthread_mutex_lock (&r->carry_lock);
    g = __atomic_load_n (&r->cur, SEQ);
    if (g == op->gen) {
      if (r->ncarry == r->carry_cap) {
        size_t cap = r->carry_cap ? r->carry_cap * 2 : 64;
        struct rct_op *c = realloc (r->carry, cap * sizeof *c);
        if (!c) {
          /* Never a silent miss: tracking refuses from now on. */
          pthread_mutex_unlock (&r->carry_lock);
          LOCK_FOR_SCOPE (&r->lock);
          snprintf (r->why, sizeof r->why, "%s: out of memory recording a write during a reference point",
                    r->path);
          STORE_RELEASE (&r->state, RCT_FAILED);
          goto unpin;
        }
        r->carry = c;
        r->carry_cap = cap;
      }
      r->carry[r->ncarry++] = *op;
      pthread_mutex_unlock (&r->carry_lock);
      return;
    }
    pthread_mutex_unlock (&r->carry_lock);
    tag (r, op, g);
  }
 unpin:;
  uint32_t fs = __atomic_load_n (&r->flush_seq, SEQ);
  for (uint64_t p = op->p0; p <= op->p1; p++) {
    atomic_max32 (&r->touch[p], fs);
    __atomic_sub_fetch (&r->inflight[p], 1, SEQ);
  }
}

/* Tag the carried writes with generation G (0: leave their tags) and
 * unpin them; carry_lock held. */
static void
drain_carry_locked (struct rct *r, uint32_t g)
{
  uint32_t fs = __atomic_load_n (&r->flush_seq, SEQ);
  for (size_t i = 0; i < r->ncarry; i++) {
    struct rct_op *op = &r->carry[i];
    if (g) tag (r, op, g);
    for (uint64_t p = op->p0; p <= op->p1; p++) {
      atomic_max32 (&r->touch[p], fs);
      __atomic_sub_fetch (&r->inflight[p], 1, SEQ);
    }
  }
  r->ncarry = 0;
}

void
rct_checkpoint_begin (struct rct *r)
{
  __atomic_add_fetch (&r->ck_active, 1, SEQ);
}

void
rct_checkpoint_end (struct rct *r)
{
  LOCK_FOR_SCOPE (&r->carry_lock);
  /* With no reference point left in progress, what is carried was
   * tagged with the generation still current: nothing more to do. */
  if (__atomic_sub_fetch (&r->ck_active, 1, SEQ) == 0)
    drain_carry_locked (r, 0);
}

/* ---- flush (RCT-3) ---- */

/* Take the list of dirty pages (to write), or give pages back to it. */
static int
take_dirty (struct rct *r, uint64_t **list, size_t *n)
{
  LOCK_FOR_SCOPE (&r->dirty_lock);
  *list = r->dirty_list;
  *n = r->ndirty_list;
  r->dirty_list = NULL;
  r->ndirty_list = r->dirty_cap = 0;
  return 0;
}

static void
give_back (struct rct *r, const uint64_t *list, size_t n)
{
  LOCK_FOR_SCOPE (&r->dirty_lock);
  for (size_t i = 0; i < n; i++) {
    if (r->ndirty_list == r->dirty_cap) {
      size_t cap = r->dirty_cap ? r->dirty_cap * 2 : 256;
      uint64_t *l = realloc (r->dirty_list, cap * sizeof *l);
      if (!l) abort ();           /* smaller than what was just freed */
      r->dirty_list = l;
      r->dirty_cap = cap;
    }
    r->dirty_list[r->ndirty_list++] = list[i];
  }
}

/* Drop clean pages that no write is using (memory bound). */
static void
evict (struct rct *r)
{
  if (__atomic_load_n (&r->npages_loaded, __ATOMIC_RELAXED) <= 4096) return;
  for (uint64_t p = 0; p < r->npages; p++) {
    if (!LOAD_RELAXED (&r->dir[p])) continue;
    LOCK_FOR_SCOPE (stripe (r, p));
    struct rct_page *pg = r->dir[p];
    if (!pg || pg->dirty || __atomic_load_n (&r->inflight[p], SEQ)) continue;
    r->dir[p] = NULL;
    free (pg);
    __atomic_sub_fetch (&r->npages_loaded, 1, __ATOMIC_RELAXED);
  }
}

int
rct_flush_locked (struct rct *r, bool all)
{
  uint8_t b[RCT_PAGE];
  bool wrote = false, grew = false;
  uint32_t fseq = __atomic_add_fetch (&r->flush_seq, 1, SEQ);
  uint64_t *list = NULL;
  size_t n = 0;
  uint32_t *versions = NULL;
  uint8_t *l1w = NULL;
  take_dirty (r, &list, &n);
  if (n && !(versions = malloc (n * sizeof *versions))) goto nomem;
  if (!(l1w = calloc (r->nl1 ? r->nl1 : 1, 1))) goto nomem;
  /* The dirty leaf pages, as they are now. */
  for (size_t i = 0; i < n; i++) {
    uint64_t p = list[i];
    pthread_mutex_lock (stripe (r, p));
    struct rct_page *pg = r->dir[p];
    memset (b, 0, sizeof b);
    for (int k = 0; k < RCT_PER_PAGE; k++) put_le32 (b + 4 * k, pg->tags[k]);
    versions[i] = pg->version;
    pthread_mutex_unlock (stripe (r, p));
    rct_seal_page (b, RCT_LEAF_MAGIC, p, rct_epoch_tag (&r->h.epoch));
    if (io_pwrite (r->io, b, sizeof b, r->leaf_off + p * RCT_PAGE) == -1) goto err;
    wrote = true;
    if (p + 1 > r->h.max_leaf) { r->h.max_leaf = p + 1; grew = true; }
  }
  /* How many pages have tags: read before the summaries are taken, so
   * that every page counted has its summary written below or by an
   * earlier flush (count_leaf). */
  uint64_t lwt = __atomic_load_n (&r->leaves_with_tags, __ATOMIC_ACQUIRE);
  /* The summaries (a change after the dirty flag is cleared sets it
   * again, and goes to the next flush). */
  for (uint64_t j = 0; j < r->nl1; j++) {
    if (!__atomic_exchange_n (&r->l1_dirty[j], 0, SEQ)) continue;
    l1w[j] = 1;
    memset (b, 0, sizeof b);
    uint64_t first = j * RCT_L1_PER_PAGE;
    for (uint64_t k = 0; k < RCT_L1_PER_PAGE && first + k < r->npages; k++) {
      uint64_t p = first + k;
      pthread_mutex_lock (stripe (r, p));
      put_le32 (b + RCT_L1_ENTRY * k, r->l1[p]);
      put_le32 (b + RCT_L1_ENTRY * k + 4, r->l1s[p]);
      put_le16 (b + RCT_L1_ENTRY * k + 8, r->l1t[p]);
      pthread_mutex_unlock (stripe (r, p));
    }
    rct_seal_page (b, RCT_L1_MAGIC, j, rct_epoch_tag (&r->h.epoch));
    if (io_pwrite (r->io, b, sizeof b, RCT_L1_OFF + j * RCT_PAGE) == -1) goto err;
    wrote = true;
    if (j + 1 > r->h.max_l1) { r->h.max_l1 = j + 1; grew = true; }
  }
  if (wrote && io_sync (r->io) == -1) goto err;
  /* Only what is durable is clean: a page changed since it was taken
   * stays dirty, for the next flush. */
  size_t keep = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t p = list[i];
    LOCK_FOR_SCOPE (stripe (r, p));
    struct rct_page *pg = r->dir[p];
    if (pg->version == versions[i]) pg->dirty = false;
    else list[keep++] = p;
  }
  give_back (r, list, keep);
  free (list); list = NULL;
  free (versions); versions = NULL;
  free (l1w); l1w = NULL;
  if (r->h.leaves_written != lwt || r->h.leaves_span != r->npages) {
    r->h.leaves_written = lwt;
    r->h.leaves_span = r->npages;
    grew = true;
  }
  if (grew) r->hdr_dirty = true;
  if (r->hdr_dirty) {
    if (rct_write_header (r) == -1) return -1;
    r->hdr_dirty = false;
  }

  /* Tags are durable: the write-ahead bits may go (RCT-3, L-11).  A page
   * written since the flush before keeps its bit, because it is likely
   * to be written again and setting the bit costs a synchronous write;
   * every bit goes at a clean close (ALL).  The bits go from memory
   * first: if writing the page fails, memory says "not set" and the next
   * write there sets the bit again. */
  {
    LOCK_FOR_SCOPE (&r->mrt_lock);
    uint8_t *rewrite = calloc (r->nmrt ? r->nmrt : 1, 1);
    if (!rewrite) {
      set_error_errno (ENOMEM, "%s: the write-ahead map", r->mrt_path);
      return -1;
    }
    bool any = false;
    for (uint64_t p = 0; p < r->npages; p++) {
      if (!rct_mrt_get (r, p)) continue;
      if (!all && __atomic_load_n (&r->touch[p], SEQ) + 1 >= fseq) continue;
      __atomic_and_fetch (mrt_byte (r->mrt, p), (uint8_t) ~mrt_mask (p), SEQ);
      if (__atomic_load_n (&r->inflight[p], SEQ) ||
          (!all && __atomic_load_n (&r->touch[p], SEQ) + 1 >= fseq)) {
        __atomic_or_fetch (mrt_byte (r->mrt, p), mrt_mask (p), SEQ);
        continue;
      }
      rewrite[p / MRT_BITS_PER_PAGE] = 1;
      any = true;
    }
    int rr = any ? mrt_write_locked (r, rewrite) : 0;
    free (rewrite);
    if (rr == -1) return -1;
  }
  evict (r);
  return 0;
 nomem:
  set_error_errno (ENOMEM, "%s: tracking state", r->path);
  give_back (r, list, n);
  free (list); free (versions); free (l1w);
  return -1;
 err:
  set_error_errno (errno, "%s: write tracking state", r->path);
  /* Every page taken stays dirty, every summary too. */
  give_back (r, list, n);
  for (uint64_t j = 0; l1w && j < r->nl1; j++)
    if (l1w[j]) STORE_RELAXED (&r->l1_dirty[j], 1);
  free (list); free (versions); free (l1w);
  return -1;
}

int
rct_flush (struct rct *r)
{
  if (!r || !r->writable) return 0;
  if (r->state == RCT_FAILED) return rct_state_error (r);
  if (r->state != RCT_OK) return 0;
  LOCK_FOR_SCOPE (&r->lock);
  return rct_flush_locked (r, false);
}

/* ---- reference points ---- */

bool
rct_needs_new_epoch (struct rct *r)
{
  return LOAD_ACQUIRE (&r->cur) >= RCT_MAX_GEN;
}

int
rct_seal (struct rct *r, uint32_t *sealed)
{
  if (r->state != RCT_OK) return rct_state_error (r);
  LOCK_FOR_SCOPE (&r->lock);
  if (r->h.cur >= RCT_MAX_GEN) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: internal error: the generation counter ran out", r->path);
    return -1;
  }
  /* Writes that begin from now on carry the next generation; writes in
   * flight take it at their end (L-11). */
  *sealed = r->h.cur;
  r->h.cur++;
  __atomic_store_n (&r->cur, r->h.cur, SEQ);
  r->hdr_dirty = true;
  /* Writes that ended since the reference point began take the new
   * generation too (L-11); L-8 → carry_lock → L-9. */
  pthread_mutex_lock (&r->carry_lock);
  drain_carry_locked (r, r->h.cur);
  pthread_mutex_unlock (&r->carry_lock);
  return 0;
}

/* Recovery (RCT-4): every block of leaf page P counts as changed in
 * the current generation.  A writer at attach (nothing else runs). */
int
rct_recover_page (struct rct *r, uint64_t p)
{
  struct rct_page *pg;
  if (page_locked (r, p, &pg) == -1) return -1;
  uint32_t cur = LOAD_ACQUIRE (&r->cur);
  for (int k = 0; k < RCT_PER_PAGE; k++) pg->tags[k] = cur;
  rct_sum_from_tags (r, p, pg->tags);
  int rr = mark_dirty_locked (r, p, pg);
  pthread_mutex_unlock (stripe (r, p));
  return rr;
}

/* The tags of leaf page P for a query: from memory if the page is
 * there (it may be newer than the file), else from the file.  1 if
 * the page was damaged and counts as all changed. */
int
rct_page_tags (struct rct *r, uint64_t p, uint32_t newest, uint32_t *tags)
{
  pthread_mutex_lock (stripe (r, p));
  struct rct_page *pg = r->dir[p];
  if (pg) {
    memcpy (tags, pg->tags, RCT_PER_PAGE * 4);
    pthread_mutex_unlock (stripe (r, p));
    return 0;
  }
  pthread_mutex_unlock (stripe (r, p));
  /* Not in memory: the file holds its newest tags (only clean pages
   * leave memory). */
  return rct_load_leaf (r, p, newest, tags);
}

/* The summary of leaf page P, consistent (under its stripe lock, L-9). */
void
rct_page_summary (struct rct *r, uint64_t p, uint32_t *max, uint32_t *second, uint16_t *top)
{
  pthread_mutex_lock (stripe (r, p));
  *max = r->l1[p];
  *second = r->l1s[p];
  *top = r->l1t[p];
  pthread_mutex_unlock (stripe (r, p));
}

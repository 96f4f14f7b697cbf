/* GetVirtualDiskChanges (DESIGN.md §3): validation and return codes,
 * then a walk of the tracking summary that visits only leaf pages whose
 * newest tag is after the limit, so the cost follows the number of
 * changed pages, not the disk size.  Ranges are coalesced across block
 * and page boundaries, clipped to the window, and paged by a cap. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rct.h"

struct out {
  struct vhdkit_changes *c;
  size_t cap;                    /* caller's range cap */
  size_t alloc;
  uint64_t win_lo, win_hi;
  bool open;                     /* a range is being extended */
  uint64_t lo, hi;
  uint8_t kind;
  bool full;                     /* cap reached: stop */
};

static int
push (struct out *o)
{
  if (o->c->count == o->alloc) {
    size_t n = o->alloc ? o->alloc * 2 : 256;
    if (n > o->cap) n = o->cap;
    uint64_t *a = realloc (o->c->offsets, n * 8), *b;
    if (!a) return -1;
    o->c->offsets = a;
    b = realloc (o->c->lengths, n * 8);
    if (!b) return -1;
    o->c->lengths = b;
    uint8_t *k = realloc (o->c->kinds, n);
    if (!k) return -1;
    o->c->kinds = k;
    o->alloc = n;
  }
  o->c->offsets[o->c->count] = o->lo;
  o->c->lengths[o->c->count] = o->hi - o->lo;
  o->c->kinds[o->c->count] = o->kind;
  o->c->count++;
  o->open = false;
  return 0;
}

/* Add the changed byte range [lo, hi) (ascending calls). */
static int
add (struct out *o, uint64_t lo, uint64_t hi, uint8_t kind)
{
  if (lo < o->win_lo) lo = o->win_lo;
  if (hi > o->win_hi) hi = o->win_hi;
  if (lo >= hi) return 0;
  if (o->open && lo <= o->hi) {
    if (hi > o->hi) o->hi = hi;
    if (kind != o->kind) o->kind = VHDKIT_CHANGE_DATA;
    return 0;
  }
  /* A range opens only while there is room for it, so pushing the open
   * one always fits; the next needs room of its own. */
  if (o->open && push (o) == -1) return -1;
  if (o->c->count >= o->cap) { o->full = true; return 0; }
  o->open = true;
  o->lo = lo; o->hi = hi; o->kind = kind;
  return 0;
}

static void
changes_free (struct vhdkit_changes *c)
{
  uint32_t struct_size = c->struct_size;
  free (c->offsets);
  free (c->lengths);
  free (c->kinds);
  memset (c, 0, sizeof *c);
  c->struct_size = struct_size;
}

#define TAG_GROUP 16

/* Whether a tag among the TAG_GROUP at T is after GEN: a loop without
 * branches, which the compiler turns into a few vector instructions
 * (generations are below 2^31, so a signed compare is exact). */
static inline bool
group_after (const uint32_t *t, uint32_t gen)
{
  int any = 0;
  for (int i = 0; i < TAG_GROUP; i++)
    any |= (int32_t) RCT_GEN (t[i]) > (int32_t) gen;
  return any;
}

static int
invalid (struct rct *r)
{
  set_error (VHDKIT_RC_INVALID_STATE, 0, "%s: every reference point is invalid; a full backup is needed",
             r->why);
  return -1;
}

int
rct_query (struct rct *r, const char *path, uint64_t size, uint32_t lss,
           const char *limit_id, uint64_t off, uint64_t len, size_t max_ranges,
           struct vhdkit_changes *c)
{
  uint32_t struct_size = c->struct_size;
  memset (c, 0, sizeof *c);
  c->struct_size = struct_size;
  /* §3.1 */
  uint64_t end;
  if (off % lss || len % lss) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: ByteOffset %" PRIu64 " and ByteLength %" PRIu64
               " must be multiples of the logical sector size %" PRIu32, path, off, len, lss);
    return -1;
  }
  if (!add_ok (off, len, &end) || end > size) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: ByteOffset %" PRIu64 " + ByteLength %" PRIu64 " exceeds the virtual size %" PRIu64,
               path, off, len, size);
    return -1;
  }
  /* §3.2 */
  struct guid epoch;
  uint32_t gen;
  if (!limit_id || rct_parse_id (limit_id, &epoch, &gen) == -1) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: LimitId \"%s\" is not an RCT ID (rctX:<epoch>:<generation>)", path,
               limit_id ? limit_id : "");
    return -1;
  }
  if (!r) {
    set_error (VHDKIT_RC_INVALID_STATE, 0,
               "%s: change tracking is not enabled, so there are no reference points; a full backup is needed", path);
    return -1;
  }
  /* A read-only view may become invalid while it is open (rct_ready),
   * hence the acquire load. */
  enum rct_state state = LOAD_ACQUIRE (&r->state);
  if (state == RCT_BUSY) {
    set_error (VHDKIT_RC_IN_USE, 0, "%s", r->why);
    return -1;
  }
  if (state == RCT_INVALID || state == RCT_FAILED) return invalid (r);
  uint32_t cur = LOAD_ACQUIRE (&r->cur);
  if (!guid_eq (&epoch, &r->h.epoch)) {
    const char *why = r->h.reason[0] ? r->h.reason : "tracking was enabled again";
    set_error (VHDKIT_RC_INVALID_STATE, 0,
               "%s: RCT ID %s belongs to another tracking epoch (the current one began because %s); a full backup is needed",
               path, limit_id, why);
    return -1;
  }
  if (gen == 0 || gen >= cur) {
    set_error (VHDKIT_RC_INVALID_STATE, 0,
               "%s: RCT ID %s was never issued (the newest reference point is generation %" PRIu32 "); a full backup is needed",
               path, limit_id, cur - 1);
    return -1;
  }
  if (max_ranges == 0) max_ranges = VHDKIT_CHANGES_DEFAULT_MAX;
  if (max_ranges > VHDKIT_CHANGES_MAX_CAP) {
    set_error (VHDKIT_RC_OUT_OF_MEMORY, 0,
               "%s: a cap of %zu ranges would exceed the memory cap of %u ranges per call; page with a smaller cap",
               path, max_ranges, VHDKIT_CHANGES_MAX_CAP);
    return -1;
  }

  struct out o = { .c = c, .cap = max_ranges, .win_lo = off, .win_hi = end };
  if (len == 0) return 0;
  uint64_t g = r->h.granularity;
  /* RCT-8: the part of the disk beyond its smallest size since GEN. */
  uint64_t grown = rct_min_size_since (r, gen);
  /* A writer's summaries are in memory (newer than the files).  A
   * read-only view reads the L1 pages the window needs, each checked
   * (RCT-6), and knows l2 only once every L1 page has been read
   * (rct_ready). */
  bool view = !r->writable;
  bool use_l2 = !view || LOAD_ACQUIRE (&r->checked);
  struct rct_l1_cursor l1c = { .buf = NULL };
  uint32_t *tags = malloc (RCT_PAGE);
  if (!tags || (view && rct_l1_cursor_init (r, &l1c) == -1)) goto nomem;
  uint64_t b0 = off / g, b1 = div_round_up (end, g);
  uint64_t p0 = b0 / RCT_PER_PAGE, p1 = (b1 - 1) / RCT_PER_PAGE;
  for (uint64_t p = p0; p <= p1 && !o.full; ) {
    uint64_t page_lo = p * RCT_PER_PAGE * g;
    /* Skip whole L1 pages, then leaf pages, with nothing newer than GEN
     * (newest values only grow: a stale one is older than a write that
     * completed before the query, so it cannot hide one). */
    if (use_l2 && p % RCT_L1_PER_PAGE == 0 && p + RCT_L1_PER_PAGE <= p1 &&
        LOAD_RELAXED (&r->l2[p / RCT_L1_PER_PAGE]) <= gen &&
        !r->any_recovered && page_lo + RCT_L1_PER_PAGE * RCT_PER_PAGE * g <= grown) {
      p += RCT_L1_PER_PAGE;
      continue;
    }
    /* In a view, the same from the L1 page of P once it is read (the
     * rest of it, from P on). */
    if (view && p < r->npages && !r->any_recovered) {
      uint64_t next = (p / RCT_L1_PER_PAGE + 1) * RCT_L1_PER_PAGE;
      if (rct_l1_read (r, &l1c, p / RCT_L1_PER_PAGE) == -1) goto fail;
      if (l1c.newest <= gen && next * RCT_PER_PAGE * g <= grown) {
        p = next;
        continue;
      }
    }
    bool rec = r->any_recovered && ((r->recovered[p / 8] >> (p % 8)) & 1);
    /* The summary of the page (RCT-9). */
    uint32_t smax = 0, ssecond = 0;
    uint16_t stop = 0;
    if (p < r->npages && view) {
      if (rct_l1_read (r, &l1c, p / RCT_L1_PER_PAGE) == -1) goto fail;
      unsigned k = p % RCT_L1_PER_PAGE;
      smax = l1c.sums.max[k];
      ssecond = l1c.sums.second[k];
      stop = l1c.sums.top[k];
    }
    else if (p < r->npages) {
      smax = LOAD_RELAXED (&r->l1[p]);
      if (smax > gen) rct_page_summary (r, p, &smax, &ssecond, &stop);
    }
    if (smax <= gen && !rec) {
      if (page_lo + RCT_PER_PAGE * g > grown) {
        if (add (&o, grown > page_lo ? grown : page_lo, page_lo + RCT_PER_PAGE * g, VHDKIT_CHANGE_DATA) == -1) goto nomem;
      }
      p++;
      continue;
    }
    if (rec) {
      if (add (&o, page_lo, page_lo + RCT_PER_PAGE * g, VHDKIT_CHANGE_DATA) == -1) goto nomem;
      p++;
      continue;
    }
    /* Only the page's newest block is after GEN, so the summary alone
     * answers, without reading the page. */
    if (ssecond <= gen && page_lo + RCT_PER_PAGE * g <= grown) {
      uint64_t blo = page_lo + (uint64_t) (stop & ~RCT_TOP_ZERO) * g;
      if (add (&o, blo, blo + g, (stop & RCT_TOP_ZERO) ? VHDKIT_CHANGE_ZERO : VHDKIT_CHANGE_DATA) == -1)
        goto nomem;
      p++;
      continue;
    }
    if ((view ? rct_load_leaf (r, p, smax, tags) : rct_page_tags (r, p, smax, tags)) == -1) goto fail;
    uint64_t klo = p == p0 ? b0 % RCT_PER_PAGE : 0;
    uint64_t khi = p == p1 ? (b1 - 1) % RCT_PER_PAGE : RCT_PER_PAGE - 1;
    bool below = page_lo + RCT_PER_PAGE * g <= grown;
    for (uint64_t k = klo; k <= khi && !o.full; k++) {
      /* A page read here has a few blocks after GEN among 1020: pass
       * over the others a group at a time. */
      if (below && k % TAG_GROUP == 0 && k + TAG_GROUP <= khi + 1 && !group_after (tags + k, gen)) {
        k += TAG_GROUP - 1;
        continue;
      }
      uint64_t blo = (p * RCT_PER_PAGE + k) * g;
      if (RCT_GEN (tags[k]) > gen)
        { if (add (&o, blo, blo + g, (tags[k] & RCT_ZERO_KIND) ? VHDKIT_CHANGE_ZERO : VHDKIT_CHANGE_DATA) == -1) goto nomem; }
      else if (blo + g > grown)
        { if (add (&o, grown > blo ? grown : blo, blo + g, VHDKIT_CHANGE_DATA) == -1) goto nomem; }
    }
    p++;
  }
  free (tags);
  tags = NULL;
  /* RCT-6: an L1 page rebuilt from its leaves cannot tell a leaf page
   * that was lost (zeroed) from one never written; only the count of
   * pages with tags over every L1 page can.  Pages that were not
   * rebuilt are their own proof. */
  if (view && l1c.rebuilt) {
    if (rct_ready (r) == -1) goto fail;
    if (LOAD_ACQUIRE (&r->state) != RCT_OK) {
      invalid (r);
      goto fail;
    }
  }
  rct_l1_cursor_free (&l1c);
  if (o.full) {
    /* §3.5: stop where the last reported range ends. */
    c->processed = c->offsets[c->count - 1] + c->lengths[c->count - 1] - off;
  }
  else {
    if (o.open && push (&o) == -1) goto nomem;
    c->processed = len;
  }
  return 0;
 nomem:
  set_error_errno (ENOMEM, "%s: the answer needs more memory than there is", path);
 fail:
  free (tags);
  rct_l1_cursor_free (&l1c);
  changes_free (c);
  return -1;
}

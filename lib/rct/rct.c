/* Resilient change tracking: the tracking files of one image, their
 * recovery on open, and the write path.
 *
 * What it owns: IMAGE.rct (header copies, L1 summary pages, leaf pages
 * of per-block generation tags) and IMAGE.mrt (the coarse write-ahead
 * map: one bit per leaf page), both through the io layer so the crash
 * simulator covers them.  docs/FORMAT-rct.md gives the layout and the
 * invariants RCT-1..RCT-8 cited below.
 *
 * Locking: called with the disk lock held; the files are flock()ed
 * (exclusive for a writer, shared for a reader) for the life of the
 * handle (INV-5).
 *
 * Crash behaviour: before any write reaches the image, the MRT bit of
 * every leaf page it touches is durable (RCT-2); tags change in memory
 * and become durable at flush, after which the bits are cleared (RCT-3).
 * Recovery marks every block of a page whose bit is set as changed in
 * the current generation (RCT-4), so a crash over-reports only those
 * pages and never loses a change. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "rct.h"
#include "endian.h"

static char *
sidecar (const char *path, const char *ext)
{
  char *p = NULL;
  if (asprintf (&p, "%s%s", path, ext) == -1) return NULL;
  return p;
}

static int
fsync_dir (const char *path)
{
  char *c = strdup (path);
  if (!c) return -1;
  int fd = open (dirname (c), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free (c);
  if (fd == -1) return -1;
  int r = fsync (fd);
  close (fd);
  return r;
}

/* ---- header (RCT-1: two copies, sequence numbers, CRC) ---- */

/* Write the copy that is not current with sequence + 1 and flush; then
 * the other the same way, so that both copies hold the new contents: a
 * torn write leaves the previous contents in the other copy, and damage
 * to one copy later never falls back to an older generation counter
 * (which would issue an RCT ID twice). */
static int
write_header (struct rct *r)
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

static void
fingerprint (struct vhdkit_disk *d, struct rct_header *h)
{
  if (d->drv->data_write_guid) {
    h->image_format = VHDKIT_FORMAT_VHDX;
    d->drv->data_write_guid (d, h->dwg.b);
    memset (h->pending_dwg.b, 0, 16);
  }
  else {
    struct stat st;
    h->image_format = VHDKIT_FORMAT_RAW;
    if (stat (d->path, &st) == 0) {
      h->st_dev = (uint64_t) st.st_dev;
      h->st_ino = (uint64_t) st.st_ino;
      h->st_size = (uint64_t) st.st_size;
      h->st_mtime_ns = (uint64_t) st.st_mtim.tv_sec * 1000000000u + (uint64_t) st.st_mtim.tv_nsec;
      h->st_ctime_ns = (uint64_t) st.st_ctim.tv_sec * 1000000000u + (uint64_t) st.st_ctim.tv_nsec;
    }
  }
}

/* ---- geometry and arrays ---- */

static void
free_arrays (struct rct *r)
{
  free (r->l1); free (r->l1s); free (r->l1t); free (r->l2); free (r->l1_dirty);
  free (r->mrt); free (r->recovered); free (r->touched);
  r->l1 = r->l1s = r->l2 = NULL;
  r->l1t = NULL;
  r->l1_dirty = r->mrt = r->recovered = r->touched = NULL;
  if (r->cache) {
    for (size_t i = 0; i < r->cache_cap; i++) free (r->cache[i].tags);
    free (r->cache);
  }
  r->cache = NULL;
  r->cache_cap = r->cache_count = 0;
}

/* Size the in-memory arrays for SIZE, keeping what is there. */
static int
size_arrays (struct rct *r, uint64_t size)
{
  uint64_t np = div_round_up (div_round_up (size, r->h.granularity), RCT_PER_PAGE);
  uint64_t nl1 = div_round_up (np, RCT_L1_PER_PAGE);
  uint64_t nm = div_round_up (np, MRT_BITS_PER_PAGE);
  if (np <= r->npages && r->l1) return 0;
  uint32_t *l1 = realloc (r->l1, (np ? np : 1) * 4);
  if (!l1) goto nomem;
  memset (l1 + r->npages, 0, (np - r->npages) * 4);
  r->l1 = l1;
  uint32_t *l1s = realloc (r->l1s, (np ? np : 1) * 4);
  if (!l1s) goto nomem;
  memset (l1s + r->npages, 0, (np - r->npages) * 4);
  r->l1s = l1s;
  uint16_t *l1t = realloc (r->l1t, (np ? np : 1) * 2);
  if (!l1t) goto nomem;
  memset (l1t + r->npages, 0, (np - r->npages) * 2);
  r->l1t = l1t;
  uint32_t *l2 = realloc (r->l2, (nl1 ? nl1 : 1) * 4);
  if (!l2) goto nomem;
  memset (l2 + r->nl1, 0, (nl1 - r->nl1) * 4);
  r->l2 = l2;
  uint8_t *ld = realloc (r->l1_dirty, nl1 ? nl1 : 1);
  if (!ld) goto nomem;
  memset (ld + r->nl1, 0, nl1 - r->nl1);
  r->l1_dirty = ld;
  uint8_t *m = realloc (r->mrt, (nm ? nm : 1) * (MRT_BITS_PER_PAGE / 8));
  if (!m) goto nomem;
  memset (m + r->nmrt * (MRT_BITS_PER_PAGE / 8), 0, (nm - r->nmrt) * (MRT_BITS_PER_PAGE / 8));
  r->mrt = m;
  uint8_t *rc = realloc (r->recovered, div_round_up (np ? np : 1, 8));
  if (!rc) goto nomem;
  memset (rc + div_round_up (r->npages, 8), 0, div_round_up (np ? np : 1, 8) - div_round_up (r->npages, 8));
  r->recovered = rc;
  uint8_t *tc = realloc (r->touched, div_round_up (np ? np : 1, 8));
  if (!tc) goto nomem;
  memset (tc + div_round_up (r->npages, 8), 0, div_round_up (np ? np : 1, 8) - div_round_up (r->npages, 8));
  r->touched = tc;
  r->npages = np;
  r->nl1 = nl1;
  r->nmrt = nm;
  return 0;
 nomem:
  set_error_errno (ENOMEM, "%s: tracking state", r->path);
  return -1;
}

static inline bool bit (const uint8_t *b, uint64_t i) { return (b[i / 8] >> (i % 8)) & 1; }
static inline void setbit (uint8_t *b, uint64_t i) { b[i / 8] |= (uint8_t) (1u << (i % 8)); }

/* The MRT bit of leaf page P lives in MRT page P / MRT_BITS_PER_PAGE. */
static inline bool mrt_get (const struct rct *r, uint64_t p)
{
  return bit (r->mrt + (p / MRT_BITS_PER_PAGE) * (MRT_BITS_PER_PAGE / 8), p % MRT_BITS_PER_PAGE);
}
static inline void mrt_set (struct rct *r, uint64_t p)
{
  setbit (r->mrt + (p / MRT_BITS_PER_PAGE) * (MRT_BITS_PER_PAGE / 8), p % MRT_BITS_PER_PAGE);
}
static inline void mrt_clear (struct rct *r, uint64_t p)
{
  r->mrt[(p / MRT_BITS_PER_PAGE) * (MRT_BITS_PER_PAGE / 8) + (p % MRT_BITS_PER_PAGE) / 8] &=
    (uint8_t) ~(1u << (p % 8));
}

/* ---- the summary (RCT-9) ----
 * Every tag written is the current generation, never older than a tag
 * already in the page, so the summary of a page follows each write in
 * constant time: block K becomes the newest, and the former newest
 * generation becomes the newest of the others. */

static void
sum_dirty (struct rct *r, uint64_t p)
{
  r->l1_dirty[p / RCT_L1_PER_PAGE] = 1;
  if (r->l2[p / RCT_L1_PER_PAGE] < r->l1[p]) r->l2[p / RCT_L1_PER_PAGE] = r->l1[p];
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
  if (r->l1[p] == 0) r->leaves_with_tags++;
  if ((r->l1t[p] & ~RCT_TOP_ZERO) != k) r->l1s[p] = r->l1[p];
  if (r->l1[p] == g && r->l1t[p] == top) return;
  r->l1[p] = g;
  r->l1t[p] = top;
  sum_dirty (r, p);
}

/* The summary of leaf page P computed from all its TAGS. */
static void
sum_from_tags (struct rct *r, uint64_t p, const uint32_t *tags)
{
  uint32_t max = 0, second = 0;
  unsigned top = 0;
  for (unsigned k = 0; k < RCT_PER_PAGE; k++) {
    uint32_t g = RCT_GEN (tags[k]);
    if (g > max) { second = max; max = g; top = k; }
    else if (g > second) second = g;
  }
  if (r->l1[p] == 0 && max > 0) r->leaves_with_tags++;
  if (r->l1[p] == 0 && max == 0) return;
  r->l1[p] = max;
  r->l1s[p] = second;
  r->l1t[p] = (uint16_t) (top | (tags[top] & RCT_ZERO_KIND ? RCT_TOP_ZERO : 0));
  sum_dirty (r, p);
}

/* ---- the read-only mapping ----
 * Queries read leaf pages through a shared read-only mapping of
 * IMAGE.rct: one page fault instead of one system call per changed page.
 * Pages written later are read with pread past the mapped length; the
 * mapping is dropped before any truncation (a new epoch). */

static void
unmap (struct rct *r)
{
  if (r->map) munmap ((void *) r->map, r->map_len);
  r->map = NULL;
  r->map_len = 0;
}

static void
map_file (struct rct *r)
{
  uint64_t size;
  unmap (r);
  if (io_get_size (r->io, &size) == -1 || size <= r->leaf_off || size > SIZE_MAX)
    return;
  void *m = mmap (NULL, (size_t) size, PROT_READ, MAP_SHARED, r->io->fd, 0);
  if (m == MAP_FAILED) return;       /* pread still works */
  madvise (m, (size_t) size, MADV_RANDOM);
  r->map = m;
  r->map_len = (size_t) size;
}

/* ---- leaf pages ---- */

static size_t
cache_slot (const struct rct *r, uint64_t page)
{
  size_t i = (size_t) ((page * UINT64_C (0x9E3779B97F4A7C15)) >> 17) & (r->cache_cap - 1);
  while (r->cache[i].page != UINT64_MAX && r->cache[i].page != page)
    i = (i + 1) & (r->cache_cap - 1);
  return i;
}

static int
cache_grow (struct rct *r, bool drop_clean)
{
  size_t cap = r->cache_cap ? (drop_clean ? r->cache_cap : r->cache_cap * 2) : 256;
  struct rct_leaf *old = r->cache;
  size_t oldcap = r->cache_cap;
  struct rct_leaf *n = malloc (cap * sizeof *n);
  if (!n) return -1;
  for (size_t i = 0; i < cap; i++) { n[i].page = UINT64_MAX; n[i].tags = NULL; n[i].dirty = false; }
  r->cache = n;
  r->cache_cap = cap;
  r->cache_count = 0;
  for (size_t i = 0; i < oldcap; i++) {
    if (old[i].page == UINT64_MAX) continue;
    if (drop_clean && !old[i].dirty) { free (old[i].tags); continue; }
    n[cache_slot (r, old[i].page)] = old[i];
    r->cache_count++;
  }
  free (old);
  return 0;
}

/* Read leaf page P into TAGS.  A damaged page, or a missing one the L1
 * summary says has tags, counts as all changed now: the conservative
 * answer (RCT-6). */
int
rct_load_leaf (struct rct *r, uint64_t p, uint32_t *tags)
{
  if (r->cache_cap) {
    size_t i = cache_slot (r, p);
    if (r->cache[i].page == p) {
      memcpy (tags, r->cache[i].tags, RCT_PER_PAGE * 4);
      return 0;
    }
  }
  uint8_t buf[RCT_PAGE];
  const uint8_t *b = buf;
  uint64_t at = r->leaf_off + p * RCT_PAGE;
  /* The mapping only when no write of this process can be pending in
   * the io layer (the crash simulator keeps unsynced writes aside). */
  if (r->map && at + RCT_PAGE <= r->map_len && !io_sim_enabled ())
    b = r->map + at;
  else {
    ssize_t n = io_pread (r->io, buf, sizeof buf, at);
    if (n < 0) {
      set_error_errno (errno, "%s: read tracking page %" PRIu64, r->path, p);
      return -1;
    }
    memset (buf + n, 0, sizeof buf - (size_t) n);
  }
  int c = rct_check_page (b, RCT_LEAF_MAGIC, p, rct_epoch_tag (&r->h.epoch));
  if (c == 0) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy (tags, b, RCT_PER_PAGE * 4);
#else
    for (int k = 0; k < RCT_PER_PAGE; k++) tags[k] = get_le32 (b + 4 * k);
#endif
    return 0;
  }
  if (c == 1 && r->l1[p] == 0) {
    memset (tags, 0, RCT_PER_PAGE * 4);
    return 0;
  }
  for (int k = 0; k < RCT_PER_PAGE; k++) tags[k] = r->h.cur;
  return 1;
}

/* The cached, modifiable copy of leaf page P. */
static uint32_t *
leaf_for_write (struct rct *r, uint64_t p)
{
  if (!r->cache_cap && cache_grow (r, false) == -1) goto nomem;
  size_t i = cache_slot (r, p);
  if (r->cache[i].page == p) {
    r->cache[i].dirty = true;
    return r->cache[i].tags;
  }
  /* Drop clean pages now and then; when (almost) all are dirty, wait
   * until the cache has doubled, or every new page would rehash it. */
  if (r->cache_count >= 16384 && r->cache_count >= r->purge_at) {
    if (cache_grow (r, true) == -1) goto nomem;
    r->purge_at = r->cache_count * 2;
    i = cache_slot (r, p);
  }
  if ((r->cache_count + 1) * 2 > r->cache_cap) {
    if (cache_grow (r, false) == -1) goto nomem;
    i = cache_slot (r, p);
  }
  uint32_t *t = malloc (RCT_PER_PAGE * 4);
  if (!t) goto nomem;
  int sub = rct_load_leaf (r, p, t);
  if (sub == -1) { free (t); return NULL; }
  /* A damaged page now counts as all changed: so must its summary. */
  if (sub == 1) sum_from_tags (r, p, t);
  r->cache[i].page = p;
  r->cache[i].tags = t;
  r->cache[i].dirty = true;
  r->cache_count++;
  return t;
 nomem:
  set_error_errno (ENOMEM, "%s: tracking cache", r->path);
  return NULL;
}

/* ---- loading ---- */

/* Summary entry K of an L1 page (RCT-9): newest, newest of the others,
 * top block. */
static void
l1_get (const uint8_t *b, unsigned k, uint32_t *max, uint32_t *second, uint16_t *top)
{
  *max = get_le32 (b + RCT_L1_ENTRY * k);
  *second = get_le32 (b + RCT_L1_ENTRY * k + 4);
  *top = get_le16 (b + RCT_L1_ENTRY * k + 8);
}

static int
load_l1 (struct rct *r)
{
  uint8_t b[RCT_PAGE];
  uint32_t *tags = malloc (RCT_PER_PAGE * 4);
  if (!tags) { set_error_errno (ENOMEM, "%s", r->path); return -1; }
  for (uint64_t j = 0; j < r->nl1; j++) {
    ssize_t n = io_pread (r->io, b, sizeof b, RCT_L1_OFF + j * RCT_PAGE);
    if (n < 0) { free (tags); set_error_errno (errno, "%s: read", r->path); return -1; }
    memset (b + n, 0, sizeof b - (size_t) n);
    int c = rct_check_page (b, RCT_L1_MAGIC, j, rct_epoch_tag (&r->h.epoch));
    uint64_t first = j * RCT_L1_PER_PAGE;
    r->l2[j] = 0;
    for (uint64_t k = 0; k < RCT_L1_PER_PAGE && first + k < r->npages; k++) {
      uint64_t p = first + k;
      uint32_t max = 0, second = 0;
      uint16_t top = 0;
      if (c == 0) {
        l1_get (b, (unsigned) k, &max, &second, &top);
        /* Values a writer never produces: rebuild from the leaf. */
        if (max > r->h.cur || second > max || (top & ~RCT_TOP_ZERO) >= RCT_PER_PAGE)
          goto rebuild;
        r->l1[p] = max; r->l1s[p] = second; r->l1t[p] = top;
      }
      else if (c == -1 || (c == 1 && j < r->h.max_l1)) {
      rebuild:
        /* A damaged or lost summary page is rebuilt from its leaves
         * (a damaged leaf counts as all changed now). */
        r->l1[p] = 0;
        uint8_t lb[RCT_PAGE];
        ssize_t m = io_pread (r->io, lb, sizeof lb, r->leaf_off + p * RCT_PAGE);
        if (m < 0) { free (tags); set_error_errno (errno, "%s: read", r->path); return -1; }
        memset (lb + m, 0, sizeof lb - (size_t) m);
        int lc = rct_check_page (lb, RCT_LEAF_MAGIC, p, rct_epoch_tag (&r->h.epoch));
        if (lc == 0)
          for (int t = 0; t < RCT_PER_PAGE; t++) tags[t] = get_le32 (lb + 4 * t);
        else
          for (int t = 0; t < RCT_PER_PAGE; t++) tags[t] = lc == -1 ? r->h.cur : 0;
        r->l1_dirty[j] = 1;
        sum_from_tags (r, p, tags);
      }
      if (r->l1[p] > r->l2[j]) r->l2[j] = r->l1[p];
    }
  }
  free (tags);
  return 0;
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

/* ---- flush (RCT-3) ---- */

/* Write bit page J of IMAGE.mrt with BITS (MRT_BITS_PER_PAGE / 8
 * bytes), sealed for the current session (RCT-10).  Not synced. */
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

/* Write the header page and bit pages [FROM, r->nmrt) from the durable
 * bits in memory, and sync: the map of the current session. */
static int
mrt_put_session (struct rct *r, uint64_t from)
{
  uint8_t b[RCT_PAGE];
  rct_encode_mrt_header (b, &r->h.epoch, &r->h.session, r->nmrt);
  if (io_pwrite (r->mio, b, sizeof b, 0) == -1) {
    set_error_errno (errno, "%s: write the write-ahead map", r->mrt_path);
    return -1;
  }
  for (uint64_t j = from; j < r->nmrt; j++)
    if (mrt_put_page (r, j, r->mrt + j * (MRT_BITS_PER_PAGE / 8)) == -1) return -1;
  return mrt_sync (r);
}

/* The first change of a writing session (RCT-10): a new session GUID,
 * the write-ahead map written for it, then the header marked dirty with
 * that GUID.  A crash between the two leaves a header that says the
 * last session closed cleanly, which needs no map.  Until this succeeds
 * the session has not begun and the next change tries again. */
static int
session_begin (struct rct *r)
{
  if (r->session_marked) return 0;
  if (guid_generate (&r->h.session) == -1) {
    set_error_errno (errno, "%s: random GUID", r->path);
    return -1;
  }
  if (mrt_put_session (r, 0) == -1) return -1;
  r->h.session_dirty = 1;
  if (write_header (r) == -1) return -1;
  r->session_marked = true;
  return 0;
}

static int
flush_locked (struct rct *r, bool all)
{
  uint8_t b[RCT_PAGE];
  bool wrote = false, grew = false;
  for (size_t i = 0; i < r->cache_cap; i++) {
    struct rct_leaf *l = &r->cache[i];
    if (l->page == UINT64_MAX || !l->dirty) continue;
    memset (b, 0, sizeof b);
    for (int k = 0; k < RCT_PER_PAGE; k++) put_le32 (b + 4 * k, l->tags[k]);
    rct_seal_page (b, RCT_LEAF_MAGIC, l->page, rct_epoch_tag (&r->h.epoch));
    if (io_pwrite (r->io, b, sizeof b, r->leaf_off + l->page * RCT_PAGE) == -1) goto err;
    wrote = true;
    if (l->page + 1 > r->h.max_leaf) { r->h.max_leaf = l->page + 1; grew = true; }
  }
  for (uint64_t j = 0; j < r->nl1; j++) {
    if (!r->l1_dirty[j]) continue;
    memset (b, 0, sizeof b);
    uint64_t first = j * RCT_L1_PER_PAGE;
    for (uint64_t k = 0; k < RCT_L1_PER_PAGE && first + k < r->npages; k++) {
      put_le32 (b + RCT_L1_ENTRY * k, r->l1[first + k]);
      put_le32 (b + RCT_L1_ENTRY * k + 4, r->l1s[first + k]);
      put_le16 (b + RCT_L1_ENTRY * k + 8, r->l1t[first + k]);
    }
    rct_seal_page (b, RCT_L1_MAGIC, j, rct_epoch_tag (&r->h.epoch));
    if (io_pwrite (r->io, b, sizeof b, RCT_L1_OFF + j * RCT_PAGE) == -1) goto err;
    wrote = true;
    if (j + 1 > r->h.max_l1) { r->h.max_l1 = j + 1; grew = true; }
  }
  if (wrote && io_sync (r->io) == -1) goto err;
  /* Only what is durable is clean: after a failed write or sync every
   * page stays dirty and the next flush writes it again. */
  for (size_t i = 0; i < r->cache_cap; i++)
    if (r->cache[i].page != UINT64_MAX) r->cache[i].dirty = false;
  memset (r->l1_dirty, 0, r->nl1 ? r->nl1 : 1);
  if (r->h.leaves_written != r->leaves_with_tags || r->h.leaves_span != r->npages) {
    r->h.leaves_written = r->leaves_with_tags;
    r->h.leaves_span = r->npages;
    grew = true;
  }
  if (grew) r->hdr_dirty = true;
  if (r->hdr_dirty) {
    if (write_header (r) == -1) return -1;
    r->hdr_dirty = false;
  }
  /* Tags are durable: the write-ahead bits may go (RCT-3).  A page
   * written since the last flush keeps its bit, because it is likely to
   * be written again and setting the bit costs a synchronous write; its
   * bit goes at the first flush after an interval without writes, and
   * every bit goes at a clean close (ALL). */
  /* The bits go from memory first: if writing the page fails, its bits
   * on disk are unknown, and the next write there records them again
   * (RCT-2: memory never claims a bit the file may not have). */
  uint64_t changed_lo = UINT64_MAX, changed_hi = 0;
  for (uint64_t p = 0; p < r->npages; p++) {
    if (!mrt_get (r, p)) continue;
    if (bit (r->touched, p) && !all) continue;
    mrt_clear (r, p);
    uint64_t j = p / MRT_BITS_PER_PAGE;
    if (j < changed_lo) changed_lo = j;
    if (j + 1 > changed_hi) changed_hi = j + 1;
  }
  memset (r->touched, 0, div_round_up (r->npages ? r->npages : 1, 8));
  if (changed_lo != UINT64_MAX) {
    for (uint64_t j = changed_lo; j < changed_hi; j++)
      if (mrt_put_page (r, j, r->mrt + j * (MRT_BITS_PER_PAGE / 8)) == -1) return -1;
    if (mrt_sync (r) == -1) return -1;
  }
  if (r->cache_count > 4096) cache_grow (r, true);
  return 0;
 err:
  set_error_errno (errno, "%s: write tracking state", r->path);
  return -1;
}

int
rct_flush (struct vhdkit_disk *d)
{
  struct rct *r = d->rct;
  if (!r || !r->writable || r->state != RCT_OK) return 0;
  return flush_locked (r, false);
}

/* ---- new epochs ---- */

static void
reset_reason (struct rct *r, const char *why)
{
  snprintf (r->why, sizeof r->why, "%s", why);
}

/* Start a new epoch in place (RCT-7): new GUID, generation 1, no tags,
 * no write-ahead bits.  The old tags are cut off by truncation. */
static int
new_epoch (struct rct *r, struct vhdkit_disk *d, const char *why)
{
  struct rct_header h = { 0 };
  h.seq = r->h.seq;
  h.granularity = r->h.granularity;
  if (!h.granularity || h.granularity < d->lss) h.granularity = d->lss > VHDKIT_RCT_DEFAULT_GRANULARITY ? d->lss : VHDKIT_RCT_DEFAULT_GRANULARITY;
  if (guid_generate (&h.epoch) == -1) {
    set_error_errno (errno, "%s: random GUID", r->path);
    return -1;
  }
  h.cur = 1;
  h.nsizes = 1;
  h.sizes[0].gen = 1;
  h.sizes[0].min = h.sizes[0].last = d->size;
  snprintf (h.reason, sizeof h.reason, "%s", why);
  r->h = h;
  fingerprint (d, &r->h);
  unmap (r);
  if (io_truncate (r->io, 2 * RCT_HDR_SIZE) == -1 || io_truncate (r->mio, 0) == -1 ||
      io_sync (r->mio) == -1) {
    set_error_errno (errno, "%s: reset tracking state", r->path);
    return -1;
  }
  /* The next change begins a session of the new epoch (RCT-10). */
  r->session_marked = false;
  r->hdr_dirty = false;
  if (write_header (r) == -1) return -1;
  free_arrays (r);
  r->npages = r->nl1 = r->nmrt = 0;
  r->leaf_off = round_up (RCT_L1_OFF + rct_l1_pages (r->h.granularity) * RCT_PAGE, MiB);
  r->leaves_with_tags = 0;
  if (size_arrays (r, d->size) == -1) return -1;
  reset_reason (r, why);
  return 0;
}

/* ---- attach / detach ---- */

static void
release (struct rct *r)
{
  if (!r) return;
  unmap (r);
  if (r->io) io_close (r->io);
  if (r->mio) io_close (r->mio);
  free_arrays (r);
  free (r->path);
  free (r->mrt_path);
  free (r);
}

/* A read-only view that cannot answer (RCT_INVALID) or a busy one. */
static int
degrade (struct rct *r, enum rct_state st, const char *why)
{
  r->state = st;
  reset_reason (r, why);
  return 0;
}

/* A raw image is unchanged if its size and modification time are: a
 * move (INV-6) changes ctime and, across filesystems, the inode, so those
 * are recorded but not compared. */
static bool
raw_matches (const struct rct_header *h, const char *path)
{
  struct stat st;
  if (stat (path, &st) == -1) return false;
  return h->st_size == (uint64_t) st.st_size &&
    h->st_mtime_ns == (uint64_t) st.st_mtim.tv_sec * 1000000000u + (uint64_t) st.st_mtim.tv_nsec;
}

static int
attach_files (struct vhdkit_disk *d, struct rct *r)
{
  char why[400];
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
  }
  uint64_t fsize = 0;
  io_get_size (r->io, &fsize);
  if (damaged && version > 0 && version < RCT_VERSION)
    snprintf (why, sizeof why, "the tracking file %s has format version %" PRIu32 ", which this vhdkit replaces with version %d",
              r->path, version, RCT_VERSION);
  else if (damaged)
    snprintf (why, sizeof why, "the tracking file %s is damaged (no valid header)", r->path);
  else if (r->h.granularity < d->lss) {
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
  if (!damaged && size_arrays (r, d->size) == -1) return -1;
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
    if (!r->mio) return -1;
    return new_epoch (r, d, why);
  }
  if (load_l1 (r) == -1)
    return -1;
  r->leaves_with_tags = 0;
  for (uint64_t p = 0; p < r->npages; p++)
    if (r->l1[p]) r->leaves_with_tags++;
  /* RCT-6: fewer pages with tags than were durably written means pages
   * (and their summary) were lost: zeroed pages would read as never
   * written. */
  if (r->h.leaves_span == r->npages && r->leaves_with_tags < r->h.leaves_written) {
    snprintf (why, sizeof why, "the tracking file %s has lost pages of tags (%" PRIu64 " of %" PRIu64 " remain)",
              r->path, r->leaves_with_tags, r->h.leaves_written);
    if (!r->writable) return degrade (r, RCT_INVALID, why);
    return new_epoch (r, d, why);
  }

  /* INV-4: was the image changed by software that does not track? */
  bool foreign = false;
  if (d->drv->data_write_guid) {
    struct guid now;
    d->drv->data_write_guid (d, now.b);
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
                d->path, a, e);
    }
  }
  else if (!raw_matches (&r->h, d->path) && !r->h.session_dirty) {
    foreign = true;
    snprintf (why, sizeof why, "%s was changed by software that does not track changes (its size or modification time differs from what tracking recorded)",
              d->path);
  }
  if (foreign) {
    if (!r->writable) return degrade (r, RCT_INVALID, why);
    return new_epoch (r, d, why);
  }

  /* RCT-4: recovery from the write-ahead map. */
  bool any = false;
  for (uint64_t p = 0; p < r->npages; p++)
    if (mrt_get (r, p)) { any = true; break; }
  if (any) {
    for (uint64_t p = 0; p < r->npages; p++) {
      if (!mrt_get (r, p)) continue;
      if (r->writable) {
        uint32_t *t = leaf_for_write (r, p);
        if (!t) return -1;
        for (int k = 0; k < RCT_PER_PAGE; k++) t[k] = r->h.cur;
        sum_from_tags (r, p, t);
      }
      else {
        setbit (r->recovered, p);
        r->any_recovered = true;
      }
    }
    snprintf (r->why, sizeof r->why, "recovered after an unclean close");
    if (r->writable && flush_locked (r, true) == -1) return -1;
  }
  /* A writer that recovered holds every tag durably and no bit: the
   * files describe the image as a clean close would (RCT-10), so the
   * next session's map may replace this one. */
  if (r->writable && r->h.session_dirty) {
    r->h.session_dirty = 0;
    fingerprint (d, &r->h);
    if (write_header (r) == -1) return -1;
  }
  map_file (r);
  return 0;
}

int
rct_attach (struct vhdkit_disk *d)
{
  char *path = sidecar (d->path, ".rct");
  if (!path) { set_error_errno (ENOMEM, "%s", d->path); return -1; }
  if (access (path, F_OK) == -1) { free (path); return 0; }
  struct rct *r = calloc (1, sizeof *r);
  if (!r) { free (path); set_error_errno (ENOMEM, "%s", d->path); return -1; }
  r->d = d;
  r->path = path;
  r->mrt_path = sidecar (d->path, ".mrt");
  r->writable = d->writable;
  r->state = RCT_OK;
  d->rct = r;
  if (!r->mrt_path) goto nomem;
  r->io = io_open (path, r->writable ? O_RDWR : O_RDONLY, 0);
  if (!r->io) {
    set_error_errno (errno, "%s: open", path);
    goto fail;
  }
  if (io_lock (r->io, r->writable) == -1) {
    if (errno != EWOULDBLOCK) { set_error_errno (errno, "%s: lock", path); goto fail; }
    if (r->writable) {
      set_error (VHDKIT_RC_IN_USE, 0, "%s: the tracking files are held by another writer", path);
      goto fail;
    }
    char why[300];
    snprintf (why, sizeof why, "%s is open for writing by another process; ask that process, or retry when it closes", d->path);
    return degrade (r, RCT_BUSY, why);
  }
  if (attach_files (d, r) == -1) goto fail;
  return 0;
 nomem:
  set_error_errno (ENOMEM, "%s", d->path);
 fail:
  error_prefix ("change tracking");
  d->rct = NULL;
  release (r);
  return -1;
}

int
rct_detach (struct vhdkit_disk *d)
{
  struct rct *r = d->rct;
  if (!r) return 0;
  int ret = 0;
  if (r->writable && r->state == RCT_OK) {
    if (flush_locked (r, true) == -1) ret = -1;
    else if (r->session_marked || r->h.session_dirty) {
      /* Clean close: record the image as it is now. */
      r->h.session_dirty = 0;
      fingerprint (d, &r->h);
      if (write_header (r) == -1) ret = -1;
    }
  }
  d->rct = NULL;
  release (r);
  return ret;
}

/* ---- the write path (RCT-2) ---- */

int
rct_note (struct vhdkit_disk *d, uint64_t off, uint64_t len, bool zero)
{
  struct rct *r = d->rct;
  if (!r || !len) return 0;
  if (r->state != RCT_OK || !r->writable) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: internal error: a write with tracking that cannot record it", d->path);
    return -1;
  }
  if (session_begin (r) == -1) return -1;
  uint64_t g = r->h.granularity;
  uint64_t b0 = off / g, b1 = div_round_up (off + len, g);
  uint64_t p0 = b0 / RCT_PER_PAGE, p1 = (b1 - 1) / RCT_PER_PAGE;
  if (p1 >= r->npages && size_arrays (r, off + len) == -1) return -1;
  /* RCT-2: the bits on disk first; memory says "durable" only after the
   * sync, so a failed record is tried again by the next write. */
  bool need = false;
  for (uint64_t p = p0; p <= p1; p++) {
    setbit (r->touched, p);
    if (!mrt_get (r, p)) need = true;
  }
  if (need) {
    uint8_t bits[MRT_BITS_PER_PAGE / 8];
    for (uint64_t j = p0 / MRT_BITS_PER_PAGE; j <= p1 / MRT_BITS_PER_PAGE; j++) {
      memcpy (bits, r->mrt + j * sizeof bits, sizeof bits);
      uint64_t lo = p0 > j * MRT_BITS_PER_PAGE ? p0 : j * MRT_BITS_PER_PAGE;
      uint64_t hi = p1 < (j + 1) * MRT_BITS_PER_PAGE - 1 ? p1 : (j + 1) * MRT_BITS_PER_PAGE - 1;
      for (uint64_t p = lo; p <= hi; p++) setbit (bits, p % MRT_BITS_PER_PAGE);
      if (memcmp (bits, r->mrt + j * sizeof bits, sizeof bits) != 0 &&
          mrt_put_page (r, j, bits) == -1)
        return -1;
    }
    if (mrt_sync (r) == -1) return -1;
    for (uint64_t p = p0; p <= p1; p++) mrt_set (r, p);
  }
  /* A zero marks as "zero" only the blocks it covers whole: a block it
   * covers in part still holds data (RCT kinds are advice to skip reads,
   * so they must never claim zeros that are not there). */
  uint64_t z0 = zero ? div_round_up (off, g) : UINT64_MAX, z1 = zero ? (off + len) / g : 0;
  for (uint64_t p = p0; p <= p1; p++) {
    uint32_t *t = leaf_for_write (r, p);
    if (!t) return -1;
    uint64_t lo = p == p0 ? b0 % RCT_PER_PAGE : 0;
    uint64_t hi = p == p1 ? (b1 - 1) % RCT_PER_PAGE : RCT_PER_PAGE - 1;
    for (uint64_t k = lo; k <= hi; k++) {
      uint64_t b = p * RCT_PER_PAGE + k;
      t[k] = r->h.cur | (b >= z0 && b < z1 ? RCT_ZERO_KIND : 0);
      sum_note (r, p, (unsigned) k, t[k]);
    }
  }
  return 0;
}

int
rct_before_data_write_guid (struct vhdkit_disk *d, const uint8_t guid[16])
{
  struct rct *r = d->rct;
  if (!r || !r->writable || r->state != RCT_OK) return 0;
  memcpy (r->h.pending_dwg.b, guid, 16);
  /* The session's first header write carries the pending value too. */
  if (!r->session_marked) return session_begin (r);
  return write_header (r);
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
rct_resize_prepare (struct vhdkit_disk *d, uint64_t new_size)
{
  struct rct *r = d->rct;
  if (!r || r->state != RCT_OK) return 0;
  if (session_begin (r) == -1) return -1;
  struct rct_header *h = &r->h;
  /* Per generation: the smallest size it passed through and its last. */
  struct rct_size *last = &h->sizes[h->nsizes - 1];
  if (last->gen == h->cur) {
    if (new_size < last->min) last->min = new_size;
    last->last = new_size;
  }
  else
    h->sizes[h->nsizes++] = (struct rct_size) { h->cur,
      new_size < d->size ? new_size : d->size, new_size };
  if (h->nsizes >= RCT_SIZE_HISTORY) {
    /* Out of room: start over (documented in FORMAT-rct.md). */
    if (flush_locked (r, true) == -1) return -1;
    return new_epoch (r, d, "the disk was resized more often than tracking can record");
  }
  return write_header (r);
}

int
rct_resized (struct vhdkit_disk *d, uint64_t old_size, uint64_t new_size)
{
  struct rct *r = d->rct;
  if (!r || r->state != RCT_OK) return 0;
  uint64_t old_nmrt = r->nmrt;
  if (size_arrays (r, new_size) == -1) return -1;
  /* The grown disk's bit pages join the session's map before any write
   * can reach the new area (RCT-10). */
  if (r->session_marked && r->nmrt > old_nmrt) return mrt_put_session (r, old_nmrt);
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

/* ---- public calls ---- */

#define WITH_LOCK(d, body) do { pthread_mutex_lock (&(d)->lock); int r_ = (body); \
    pthread_mutex_unlock (&(d)->lock); return r_; } while (0)

static int
enable_locked (struct vhdkit_disk *d, uint32_t g)
{
  if (!d->writable) {
    set_error (VHDKIT_RC_ACCESS_DENIED, 0, "%s: enabling change tracking needs the image open for writing", d->path);
    return -1;
  }
  if (d->rct) {
    set_error (VHDKIT_RC_INVALID_STATE, 0, "%s: change tracking is already enabled", d->path);
    return -1;
  }
  if (g == 0) g = VHDKIT_RCT_DEFAULT_GRANULARITY;
  if (!is_pow2 (g) || g < d->lss || g > VHDKIT_RCT_MAX_GRANULARITY) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: tracking granularity %" PRIu32
               " must be a power of two from the sector size %" PRIu32 " to 2 MiB", d->path, g, d->lss);
    return -1;
  }
  char *path = sidecar (d->path, ".rct"), *mpath = sidecar (d->path, ".mrt");
  struct io *io = NULL, *mio = NULL;
  int ret = -1;
  if (!path || !mpath) { set_error_errno (ENOMEM, "%s", d->path); goto out; }
  /* Leftovers of an earlier, disabled or broken tracking go. */
  unlink (mpath);
  io = io_open (path, O_RDWR | O_CREAT | O_EXCL, 0666);
  if (!io) {
    if (errno == EEXIST)
      set_error (VHDKIT_RC_INVALID_STATE, 0, "%s: %s exists but could not be used; disable tracking first", d->path, path);
    else
      set_error_errno (errno, "%s: create", path);
    goto out;
  }
  mio = io_open (mpath, O_RDWR | O_CREAT | O_TRUNC, 0666);
  if (!mio) { set_error_errno (errno, "%s: create", mpath); goto out; }
  struct rct tmp = { .d = d, .path = path, .mrt_path = mpath, .io = io, .mio = mio };
  tmp.h.granularity = g;
  if (new_epoch (&tmp, d, "") == -1) { free_arrays (&tmp); goto out; }
  free_arrays (&tmp);
  if (io_sync (mio) == -1 || fsync_dir (path) == -1) {
    set_error_errno (errno, "%s: flush", path);
    goto out;
  }
  io_close (io); io = NULL;
  io_close (mio); mio = NULL;
  ret = rct_attach (d);
 out:
  if (io) io_close (io);
  if (mio) io_close (mio);
  if (ret == -1 && path) { unlink (path); unlink (mpath); }
  free (path);
  free (mpath);
  return ret;
}

int
vhdkit_rct_enable (struct vhdkit_disk *d, uint32_t granularity)
{
  clear_error ();
  WITH_LOCK (d, enable_locked (d, granularity));
}

static int
disable_locked (struct vhdkit_disk *d)
{
  if (!d->writable) {
    set_error (VHDKIT_RC_ACCESS_DENIED, 0, "%s: disabling change tracking needs the image open for writing", d->path);
    return -1;
  }
  char *path = sidecar (d->path, ".rct"), *mpath = sidecar (d->path, ".mrt");
  if (!path || !mpath) { free (path); free (mpath); set_error_errno (ENOMEM, "%s", d->path); return -1; }
  if (!d->rct && access (path, F_OK) == -1) {
    free (path); free (mpath);
    set_error (VHDKIT_RC_INVALID_STATE, 0, "%s: change tracking is not enabled", d->path);
    return -1;
  }
  if (d->rct) { release (d->rct); d->rct = NULL; }
  int r = 0;
  if ((unlink (path) == -1 && errno != ENOENT) || (unlink (mpath) == -1 && errno != ENOENT)) {
    set_error_errno (errno, "%s: remove tracking files", d->path);
    r = -1;
  }
  else
    fsync_dir (path);
  free (path); free (mpath);
  return r;
}

int
vhdkit_rct_disable (struct vhdkit_disk *d)
{
  clear_error ();
  WITH_LOCK (d, disable_locked (d));
}

static int
status_locked (struct vhdkit_disk *d, struct vhdkit_rct_status *st)
{
  memset (st, 0, sizeof *st);
  struct rct *r = d->rct;
  if (!r) return 0;
  if (r->state == RCT_BUSY) {
    set_error (VHDKIT_RC_IN_USE, 0, "%s", r->why);
    return -1;
  }
  st->enabled = true;
  if (r->state == RCT_INVALID) {
    /* What the files say, with the reason they cannot be trusted. */
    snprintf (st->problem, sizeof st->problem, "%s; every reference point is invalid and a full backup is needed", r->why);
  }
  st->granularity = r->h.granularity;
  st->generation = r->h.cur;
  char t[40];
  guid_to_text (&r->h.epoch, t);
  snprintf (st->epoch, sizeof st->epoch, "%s", t);
  if (r->h.cur > 1) rct_format_id (&r->h.epoch, r->h.cur - 1, st->most_recent_id);
  for (uint64_t j = 0; j < r->nl1 && !st->newer_changes; j++)
    st->newer_changes = r->l2[j] >= r->h.cur;
  st->newer_changes |= r->any_recovered;
  for (uint32_t i = 0; i < r->h.nsizes; i++)
    st->newer_changes |= r->h.sizes[i].gen >= r->h.cur && r->h.cur > 1;
  st->recovered = r->state == RCT_OK && r->why[0] != '\0';
  return 0;
}

int
vhdkit_rct_status (struct vhdkit_disk *d, struct vhdkit_rct_status *st)
{
  clear_error ();
  WITH_LOCK (d, status_locked (d, st));
}

static int
checkpoint_locked (struct vhdkit_disk *d, char *id)
{
  struct rct *r = d->rct;
  if (!r) {
    set_error (VHDKIT_RC_INVALID_STATE, 0, "%s: change tracking is not enabled", d->path);
    return -1;
  }
  if (!d->writable) {
    set_error (VHDKIT_RC_ACCESS_DENIED, 0, "%s: a reference point needs the image open for writing", d->path);
    return -1;
  }
  if (r->state != RCT_OK) {
    set_error (VHDKIT_RC_INVALID_STATE, 0, "%s", r->why);
    return -1;
  }
  if (r->h.cur >= RCT_MAX_GEN) {
    if (new_epoch (r, d, "the generation counter ran out") == -1) return -1;
  }
  /* Everything written so far belongs to the sealed generation: the
   * image and the tags are durable before the header moves on. */
  if (disk_flush (d) == -1) return -1;
  uint32_t sealed = r->h.cur;
  r->h.cur++;
  if (write_header (r) == -1) {
    r->h.cur--;
    return -1;
  }
  rct_format_id (&r->h.epoch, sealed, id);
  return 0;
}

int
vhdkit_rct_checkpoint (struct vhdkit_disk *d, char *id)
{
  clear_error ();
  WITH_LOCK (d, checkpoint_locked (d, id));
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
  int fd = in->fd;
  for (off_t pos = RCT_HDR_SIZE * 2; (uint64_t) pos < size; ) {
    off_t d0 = lseek (fd, pos, SEEK_DATA);
    if (d0 == -1) break;                         /* ENXIO: only a hole left */
    off_t h0 = lseek (fd, d0, SEEK_HOLE);
    if (h0 == -1) h0 = (off_t) size;
    for (off_t o = d0; o < h0; ) {
      size_t n = (size_t) (h0 - o) < MiB ? (size_t) (h0 - o) : MiB;
      if (io_pread_full (in, buf, n, (uint64_t) o) == -1 || io_pwrite (out, buf, n, (uint64_t) o) == -1) {
        set_error_errno (errno, "%s: copy tracking data", dst);
        goto out;
      }
      o += (off_t) n;
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

/* Mark [OFF, OFF+LEN) of D changed now (VHD Set apply). */
int
rct_mark_changed (struct vhdkit_disk *d, uint64_t off, uint64_t len)
{
  return rct_note (d, off, len, false);
}

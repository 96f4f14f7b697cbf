/* Whole-file operations on the disk layer (layer 5): convert and merge.
 * They own their handles for the duration of the call, and call their
 * callers' progress functions with no lock held (L-4). */
#include <errno.h>
#include <fcntl.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include "disk.h"

/* ---- convert ---- */

#define CHUNK (4 * MiB)   /* convert works in chunks of this size */
#define NBUF 4            /* chunks the reader may be ahead */

/* The work: chunks of at most CHUNK bytes, from the source's map. */
struct item { uint64_t off; uint32_t len; bool zero; };

struct copy {
  struct disk *src, *dst;
  uint8_t *bufs[NBUF];
  uint64_t total;
  vhdkit_progress_fn progress;
  void *opaque;
  bool existing;
  uint8_t *dbuf;
  struct item *items;           /* the plan */
  size_t nitems, items_cap;
  pthread_mutex_t m;            /* reader/writer hand-off */
  pthread_cond_t cv;
  size_t filled, written;
  uint64_t since_hint;          /* bytes written since the last writeback hint */
  bool stop, read_failed;
  char read_err[1024];
  uint32_t read_rc;
  int read_errno;
};

static bool
all_zero (const uint8_t *p, size_t n)
{
  /* Compare in words; buffers are aligned by malloc. */
  const uint64_t *w = (const uint64_t *) p;
  for (size_t i = 0; i < n / 8; i++)
    if (w[i]) return false;
  for (size_t i = n / 8 * 8; i < n; i++)
    if (p[i]) return false;
  return true;
}

/* Write one chunk BUF (the source's bytes at OFF) into dst.  Into a
 * new image, runs of zeros are skipped so it stays sparse.  Into an
 * existing one (c->existing), each grain is compared with what DST
 * holds and only differing grains are written or zeroed, so change
 * tracking on DST records exactly what changed. */
static int
put_chunk (struct copy *c, const uint8_t *buf, size_t n, uint64_t off)
{
  const size_t grain = 64 * 1024;
  if (c->existing && disk_pread (c->dst, c->dbuf, n, off) == -1) return -1;
  for (size_t k = 0; k < n; ) {
    size_t m = n - k < grain ? n - k : grain;
    bool z = all_zero (buf + k, m);
    bool same = c->existing ? memcmp (buf + k, c->dbuf + k, m) == 0 : z;
    if (same) { k += m; continue; }
    /* Extend over following grains of the same kind for one call. */
    size_t e = k + m;
    while (e < n) {
      size_t q = n - e < grain ? n - e : grain;
      bool z2 = all_zero (buf + e, q);
      bool same2 = c->existing ? memcmp (buf + e, c->dbuf + e, q) == 0 : z2;
      if (same2 || z2 != z) break;
      e += q;
    }
    int r = z && c->existing ? disk_zero (c->dst, e - k, off + k, 0)
                             : disk_pwrite (c->dst, buf + k, e - k, off + k, 0);
    if (r == -1) return -1;
    k = e;
  }
  return 0;
}

static int
plan_extent (void *opaque, uint64_t off, uint64_t len, unsigned flags)
{
  struct copy *c = opaque;
  bool zero = flags & VHDKIT_EXTENT_ZERO;
  if (zero && !c->existing)
    return 0;           /* a new image reads zeros already */
  while (len) {
    uint32_t n = len < CHUNK ? (uint32_t) len : (uint32_t) CHUNK;
    if (c->nitems == c->items_cap) {
      size_t cap = c->items_cap ? c->items_cap * 2 : 1024;
      struct item *ni = realloc (c->items, cap * sizeof *ni);
      if (!ni) {
        set_error_errno (ENOMEM, "%s: convert plan", c->dst->top->path);
        return -1;
      }
      c->items = ni;
      c->items_cap = cap;
    }
    c->items[c->nitems++] = (struct item) { off, n, zero };
    off += n; len -= n;
  }
  return 0;
}

/* The reader thread fills buffers ahead of the writer, so reading the
 * source and writing the destination overlap.  Its error is handed to
 * the writer, which reports it. */
static void *
reader (void *opaque)
{
  struct copy *c = opaque;
  for (size_t i = 0; i < c->nitems; i++) {
    pthread_mutex_lock (&c->m);
    while (i >= c->written + NBUF && !c->stop)
      pthread_cond_wait (&c->cv, &c->m);
    bool stop = c->stop;
    pthread_mutex_unlock (&c->m);
    if (stop) break;
    const struct item *it = &c->items[i];
    uint8_t *b = c->bufs[i % NBUF];
    int r = 0;
    if (it->zero) memset (b, 0, it->len);
    else r = disk_pread (c->src, b, it->len, it->off);
    pthread_mutex_lock (&c->m);
    if (r == -1) {
      snprintf (c->read_err, sizeof c->read_err, "%s", error_message ());
      c->read_rc = error_code ();
      c->read_errno = error_errno ();
      c->read_failed = true;
    }
    else
      c->filled = i + 1;
    pthread_cond_broadcast (&c->cv);
    pthread_mutex_unlock (&c->m);
    if (r == -1) break;
  }
  return NULL;
}

static int
run_pipeline (struct copy *c)
{
  pthread_t th;
  pthread_mutex_init (&c->m, NULL);
  pthread_cond_init (&c->cv, NULL);
  if (pthread_create (&th, NULL, reader, c) != 0) {
    set_error_errno (errno, "%s: start a reader thread", c->dst->top->path);
    return -1;
  }
  int ret = 0;
  for (size_t i = 0; i < c->nitems && ret == 0; i++) {
    pthread_mutex_lock (&c->m);
    while (c->filled <= i && !c->read_failed)
      pthread_cond_wait (&c->cv, &c->m);
    bool bad = c->filled <= i;
    pthread_mutex_unlock (&c->m);
    if (bad) {
      /* The reader's error, in this thread. */
      set_error (c->read_rc, 0, "%s", c->read_err);
      ret = -1;
      break;
    }
    const struct item *it = &c->items[i];
    ret = put_chunk (c, c->bufs[i % NBUF], it->len, it->off);
    /* Start writing back what is dirty every 64 MiB, so the final flush
     * does not find gigabytes waiting and the page cache does not
     * throttle the writer. */
    c->since_hint += it->len;
    if (ret == 0 && c->since_hint >= 64 * MiB) {
      image_hint_writeback (c->dst->top);
      c->since_hint = 0;
    }
    if (ret == 0 && c->progress && c->progress (c->opaque, it->off + it->len, c->total)) {
      set_error (VHDKIT_RC_FAILED, ECANCELED, "%s: cancelled", c->dst->top->path);
      ret = -1;
    }
    pthread_mutex_lock (&c->m);
    c->written = i + 1;
    if (ret == -1) c->stop = true;
    pthread_cond_broadcast (&c->cv);
    pthread_mutex_unlock (&c->m);
  }
  pthread_join (th, NULL);
  pthread_cond_destroy (&c->cv);
  pthread_mutex_destroy (&c->m);
  return ret;
}

int
disk_convert (const char *src, const char *dst, const struct vhdkit_create_params *p)
{
  struct vhdkit_create_params cp = *p;
  struct disk *s = disk_open (src, VHDKIT_OPEN_RDONLY, false);
  if (!s) return -1;
  uint64_t ssize;
  uint32_t slss;
  disk_get_size (s, &ssize, &slss);
  if (!cp.size) cp.size = ssize;
  if (!cp.logical_sector_size) cp.logical_sector_size = slss;
  if (!cp.physical_sector_size) cp.physical_sector_size = s->top->pss;
  if (cp.parent || cp.type == VHDKIT_TYPE_DIFFERENCING) {
    disk_abandon (s);
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: convert makes fixed or dynamic images, not differencing ones", dst);
    return -1;
  }
  if (cp.size < ssize) {
    disk_abandon (s);
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: size %" PRIu64 " is smaller than the source's %" PRIu64,
               dst, cp.size, ssize);
    return -1;
  }
  vhdkit_progress_fn prog = cp.progress;
  cp.progress = NULL;   /* creation of a fixed image is quick */
  struct disk *d;
  if (cp.existing) {
    d = disk_open (dst, VHDKIT_OPEN_RDWR, false);
    uint64_t dsize;
    uint32_t dlss;
    if (d) disk_get_size (d, &dsize, &dlss);
    if (d && (dsize < ssize || ssize % dlss)) {
      disk_abandon (d);
      d = NULL;
      set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
                 "%s: the existing image (%" PRIu64 " bytes, %" PRIu32 "-byte sectors) cannot hold %s (%" PRIu64 " bytes)",
                 dst, dsize, dlss, src, ssize);
    }
    if (!d) { disk_abandon (s); return -1; }
  }
  else {
    if (image_create (dst, &cp) == -1) { disk_abandon (s); return -1; }
    int fmt = cp.format ? cp.format : path_has_vhdx_ext (dst) ? VHDKIT_FORMAT_VHDX : VHDKIT_FORMAT_RAW;
    d = disk_open (dst, VHDKIT_OPEN_RDWR | (fmt == VHDKIT_FORMAT_RAW ? VHDKIT_OPEN_RAW : 0), false);
  }
  struct copy c = { .src = s, .dst = d, .total = ssize, .progress = prog,
                    .opaque = p->progress_opaque, .existing = cp.existing };
  int r = -1;
  if (!d) goto out;
  for (int i = 0; i < NBUF; i++)
    if (!(c.bufs[i] = malloc (CHUNK))) { set_error_errno (ENOMEM, "%s", dst); goto out; }
  if (c.existing && !(c.dbuf = malloc (CHUNK))) { set_error_errno (ENOMEM, "%s", dst); goto out; }
  r = disk_map (s, 0, ssize, plan_extent, &c);
  if (r == 0) r = run_pipeline (&c);
  if (r == 0 && prog) prog (c.opaque, ssize, ssize);
 out:
  for (int i = 0; i < NBUF; i++) free (c.bufs[i]);
  free (c.dbuf);
  free (c.items);
  if (d) {
    if (r == 0) r = disk_close (d);
    else disk_abandon (d);
  }
  disk_abandon (s);
  if (r == -1 && !cp.existing) unlink (dst);
  return r;
}

/* ---- merge ---- */

/* Merge (docs/CRASH-SAFETY.md VX-8): first the child records, as
 * parent_linkage2, the DataWriteGuid the parent will take; then the
 * parent is written.  At every instant the child opens against its
 * parent and reads the same data, so an interrupted merge is finished by
 * running it again.  The merge owns both handles: it calls the image
 * layer on the child directly. */
int
disk_merge (const char *child_path, const uint8_t *next_dwg, bool track_parent,
            vhdkit_progress_fn progress, void *opaque)
{
  struct disk *c = disk_open (child_path, VHDKIT_OPEN_RDWR, false);
  if (!c) return -1;
  struct image *ci = c->top;
  struct disk *par = NULL;
  uint8_t *buf = NULL;
  char *ppath = NULL;
  struct drv_extent ex[64];
  int r = -1;
  if (!ci->parent) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: not a differencing image: nothing to merge", child_path);
    goto out;
  }
  if (!(ppath = strdup (ci->parent_path)) || !(buf = malloc (4 * MiB))) {
    set_error_errno (ENOMEM, "%s", child_path);
    goto out;
  }
  uint8_t next[16], link1[16];
  if (next_dwg) memcpy (next, next_dwg, 16);
  else {
    struct guid g;
    if (guid_generate (&g) == -1) {
      set_error_errno (errno, "%s: random GUID", child_path);
      goto out;
    }
    memcpy (next, g.b, 16);
  }
  image_data_write_guid (ci->parent, link1);
  if (image_set_linkages (ci, link1, next) == -1) goto out;
  /* The child's parent is shared and read-only; the merge writes
   * through a handle of its own. */
  image_drop_parent (ci);
  par = disk_open (ppath, VHDKIT_OPEN_RDWR, !track_parent);
  if (!par) { error_prefix ("%s: merge", child_path); goto out; }
  if (image_preset_data_write_guid (par->top, next) == -1) goto out;
  uint64_t csize = ci->size, psize;
  disk_get_size (par, &psize, NULL);
  if (psize < csize && disk_resize (par, csize) == -1) goto out;
  /* The child's own extents: data is copied, zeros are zeroed. */
  for (uint64_t off = 0; off < csize; ) {
    size_t n;
    if (image_layer_extents (ci, off, csize - off, ex, 64, &n) == -1) goto out;
    for (size_t i = 0; i < n; i++) {
      if (ex[i].what == LAYER_ZERO && disk_zero (par, ex[i].len, ex[i].off, 0) == -1) goto out;
      if (ex[i].what == LAYER_DATA)
        for (uint64_t done = 0; done < ex[i].len; ) {
          size_t k = ex[i].len - done < 4 * MiB ? (size_t) (ex[i].len - done) : 4 * MiB;
          if (image_pread (ci, buf, k, ex[i].off + done) == -1 ||
              disk_pwrite (par, buf, k, ex[i].off + done, 0) == -1)
            goto out;
          done += k;
        }
      if (progress && progress (opaque, ex[i].off + ex[i].len, csize)) {
        set_error (VHDKIT_RC_FAILED, ECANCELED, "%s: merge cancelled", child_path);
        goto out;
      }
    }
    off = ex[n - 1].off + ex[n - 1].len;
  }
  /* Inside a set the parent must end up with exactly NEXT (VS-6), also
   * when the child held nothing. */
  if (next_dwg && image_take_data_write_guid (par->top) == -1) goto out;
  if (disk_flush (par) == -1) goto out;
  /* The parent now durably has NEXT as its DataWriteGuid (if anything
   * was written): point both linkages at it, so that readers checking
   * only parent_linkage (libvhdi) accept the child too. */
  uint8_t now[16];
  image_data_write_guid (par->top, now);
  if (image_set_linkages (ci, now, now) == -1) goto out;
  r = 0;
 out:
  free (buf);
  free (ppath);
  if (par) {
    if (r == 0) r = disk_close (par);
    else disk_abandon (par);
  }
  if (r == 0) r = disk_close (c);
  else disk_abandon (c);
  return r;
}

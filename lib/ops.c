/* Whole-file operations built on the disk API: create (dispatch by
 * format), convert, merge, check (dispatch).  They own their handles
 * for the duration of the call and take no locks beyond the handles'. */
#include <errno.h>
#include <fcntl.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include "internal.h"
#include "set/set.h"
#include "vhdx/vhdx.h"

static int
format_for (const char *path, int format)
{
  if (format) return format;
  return path_has_vhdx_ext (path) ? VHDKIT_FORMAT_VHDX : VHDKIT_FORMAT_RAW;
}

int
vhdkit_disk_create (const char *path, const struct vhdkit_create_params *p)
{
  clear_error ();
  if (!path || !*path || !p) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "create: no path or parameters given");
    return -1;
  }
  switch (format_for (path, p->format)) {
  case VHDKIT_FORMAT_VHDX: return vhdx_create (path, p);
  case VHDKIT_FORMAT_RAW:
    if (access (path, F_OK) == 0) {
      set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: already exists", path);
      return -1;
    }
    return raw_create (path, p);
  default:
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: vhdkit creates VHDX and raw images only", path);
    return -1;
  }
}

/* ---- convert ---- */

#define CHUNK (4 * MiB)   /* convert works in chunks of this size */
#define NBUF 4            /* chunks the reader may be ahead */
struct item;
struct copy {
  struct vhdkit_disk *src, *dst;
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
  struct saved_error read_err;
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
  if (c->existing && disk_pread_unlocked (c->dst, c->dbuf, n, off) == -1) return -1;
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
    int r = z && c->existing ? disk_zero (c->dst, e - k, off + k)
                             : disk_write (c->dst, buf + k, e - k, off + k);
    if (r == -1) return -1;
    k = e;
  }
  return 0;
}

/* The work: chunks of at most CHUNK bytes, from the source's map. */
struct item { uint64_t off; uint32_t len; bool zero; };

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
        set_error_errno (ENOMEM, "%s: convert plan", c->dst->path);
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
 * source and writing the destination overlap. */
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
    else r = disk_pread_unlocked (c->src, b, it->len, it->off);
    pthread_mutex_lock (&c->m);
    if (r == -1) {
      error_save (&c->read_err);
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
    set_error_errno (errno, "%s: start a reader thread", c->dst->path);
    return -1;
  }
  int ret = 0;
  for (size_t i = 0; i < c->nitems && ret == 0; i++) {
    pthread_mutex_lock (&c->m);
    while (c->filled <= i && !c->read_failed)
      pthread_cond_wait (&c->cv, &c->m);
    bool bad = c->filled <= i;
    pthread_mutex_unlock (&c->m);
    if (bad) { error_restore (&c->read_err); ret = -1; break; }
    const struct item *it = &c->items[i];
    ret = put_chunk (c, c->bufs[i % NBUF], it->len, it->off);
    /* Start writing back what is dirty every 64 MiB, so the final flush
     * does not find gigabytes waiting and the page cache does not
     * throttle the writer (a hint: errors are ignored). */
    c->since_hint += it->len;
    if (ret == 0 && c->since_hint >= 64 * MiB && !io_sim_enabled ()) {
      struct io *io = c->dst->drv->get_io (c->dst);
      sync_file_range (io->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
      c->since_hint = 0;
    }
    if (ret == 0 && c->progress && c->progress (c->opaque, it->off + it->len, c->total)) {
      set_error (VHDKIT_RC_FAILED, ECANCELED, "%s: cancelled", c->dst->path);
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
vhdkit_disk_convert (const char *src, const char *dst,
                     const struct vhdkit_create_params *p)
{
  clear_error ();
  struct vhdkit_create_params cp = p ? *p : (struct vhdkit_create_params) { 0 };
  struct vhdkit_disk *s = vhdkit_disk_open (src, VHDKIT_OPEN_RDONLY);
  if (!s) return -1;
  if (!cp.size) cp.size = s->size;
  if (!cp.logical_sector_size) cp.logical_sector_size = s->lss;
  if (!cp.physical_sector_size) cp.physical_sector_size = s->pss;
  if (cp.parent || cp.type == VHDKIT_TYPE_DIFFERENCING) {
    vhdkit_disk_close (s);
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: convert makes fixed or dynamic images, not differencing ones", dst);
    return -1;
  }
  if (cp.size < s->size) {
    vhdkit_disk_close (s);
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: size %" PRIu64 " is smaller than the source's %" PRIu64,
               dst, cp.size, s->size);
    return -1;
  }
  vhdkit_progress_fn prog = cp.progress;
  cp.progress = NULL;   /* creation of a fixed image is quick */
  struct vhdkit_disk *d;
  if (cp.existing) {
    d = vhdkit_disk_open (dst, VHDKIT_OPEN_RDWR);
    if (d && (d->size < s->size || s->size % d->lss)) {
      uint64_t dsize = d->size;
      uint32_t dlss = d->lss;
      vhdkit_disk_close (d);
      d = NULL;
      set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
                 "%s: the existing image (%" PRIu64 " bytes, %" PRIu32 "-byte sectors) cannot hold %s (%" PRIu64 " bytes)",
                 dst, dsize, dlss, src, s->size);
    }
    if (!d) { struct saved_error e; error_save (&e); vhdkit_disk_close (s); error_restore (&e); return -1; }
  }
  else {
    if (vhdkit_disk_create (dst, &cp) == -1) { vhdkit_disk_close (s); return -1; }
    d = vhdkit_disk_open (dst, VHDKIT_OPEN_RDWR | (format_for (dst, cp.format) == VHDKIT_FORMAT_RAW ? VHDKIT_OPEN_RAW : 0));
  }
  struct copy c = { .src = s, .dst = d, .total = s->size, .progress = prog,
                    .opaque = p ? p->progress_opaque : NULL, .existing = cp.existing };
  int r = -1;
  if (!d) goto out;
  for (int i = 0; i < NBUF; i++)
    if (!(c.bufs[i] = malloc (CHUNK))) { set_error_errno (ENOMEM, "%s", dst); goto out; }
  if (c.existing && !(c.dbuf = malloc (CHUNK))) { set_error_errno (ENOMEM, "%s", dst); goto out; }
  r = vhdkit_disk_map (s, 0, s->size, plan_extent, &c);
  if (r == 0) r = run_pipeline (&c);
  if (r == 0 && prog) prog (c.opaque, s->size, s->size);
 out:
  for (int i = 0; i < NBUF; i++) free (c.bufs[i]);
  free (c.dbuf);
  free (c.items);
  struct saved_error se;
  if (r == -1) error_save (&se);
  if (d) {
    int e = vhdkit_disk_close (d);
    if (r == 0) r = e;
    else error_restore (&se);
  }
  if (r == -1) error_save (&se);
  vhdkit_disk_close (s);
  if (r == -1) {
    if (!cp.existing) unlink (dst);
    error_restore (&se);
  }
  return r;
}

/* ---- merge ---- */

struct merge {
  struct vhdkit_disk *child, *parent;
  uint8_t *buf;
  uint64_t total;
  vhdkit_progress_fn progress;
  void *opaque;
};

static int
merge_extent (void *opaque, uint64_t off, uint64_t len, int what)
{
  struct merge *m = opaque;
  int r = 0;
  if (what == LAYER_ZERO)
    r = disk_zero (m->parent, len, off);
  else if (what == LAYER_DATA) {
    for (uint64_t done = 0; done < len && r == 0; ) {
      size_t n = len - done < 4 * MiB ? (size_t) (len - done) : 4 * MiB;
      r = m->child->drv->pread (m->child, m->buf, n, off + done);
      if (r == 0) r = disk_write (m->parent, m->buf, n, off + done);
      done += n;
    }
  }
  if (r == 0 && m->progress && m->progress (m->opaque, off + len, m->total)) {
    set_error (VHDKIT_RC_FAILED, ECANCELED, "%s: merge cancelled", m->child->path);
    r = -1;
  }
  return r;
}

static int merge_impl (const char *child_path, const uint8_t *next_dwg, bool track_parent,
                       vhdkit_progress_fn progress, void *opaque);

/* Merge (docs/CRASH-SAFETY.md VX-8): first the child records, as
 * parent_linkage2, the DataWriteGuid the parent will take; then the
 * parent is written.  At every instant the child opens against its
 * parent and reads the same data, so an interrupted merge is finished by
 * running it again. */
int
vhdkit_disk_merge (const char *child_path, vhdkit_progress_fn progress,
                   void *opaque)
{
  clear_error ();
  if (child_path && set_path_split (child_path, NULL, NULL)) {
    /* The leaf's parent is a snapshot's frozen image (VS-5). */
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0,
               "%s: merging the leaf of a VHD Set into its parent would change a snapshot; "
               "use vhdkit set delete (or optimize) instead", child_path);
    return -1;
  }
  return merge_impl (child_path, NULL, true, progress, opaque);
}

int
disk_merge_into_parent (const char *child_path, const uint8_t *next,
                        vhdkit_progress_fn progress, void *opaque)
{
  return merge_impl (child_path, next, false, progress, opaque);
}

static int
merge_impl (const char *child_path, const uint8_t *next_dwg, bool track_parent,
            vhdkit_progress_fn progress, void *opaque)
{
  struct vhdkit_disk *c = vhdkit_disk_open (child_path, VHDKIT_OPEN_RDWR);
  if (!c) return -1;
  struct merge m = { .child = c, .progress = progress, .opaque = opaque, .total = c->size };
  int r = -1;
  if (!c->parent) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: not a differencing image: nothing to merge", child_path);
    goto out;
  }
  char *ppath = strdup (c->parent_path);
  if (!ppath) { set_error_errno (ENOMEM, "%s", child_path); goto out; }
  struct guid next;
  if (next_dwg) memcpy (next.b, next_dwg, 16);
  else if (guid_generate (&next) == -1) {
    set_error_errno (errno, "%s: random GUID", child_path);
    free (ppath);
    goto out;
  }
  if (vhdx_set_linkage2 (c, &next) == -1) { free (ppath); goto out; }
  /* The child's own parent handle is read-only; the merge writes
   * through a second, writable one. */
  disk_close_unlocked (c->parent);
  c->parent = NULL;
  m.parent = track_parent ? vhdkit_disk_open (ppath, VHDKIT_OPEN_RDWR)
                          : disk_open_untracked (ppath, VHDKIT_OPEN_RDWR);
  free (ppath);
  if (!m.parent) { error_prefix ("%s: merge", child_path); goto out; }
  if (vhdx_preset_data_write_guid (m.parent, &next) == -1) goto out;
  if (m.parent->size < c->size) {
    uint64_t old = m.parent->size;
    if (rct_resize_prepare (m.parent, c->size) == -1 ||
        m.parent->drv->resize (m.parent, c->size) == -1 ||
        rct_resized (m.parent, old, c->size) == -1)
      goto out;
  }
  if (!(m.buf = malloc (4 * MiB))) { set_error_errno (ENOMEM, "%s", child_path); goto out; }
  r = c->drv->map_layer (c, 0, c->size, merge_extent, &m);
  /* Inside a set the parent must end up with exactly NEXT (VS-6), also
   * when the child held nothing. */
  if (r == 0 && next_dwg) r = vhdx_take_data_write_guid (m.parent);
  if (r == 0) r = disk_flush (m.parent);
  /* The parent now durably has NEXT as its DataWriteGuid (if anything
   * was written): point both linkages at it, so that readers checking
   * only parent_linkage (libvhdi) accept the child too. */
  if (r == 0) {
    uint8_t now[16];
    m.parent->drv->data_write_guid (m.parent, now);
    struct guid g;
    memcpy (g.b, now, 16);
    r = vhdx_set_linkages (c, &g, &g);
  }
 out:
  free (m.buf);
  struct saved_error se;
  if (r == -1) error_save (&se);
  if (m.parent && vhdkit_disk_close (m.parent) == -1 && r == 0) {
    r = -1;
    error_save (&se);
  }
  if (vhdkit_disk_close (c) == -1 && r == 0) {
    r = -1;
    error_save (&se);
  }
  if (r == -1) error_restore (&se);
  return r;
}

int
vhdkit_check (const char *path, vhdkit_report_fn report, void *opaque)
{
  clear_error ();
  if (!path || !*path) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "no path given");
    return -1;
  }
  if (set_path_split (path, NULL, NULL)) {
    /* A VHD Set: the set file, the chain it names (VS-3), and every
     * image of the chain. */
    struct vhdkit_disk *d = vhdkit_disk_open (path, VHDKIT_OPEN_RDONLY);
    if (!d) {
      if (vhdkit_get_error_code () != VHDKIT_RC_FAILED) return -1;
      if (report) report (opaque, vhdkit_get_error ());
      return 1;
    }
    int worst = 0;
    for (struct vhdkit_disk *m = d; m && worst != -1; m = m->parent) {
      int r = vhdx_check (m->path, report, opaque);
      if (r != 0) worst = r;
    }
    vhdkit_disk_close (d);
    return worst;
  }
  int fmt = vhdkit_probe_format (path);
  if (fmt == VHDKIT_FORMAT_UNKNOWN) {
    /* A file that exists but is not a recognisable image is a finding. */
    if (vhdkit_get_error_code () == VHDKIT_RC_FAILED) {
      if (report) report (opaque, vhdkit_get_error ());
      return 1;
    }
    return -1;
  }
  if (fmt == VHDKIT_FORMAT_VHDX)
    return vhdx_check (path, report, opaque);
  /* Raw images have no structure to check; VHD is refused on open. */
  struct vhdkit_disk *d = vhdkit_disk_open (path, VHDKIT_OPEN_RDONLY);
  if (!d)
    return -1;
  vhdkit_disk_close (d);
  return 0;
}

/* Whole-file operations built on the disk API: create (dispatch by
 * format), convert, merge, check (dispatch).  They own their handles
 * for the duration of the call and take no locks beyond the handles'. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
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

struct copy {
  struct vhdkit_disk *src, *dst;
  uint8_t *buf;
  size_t bufsize;
  uint64_t total;
  vhdkit_progress_fn progress;
  void *opaque;
  int failed;
  bool existing;
  uint8_t *dbuf;
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

/* Copy [off, off+len) from src (or zeros, SRC_ZERO) to dst.  Into a
 * new image, runs of zeros are skipped so it stays sparse.  Into an
 * existing one (c->existing), each grain is compared with what DST
 * holds and only differing grains are written or zeroed, so change
 * tracking on DST records exactly what changed. */
static int
copy_range (struct copy *c, uint64_t off, uint64_t len, bool src_zero)
{
  const size_t grain = 64 * 1024;
  while (len) {
    size_t n = len < c->bufsize ? (size_t) len : c->bufsize;
    if (src_zero) memset (c->buf, 0, n);
    else if (disk_pread_unlocked (c->src, c->buf, n, off) == -1) return -1;
    if (c->existing && disk_pread_unlocked (c->dst, c->dbuf, n, off) == -1) return -1;
    for (size_t k = 0; k < n; ) {
      size_t m = n - k < grain ? n - k : grain;
      bool z = all_zero (c->buf + k, m);
      bool same = c->existing ? memcmp (c->buf + k, c->dbuf + k, m) == 0 : z;
      if (same) { k += m; continue; }
      /* Extend over following grains of the same kind for one call. */
      size_t e = k + m;
      while (e < n) {
        size_t q = n - e < grain ? n - e : grain;
        bool z2 = all_zero (c->buf + e, q);
        bool same2 = c->existing ? memcmp (c->buf + e, c->dbuf + e, q) == 0 : z2;
        if (same2 || z2 != z) break;
        e += q;
      }
      int r = z && c->existing ? disk_zero (c->dst, e - k, off + k)
                               : disk_write (c->dst, c->buf + k, e - k, off + k);
      if (r == -1) return -1;
      k = e;
    }
    off += n; len -= n;
    if (c->progress && c->progress (c->opaque, off, c->total)) {
      set_error (VHDKIT_RC_FAILED, ECANCELED, "%s: cancelled", c->dst->path);
      return -1;
    }
  }
  return 0;
}

static int
convert_extent (void *opaque, uint64_t off, uint64_t len, unsigned flags)
{
  struct copy *c = opaque;
  bool zero = flags & VHDKIT_EXTENT_ZERO;
  if (zero && !c->existing) {
    if (c->progress && c->progress (c->opaque, off + len, c->total)) {
      set_error (VHDKIT_RC_FAILED, ECANCELED, "%s: cancelled", c->dst->path);
      c->failed = 1;
      return -1;
    }
    return 0;           /* a new image reads zeros already */
  }
  if (copy_range (c, off, len, zero) == -1) { c->failed = 1; return -1; }
  return 0;
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
                    .opaque = p ? p->progress_opaque : NULL, .bufsize = 4 * MiB,
                    .existing = cp.existing };
  int r = -1;
  if (!d) goto out;
  if (!(c.buf = malloc (c.bufsize)) || (c.existing && !(c.dbuf = malloc (c.bufsize)))) {
    set_error_errno (ENOMEM, "%s", dst);
    goto out;
  }
  r = vhdkit_disk_map (s, 0, s->size, convert_extent, &c);
  if (r == 0 && prog) prog (c.opaque, s->size, s->size);
 out:
  free (c.buf);
  free (c.dbuf);
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
  if (guid_generate (&next) == -1) {
    set_error_errno (errno, "%s: random GUID", child_path);
    free (ppath);
    goto out;
  }
  if (vhdx_set_linkage2 (c, &next) == -1) { free (ppath); goto out; }
  /* The child's own parent handle is read-only; the merge writes
   * through a second, writable one. */
  disk_close_unlocked (c->parent);
  c->parent = NULL;
  m.parent = vhdkit_disk_open (ppath, VHDKIT_OPEN_RDWR);
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

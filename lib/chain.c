/* The chain layer (layer 3): which driver a file needs, images and their
 * parent chains, the composed read and extent map, and the registry of
 * shared parents.
 *
 * What it owns: struct image (one open file with its driver instance),
 * and the registry: every parent image open in the process, keyed by
 * the file's device and inode, with a count of the children using it.
 *
 * Locking (docs/ARCHITECTURE.md): the registry has one mutex (L-6),
 * held only to look up, count and unlink entries, never across a file
 * open, I/O or close.  An image's fields are written before anyone else
 * sees the image and only read afterwards, except SIZE (L-2).  A shared
 * parent is read-only and read by many children at once: its driver is
 * thread-safe (L-1).
 *
 * Crash behaviour: this layer writes nothing itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "chain.h"
#include "guid.h"

static const struct driver *const drivers[] = { &vhdx_driver, &raw_driver };
#define NDRIVERS (sizeof drivers / sizeof drivers[0])

/* ---- probing ---- */

bool
path_has_vhdx_ext (const char *path)
{
  const char *dot = strrchr (path, '.');
  return dot && (strcasecmp (dot, ".vhdx") == 0 || strcasecmp (dot, ".avhdx") == 0);
}

static bool
path_has_vhd_ext (const char *path)
{
  const char *dot = strrchr (path, '.');
  return dot && (strcasecmp (dot, ".vhd") == 0 || strcasecmp (dot, ".avhd") == 0);
}

/* The format of the open file IO, and its driver (NULL for formats that
 * are recognised but have none).  VHDKIT_FORMAT_UNKNOWN with the error
 * set if it cannot be told. */
static int
probe_io (struct io *io, const char *path, const struct driver **drv)
{
  uint8_t head[8], tail[512];
  uint64_t size;
  *drv = NULL;
  if (io_get_size (io, &size) == -1) {
    set_error_errno (errno, "%s: stat", path);
    return VHDKIT_FORMAT_UNKNOWN;
  }
  ssize_t hn = io_pread (io, head, sizeof head, 0);
  if (hn < 0) {
    set_error_errno (errno, "%s: read", path);
    return VHDKIT_FORMAT_UNKNOWN;
  }
  size_t tn = size < sizeof tail ? (size_t) size : sizeof tail;
  ssize_t tr = io_pread (io, tail, tn, size - tn);
  if (tr < 0) {
    set_error_errno (errno, "%s: read", path);
    return VHDKIT_FORMAT_UNKNOWN;
  }
  /* VHD Set files (docs/FORMAT-vhds.md) and VHD (version 1) images:
   * "conectix" in the header copy or the footer, which old writers made
   * 511 bytes long. */
  if (hn == 8 && memcmp (head, "VHDKSET1", 8) == 0)
    return VHDKIT_FORMAT_VHDSET;
  if ((hn == 8 && memcmp (head, "conectix", 8) == 0) ||
      (tr >= 512 && memcmp (tail, "conectix", 8) == 0) ||
      (tr >= 511 && memcmp (tail + 1, "conectix", 8) == 0))
    return VHDKIT_FORMAT_VHD;
  for (size_t i = 0; i < NDRIVERS; i++) {
    if (drivers[i]->format == VHDKIT_FORMAT_RAW) continue;
    if (drivers[i]->probe (head, (size_t) hn, tail, (size_t) tr, size)) {
      *drv = drivers[i];
      return drivers[i]->format;
    }
  }
  /* An image's name without its signature is damage, not a raw image. */
  if (path_has_vhdx_ext (path)) {
    set_error (VHDKIT_RC_FAILED, 0,
               "%s: not a VHDX image (the file identifier signature \"vhdxfile\" is missing%s)",
               path, size < 8 ? "; the file is truncated" : "");
    return VHDKIT_FORMAT_UNKNOWN;
  }
  if (path_has_vhd_ext (path)) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: not a VHD image (no \"conectix\" footer)", path);
    return VHDKIT_FORMAT_UNKNOWN;
  }
  *drv = &raw_driver;
  return VHDKIT_FORMAT_RAW;
}

int
image_probe (const char *path)
{
  struct io *io = io_open (path, O_RDONLY, 0);
  if (!io) {
    set_error_errno (errno, "%s: cannot open", path);
    return VHDKIT_FORMAT_UNKNOWN;
  }
  const struct driver *drv;
  int f = probe_io (io, path, &drv);
  io_close (io);
  return f;
}

static const struct driver *
driver_of_format (int format)
{
  for (size_t i = 0; i < NDRIVERS; i++)
    if (drivers[i]->format == format) return drivers[i];
  return NULL;
}

/* ---- the registry of shared parents (L-6) ---- */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct image *registry;          /* under reg_lock */

static bool
same_state (const struct io_stat *a, const struct io_stat *b)
{
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
    a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

/* The registered image of the file ST describes, with a reference
 * taken; NULL if none.  An entry whose file changed since it was opened
 * (a merge wrote it) is not reused: it leaves the registry and lives on
 * for the children that have it. */
static struct image *
registry_get (const struct io_stat *st)
{
  LOCK_FOR_SCOPE (&reg_lock);
  for (struct image **p = &registry; *p; p = &(*p)->reg_next) {
    struct image *i = *p;
    if (i->st.dev != st->dev || i->st.ino != st->ino) continue;
    if (!same_state (&i->st, st)) {
      *p = i->reg_next;
      i->reg_next = NULL;
      i->shared = false;          /* freed by its last user */
      return NULL;
    }
    i->refs++;
    return i;
  }
  return NULL;
}

/* Register IMG (refs 1), unless an equal one got there first: then
 * that one, with a reference taken, and IMG must be closed. */
static struct image *
registry_put (struct image *img)
{
  LOCK_FOR_SCOPE (&reg_lock);
  for (struct image *i = registry; i; i = i->reg_next)
    if (i->st.dev == img->st.dev && i->st.ino == img->st.ino && same_state (&i->st, &img->st)) {
      i->refs++;
      return i;
    }
  img->shared = true;
  img->refs = 1;
  img->reg_next = registry;
  registry = img;
  return img;
}

/* Drop a reference; true if it was the last (the caller closes). */
static bool
registry_unref (struct image *img)
{
  LOCK_FOR_SCOPE (&reg_lock);
  if (--img->refs > 0) return false;
  if (img->shared)
    for (struct image **p = &registry; *p; p = &(*p)->reg_next)
      if (*p == img) { *p = img->reg_next; break; }
  img->shared = false;
  return true;
}

unsigned
image_shared_count (void)
{
  unsigned n = 0;
  LOCK_FOR_SCOPE (&reg_lock);
  for (struct image *i = registry; i; i = i->reg_next) n++;
  return n;
}

/* ---- opening ---- */

static void
free_image (struct image *img)
{
  free (img->path);
  free (img->parent_path);
  free (img);
}

static void parent_put (struct image *p);

static int
close_one (struct image *img)
{
  int r = 0;
  if (img->inst && img->drv->close (img->inst) == -1) r = -1;
  img->inst = NULL;
  if (img->parent) parent_put (img->parent);
  img->parent = NULL;
  free_image (img);
  return r;
}

/* A parent's last user closes it (read-only: nothing to flush). */
static void
parent_put (struct image *p)
{
  if (registry_unref (p)) {
    error_hold ();
    close_one (p);
    error_release ();
  }
}

static struct image *open_depth (const char *path, unsigned flags, const struct drv_hooks *hooks,
                                 unsigned level, const uint64_t *chain_ids);

/* Read N bytes at OFF of the parent chain NEXT points at (the
 * drv_next a child reads through). */
static int
next_pread (void *opaque, void *buf, size_t n, uint64_t off)
{
  return image_pread (opaque, buf, n, off);
}

/* The parent of IMG (a differencing image at nesting LEVEL, with the
 * files above it in CHAIN_IDS): shared, checked, connected. */
static int
open_parent (struct image *img, unsigned level, const uint64_t *chain_ids)
{
  struct drv_parent_req req = { .ncandidates = 0 };
  if (img->drv->parent_req (img->inst, &req) == -1) return -1;
  int ret = -1;
  char tried[2048] = "";
  if (img->flags & VHDKIT_OPEN_NO_PARENT) {
    /* Not opened: report the first place the parent is looked for. */
    for (int i = 0; i < req.ncandidates && !img->parent_path; i++)
      if (req.candidates[i]) img->parent_path = strdup (req.candidates[i]);
    ret = 0;
    goto out;
  }
  for (int i = 0; i < req.ncandidates; i++) {
    const char *cand = req.candidates[i];
    if (!cand) continue;
    bool dup = false;
    for (int k = 0; k < i; k++) dup |= req.candidates[k] && strcmp (req.candidates[k], cand) == 0;
    if (dup) continue;
    size_t tl = strlen (tried);
    snprintf (tried + tl, sizeof tried - tl, "%s%s", tl ? ", " : "", cand);
    if (access (cand, F_OK) == -1) continue;
    struct image *p = open_depth (cand, VHDKIT_OPEN_RDONLY, NULL, level + 1, chain_ids);
    if (!p) { error_prefix ("%s: parent", img->path); goto out; }
    const char *why = NULL;
    char a[40], b[40];
    uint8_t dw[16];
    if (p->drv != img->drv) why = "format";
    else if (!image_data_write_guid (p, dw)) why = "format";
    else {
      bool ok = false;
      for (int k = 0; k < req.nlinkage; k++) ok |= memcmp (dw, req.linkage[k], 16) == 0;
      if (!ok) why = "linkage";
      else if (p->lss != img->lss) why = "sectors";
    }
    if (why && strcmp (why, "format") == 0)
      set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: the parent %s is not a %s image",
                 img->path, cand, img->drv->name);
    else if (why && strcmp (why, "linkage") == 0) {
      struct guid g1, g2;
      memcpy (g1.b, dw, 16);
      memcpy (g2.b, req.linkage[0], 16);
      guid_to_text (&g1, a);
      guid_to_text (&g2, b);
      set_error (VHDKIT_RC_FAILED, 0,
                 "%s: the parent %s has DataWriteGuid {%s} but the child was made from {%s}: the parent was modified after the child was created, so the chain is broken",
                 img->path, cand, a, b);
    }
    else if (why)
      set_error (VHDKIT_RC_FAILED, 0, "%s: the parent %s has logical sector size %" PRIu32 ", the child %" PRIu32,
                 img->path, cand, p->lss, img->lss);
    if (why) {
      parent_put (p);
      goto out;
    }
    img->parent = p;
    img->depth = 1 + p->depth;
    img->parent_path = realpath (cand, NULL);
    if (!img->parent_path && !(img->parent_path = strdup (cand))) {
      set_error_errno (ENOMEM, "%s", img->path);
      goto out;
    }
    img->drv->set_next (img->inst, &(struct drv_next) { .pread = next_pread, .opaque = p });
    ret = 0;
    goto out;
  }
  set_error (VHDKIT_RC_FILE_NOT_FOUND, ENOENT, "%s: parent image not found (tried %s)",
             img->path, *tried ? tried : "no usable locator path");
 out:
  for (int i = 0; i < req.ncandidates; i++) free (req.candidates[i]);
  return ret;
}

/* Open PATH at nesting LEVEL (1 = the top).  A read-only open below the
 * top is a parent: it is shared through the registry. */
static struct image *
open_depth (const char *path, unsigned flags, const struct drv_hooks *hooks,
            unsigned level, const uint64_t *chain_ids)
{
  if (level > MAX_CHAIN_DEPTH) {
    set_error (VHDKIT_RC_FAILED, 0,
               "%s: the parent chain is deeper than %d images (a loop?)", path, MAX_CHAIN_DEPTH);
    return NULL;
  }
  bool rw = flags & VHDKIT_OPEN_RDWR;
  bool parent = level > 1;
  struct io *io = io_open (path, rw ? O_RDWR : O_RDONLY, 0);
  if (!io) {
    set_error_errno (errno, "%s: cannot open", path);
    return NULL;
  }
  struct io_stat st;
  if (io_stat (io, &st) == -1) {
    set_error_errno (errno, "%s: stat", path);
    io_close (io);
    return NULL;
  }
  /* Loop detection: the files above this one, by (device, inode). */
  uint64_t ids[2 * (MAX_CHAIN_DEPTH + 1)];
  for (unsigned i = 0; i + 1 < level; i++) {
    if (chain_ids[2 * i] == st.dev && chain_ids[2 * i + 1] == st.ino) {
      set_error (VHDKIT_RC_FAILED, 0, "%s: the parent chain loops back to this file", path);
      io_close (io);
      return NULL;
    }
    ids[2 * i] = chain_ids[2 * i];
    ids[2 * i + 1] = chain_ids[2 * i + 1];
  }
  ids[2 * (level - 1)] = st.dev;
  ids[2 * (level - 1) + 1] = st.ino;
  if (parent) {
    struct image *hit = registry_get (&st);
    if (hit) {
      io_close (io);
      if (level + hit->depth - 1 > MAX_CHAIN_DEPTH) {
        parent_put (hit);
        set_error (VHDKIT_RC_FAILED, 0,
                   "%s: the parent chain is deeper than %d images (a loop?)", path, MAX_CHAIN_DEPTH);
        return NULL;
      }
      return hit;
    }
  }

  /* INV-5: one writer.  A reader may open an image a writer holds (the
   * writer's unflushed metadata is not visible, as with any shared
   * file). */
  if (rw && io_lock (io, 1) == -1) {
    int e = errno;
    if (e == EWOULDBLOCK)
      set_error (VHDKIT_RC_IN_USE, e, "%s: the image is open for writing by another process", path);
    else
      set_error_errno (e, "%s: lock", path);
    io_close (io);
    return NULL;
  }
  else if (!rw)
    io_lock (io, 0);

  const struct driver *drv = NULL;
  int fmt = (flags & VHDKIT_OPEN_RAW) ? VHDKIT_FORMAT_RAW : probe_io (io, path, &drv);
  if (flags & VHDKIT_OPEN_RAW) drv = &raw_driver;
  if (!drv) {
    if (fmt == VHDKIT_FORMAT_VHD)
      set_error (VHDKIT_RC_NOT_SUPPORTED, 0,
                 "%s: this is a VHD (version 1) image; vhdkit supports VHDX and raw images only", path);
    else if (fmt == VHDKIT_FORMAT_VHDSET)
      set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
                 "%s: this is a VHD Set file; open it by a name ending in .vhds", path);
    io_close (io);
    return NULL;
  }
  struct image *img = calloc (1, sizeof *img);
  if (!img || !(img->path = strdup (path))) {
    free (img);
    set_error_errno (ENOMEM, "%s", path);
    io_close (io);
    return NULL;
  }
  img->drv = drv;
  if (hooks) img->hooks = *hooks;
  img->writable = rw;
  img->flags = flags;
  img->depth = 1;
  img->st = st;
  struct drv_geometry g = { 0 };
  struct drv_open_args a = { .path = img->path, .io = io, .writable = rw,
                             .hooks = hooks ? &img->hooks : NULL };
  if (drv->open (&a, &img->inst, &g) == -1) {
    free_image (img);
    return NULL;
  }
  img->size = g.size;
  img->lss = g.lss;
  img->pss = g.pss;
  if (g.has_parent && open_parent (img, level, ids) == -1) {
    error_hold ();
    close_one (img);
    error_release ();
    return NULL;
  }
  if (!parent) return img;
  struct image *won = registry_put (img);
  if (won != img) {
    error_hold ();
    close_one (img);
    error_release ();
  }
  return won;
}

struct image *
image_open (const char *path, unsigned flags, const struct drv_hooks *hooks)
{
  return open_depth (path, flags, hooks, 1, NULL);
}

void
image_set_hooks_opaque (struct image *img, void *opaque)
{
  img->hooks.opaque = opaque;
}

int
image_close (struct image *img)
{
  if (!img) return 0;
  return close_one (img);
}

void
image_abandon (struct image *img)
{
  error_hold ();
  image_close (img);
  error_release ();
}

/* ---- creating and checking ---- */

int
image_create (const char *path, const struct vhdkit_create_params *p)
{
  int format = p->format ? p->format
    : path_has_vhdx_ext (path) ? VHDKIT_FORMAT_VHDX : VHDKIT_FORMAT_RAW;
  const struct driver *drv = driver_of_format (format);
  if (!drv) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: vhdkit creates VHDX and raw images only", path);
    return -1;
  }
  if (access (path, F_OK) == 0) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: already exists", path);
    return -1;
  }
  if (!p->parent)
    return drv->create (path, p, NULL);
  if (!(drv->caps & DRV_HAS_PARENTS)) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: %s images cannot have a parent", path, drv->name);
    return -1;
  }
  struct image *par = image_open (p->parent, VHDKIT_OPEN_RDONLY, NULL);
  if (!par) return -1;
  struct drv_create_parent cp = {
    .path = p->parent, .size = par->size, .lss = par->lss, .pss = par->pss,
  };
  int r = -1;
  char *real = NULL;
  if (par->drv != drv || !image_data_write_guid (par, cp.data_write_guid))
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: the parent %s is not a %s image", path, p->parent, drv->name);
  else if (!(real = realpath (p->parent, NULL)))
    set_error_errno (errno, "%s: resolve parent %s", path, p->parent);
  else {
    cp.real = real;
    r = drv->create (path, p, &cp);
  }
  free (real);
  image_abandon (par);       /* read-only: nothing to flush */
  return r;
}

int
image_check (const char *path, vhdkit_report_fn report, void *opaque)
{
  struct io *io = io_open (path, O_RDONLY, 0);
  if (!io) {
    set_error_errno (errno, "%s: cannot open", path);
    return -1;
  }
  const struct driver *drv;
  int fmt = probe_io (io, path, &drv);
  io_close (io);
  if (fmt == VHDKIT_FORMAT_UNKNOWN) {
    /* A file that exists but is not a recognisable image is a finding. */
    if (error_code () == VHDKIT_RC_FAILED) {
      if (report) report (opaque, error_message ());
      return 1;
    }
    return -1;
  }
  if (!drv) {
    if (fmt == VHDKIT_FORMAT_VHD)
      set_error (VHDKIT_RC_NOT_SUPPORTED, 0,
                 "%s: this is a VHD (version 1) image; vhdkit supports VHDX and raw images only", path);
    else
      set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: vhdkit cannot check this format", path);
    return -1;
  }
  int r = drv->check (path, report, opaque);
  if (r != 0 || !(drv->caps & DRV_HAS_PARENTS)) return r;
  /* The file is sound; so must be its chain. */
  struct image *img = image_open (path, VHDKIT_OPEN_RDONLY, NULL);
  if (!img) {
    uint32_t rc = error_code ();
    if (rc == VHDKIT_RC_ACCESS_DENIED || rc == VHDKIT_RC_OUT_OF_MEMORY) return -1;
    if (report) report (opaque, error_message ());
    return 1;
  }
  image_abandon (img);
  return 0;
}

/* ---- data ---- */

int
image_pread (struct image *img, void *buf, size_t n, uint64_t off)
{
  /* A parent may be smaller than its child (MS-VHDX lets a child grow
   * past its parent): the part beyond reads as zeros. */
  uint64_t size = LOAD_RELAXED (&img->size);
  if (off >= size) {
    memset (buf, 0, n);
    return 0;
  }
  if (n > size - off) {
    size_t in = (size_t) (size - off);
    memset ((char *) buf + in, 0, n - in);
    n = in;
  }
  return img->drv->pread (img->inst, buf, n, off);
}

int
image_pwrite (struct image *img, const void *buf, size_t n, uint64_t off, unsigned flags)
{
  return img->drv->pwrite (img->inst, buf, n, off, flags);
}

int
image_zero (struct image *img, uint64_t n, uint64_t off, unsigned flags)
{
  return img->drv->zero (img->inst, n, off, flags);
}

int
image_discard (struct image *img, uint64_t n, uint64_t off)
{
  return img->drv->discard (img->inst, n, off);
}

int
image_flush (struct image *img)
{
  return img->drv->flush (img->inst);
}

int
image_resize (struct image *img, uint64_t new_size)
{
  if (img->drv->resize (img->inst, new_size) == -1) return -1;
  STORE_RELAXED (&img->size, new_size);
  return 0;
}

void
image_get_info (struct image *img, struct vhdkit_disk_info *info)
{
  info->path = img->path;
  info->parent_path = img->parent_path;
  info->virtual_size = LOAD_RELAXED (&img->size);
  info->logical_sector_size = img->lss;
  info->physical_sector_size = img->pss;
  info->chain_depth = img->depth;
  img->drv->get_info (img->inst, info);
}

int
image_layer_extents (struct image *img, uint64_t off, uint64_t len,
                     struct drv_extent *out, size_t max, size_t *n)
{
  struct drv_extents x = { .e = out, .max = max };
  int r = img->drv->extents (img->inst, off, len, &x);
  *n = x.n;
  return r;
}

/* Composed extents: a layer's PARENT extents are resolved in the parent
 * (holes where there is none). */
struct ext_out {
  struct image_extent *e;
  size_t n, max;
  bool full;
};

static bool
emit (struct ext_out *o, uint64_t off, uint64_t len, unsigned flags)
{
  if (len == 0) return true;
  if (o->n) {
    struct image_extent *l = &o->e[o->n - 1];
    if (l->flags == flags && l->off + l->len == off) {
      l->len += len;
      return true;
    }
  }
  if (o->n == o->max) { o->full = true; return false; }
  o->e[o->n++] = (struct image_extent) { off, len, flags };
  return true;
}

static int
compose (struct image *img, uint64_t off, uint64_t len, struct ext_out *o)
{
  struct drv_extent e[32];
  while (len && !o->full) {
    size_t n;
    if (image_layer_extents (img, off, len, e, 32, &n) == -1) return -1;
    if (n == 0) {
      set_error (VHDKIT_RC_FAILED, 0, "%s: internal error: no extent at %" PRIu64, img->path, off);
      return -1;
    }
    for (size_t i = 0; i < n && !o->full; i++) {
      if (e[i].what == LAYER_DATA) emit (o, e[i].off, e[i].len, 0);
      else if (e[i].what == LAYER_ZERO) emit (o, e[i].off, e[i].len, VHDKIT_EXTENT_ZERO);
      else {
        struct image *p = img->parent;
        uint64_t psize = p ? LOAD_RELAXED (&p->size) : 0;
        uint64_t in = e[i].off < psize ? (e[i].len < psize - e[i].off ? e[i].len : psize - e[i].off) : 0;
        if (in && compose (p, e[i].off, in, o) == -1) return -1;
        if (!o->full && in < e[i].len)
          emit (o, e[i].off + in, e[i].len - in, VHDKIT_EXTENT_ZERO | VHDKIT_EXTENT_HOLE);
      }
    }
    uint64_t done = e[n - 1].off + e[n - 1].len - off;
    off += done;
    len -= done;
  }
  return 0;
}

int
image_extents (struct image *img, uint64_t off, uint64_t len,
               struct image_extent *out, size_t max, size_t *n)
{
  struct ext_out o = { .e = out, .max = max };
  int r = compose (img, off, len, &o);
  *n = o.n;
  return r;
}

/* ---- identity and merges ---- */

bool
image_data_write_guid (struct image *img, uint8_t out[16])
{
  if (!(img->drv->caps & DRV_HAS_DWG)) return false;
  img->drv->data_write_guid (img->inst, out);
  return true;
}

int
image_stat (struct image *img, struct io_stat *st)
{
  struct io *io = io_open (img->path, O_RDONLY, 0);
  if (!io) {
    set_error_errno (errno, "%s: stat", img->path);
    return -1;
  }
  int r = io_stat (io, st);
  if (r == -1) set_error_errno (errno, "%s: stat", img->path);
  io_close (io);
  return r;
}

static int
not_vhdx (struct image *img)
{
  set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: not a VHDX image", img->path);
  return -1;
}

int
image_preset_data_write_guid (struct image *img, const uint8_t dw[16])
{
  if (!img->drv->preset_data_write_guid) return not_vhdx (img);
  return img->drv->preset_data_write_guid (img->inst, dw);
}

int
image_take_data_write_guid (struct image *img)
{
  if (!img->drv->take_data_write_guid) return not_vhdx (img);
  return img->drv->take_data_write_guid (img->inst);
}

int
image_set_linkages (struct image *img, const uint8_t link1[16], const uint8_t link2[16])
{
  if (!img->drv->set_linkages) return not_vhdx (img);
  return img->drv->set_linkages (img->inst, link1, link2);
}

void
image_drop_parent (struct image *img)
{
  if (!img->parent) return;
  img->drv->set_next (img->inst, &(struct drv_next) { .pread = NULL, .opaque = NULL });
  parent_put (img->parent);
  img->parent = NULL;
}

void
image_hint_writeback (struct image *img)
{
  if (img->drv->hint_writeback) img->drv->hint_writeback (img->inst);
}

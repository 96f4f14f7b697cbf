/* The public calls (layer 7, include/vhdkit.h): each clears the calling
 * thread's error, checks what it can of its arguments, dispatches
 * between plain images and VHD Sets (here and nowhere else), and calls
 * the core of the layer below.  No internal code calls these.
 *
 * A struct vhdkit_disk is a disk of the disk layer, and for a disk
 * opened through a set, its registration with the set (set.h).  Its
 * magic number catches a use after close only in the common case; the
 * contract (vhdkit.h, "Conventions") is what the caller keeps. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "disk.h"
#include "set/set.h"

#define HANDLE_MAGIC 0x484b4456u       /* "VDKH" */
#define HANDLE_DEAD  0x44414544u       /* "DEAD" */

struct vhdkit_disk {
  uint32_t magic;
  struct disk *d;
  struct set *set;                     /* opened through a set */
  struct set_disk *sd;
};

const char *
vhdkit_get_version (void)
{
  return VHDKIT_VERSION_STRING;
}

/* The error getters do not clear the error: they read it. */
const char *vhdkit_get_error (void) { return error_message (); }
int vhdkit_get_errno (void) { return error_errno (); }
uint32_t vhdkit_get_error_code (void) { return error_code (); }
const char *vhdkit_rc_name (uint32_t rc) { return rc_name (rc); }

/* A handle that is not one (closed, or never opened). */
static bool
bad_handle (const struct vhdkit_disk *h)
{
  if (h && h->magic == HANDLE_MAGIC) return false;
  set_error (VHDKIT_RC_INVALID_PARAMETER, EBADF, "not an open disk handle%s",
             h && h->magic == HANDLE_DEAD ? " (it was closed)" : "");
  return true;
}

/* FLAGS must be a subset of ALLOWED. */
static bool
bad_flags (const char *what, unsigned flags, unsigned allowed)
{
  if (!(flags & ~allowed)) return false;
  set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: flags 0x%x are not known to this call", what, flags & ~allowed);
  return true;
}

/* A caller's struct: STRUCT_SIZE must be set, and at least FIRST bytes
 * (the struct of the first version). */
static bool
bad_struct (const char *what, uint32_t struct_size, size_t first)
{
  if (struct_size >= first) return false;
  set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
             "%s: struct_size is %" PRIu32 "; set it to the sizeof of the struct (the *_INIT macros do)",
             what, struct_size);
  return true;
}

/* ---- creating, opening, closing ---- */

int
vhdkit_disk_create (const char *path, const struct vhdkit_create_params *p)
{
  clear_error ();
  if (!path || !*path || !p) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "create: no path or parameters given");
    return -1;
  }
  if (bad_struct ("create", p->struct_size, sizeof *p)) return -1;
  if (set_path_split (path, NULL, NULL)) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: a VHD Set is made from an image (vhdkit_set_convert)", path);
    return -1;
  }
  return image_create (path, p);
}

struct vhdkit_disk *
vhdkit_disk_open (const char *path, unsigned flags)
{
  clear_error ();
  if (!path || !*path) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "no path given");
    return NULL;
  }
  if (bad_flags (path, flags, VHDKIT_OPEN_RDWR | VHDKIT_OPEN_NO_PARENT | VHDKIT_OPEN_RAW)) return NULL;
  struct vhdkit_disk *h = calloc (1, sizeof *h);
  if (!h) {
    set_error_errno (ENOMEM, "%s", path);
    return NULL;
  }
  /* SET.vhds and SET.vhds@ID (lib/set/set.c). */
  if (set_path_split (path, NULL, NULL)) {
    if (set_disk_open (path, flags, &h->set, &h->sd) == -1) { free (h); return NULL; }
    h->d = h->sd->d;
  }
  else if (!(h->d = disk_open (path, flags, false))) {
    free (h);
    return NULL;
  }
  h->magic = HANDLE_MAGIC;
  return h;
}

int
vhdkit_disk_close (struct vhdkit_disk *h)
{
  if (!h) return 0;
  clear_error ();
  if (bad_handle (h)) return -1;
  h->magic = HANDLE_DEAD;
  int r = h->set ? set_disk_close (h->set, h->sd) : disk_close (h->d);
  free (h);
  return r;
}

/* ---- I/O ---- */

int
vhdkit_disk_pread (struct vhdkit_disk *h, void *buf, size_t count, uint64_t off, unsigned flags)
{
  clear_error ();
  if (bad_handle (h) || bad_flags ("read", flags, 0)) return -1;
  return disk_pread (h->d, buf, count, off);
}

int
vhdkit_disk_pwrite (struct vhdkit_disk *h, const void *buf, size_t count, uint64_t off,
                    unsigned flags)
{
  clear_error ();
  if (bad_handle (h) || bad_flags ("write", flags, VHDKIT_IO_FUA)) return -1;
  return disk_pwrite (h->d, buf, count, off, flags);
}

int
vhdkit_disk_zero (struct vhdkit_disk *h, uint64_t count, uint64_t off, unsigned flags)
{
  clear_error ();
  if (bad_handle (h) ||
      bad_flags ("zero", flags, VHDKIT_IO_FUA | VHDKIT_IO_NO_HOLE | VHDKIT_IO_FAST_ZERO))
    return -1;
  return disk_zero (h->d, count, off, flags);
}

int
vhdkit_disk_discard (struct vhdkit_disk *h, uint64_t count, uint64_t off, unsigned flags)
{
  clear_error ();
  if (bad_handle (h) || bad_flags ("discard", flags, VHDKIT_IO_FUA)) return -1;
  return disk_discard (h->d, count, off, flags);
}

int
vhdkit_disk_flush (struct vhdkit_disk *h)
{
  clear_error ();
  if (bad_handle (h)) return -1;
  return disk_flush (h->d);
}

int
vhdkit_disk_get_info (struct vhdkit_disk *h, struct vhdkit_disk_info *info)
{
  clear_error ();
  if (bad_handle (h) || bad_struct ("info", info->struct_size, sizeof *info)) return -1;
  uint32_t ss = info->struct_size;
  memset (info, 0, sizeof *info);
  info->struct_size = ss;
  return disk_get_info (h->d, info);
}

int
vhdkit_disk_get_size (struct vhdkit_disk *h, uint64_t *size, uint32_t *lss)
{
  clear_error ();
  if (bad_handle (h)) return -1;
  disk_get_size (h->d, size, lss);
  return 0;
}

int
vhdkit_disk_map (struct vhdkit_disk *h, uint64_t offset, uint64_t length,
                 vhdkit_extent_fn fn, void *opaque)
{
  clear_error ();
  if (bad_handle (h)) return -1;
  uint64_t size, end;
  uint32_t lss;
  disk_get_size (h->d, &size, &lss);
  if (offset % lss || length % lss || !add_ok (offset, length, &end) || end > size) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "map: range %" PRIu64 "+%" PRIu64 " is misaligned or beyond the virtual size %" PRIu64,
               offset, length, size);
    return -1;
  }
  if (length == 0) return 0;
  return disk_map (h->d, offset, length, fn, opaque);
}

int
vhdkit_disk_resize (struct vhdkit_disk *h, uint64_t new_size)
{
  clear_error ();
  if (bad_handle (h)) return -1;
  return disk_resize (h->d, new_size);
}

/* ---- whole files ---- */

int
vhdkit_disk_merge (const char *child_path, vhdkit_progress_fn progress, void *opaque)
{
  clear_error ();
  if (!child_path || !*child_path) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "no path given");
    return -1;
  }
  if (set_path_split (child_path, NULL, NULL)) {
    /* The leaf's parent is a snapshot's frozen image (VS-5). */
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0,
               "%s: merging the leaf of a VHD Set into its parent would change a snapshot; "
               "use vhdkit set delete (or optimize) instead", child_path);
    return -1;
  }
  return disk_merge (child_path, NULL, true, progress, opaque);
}

int
vhdkit_disk_convert (const char *src, const char *dst, const struct vhdkit_create_params *p)
{
  clear_error ();
  struct vhdkit_create_params cp = VHDKIT_CREATE_PARAMS_INIT;
  if (p) {
    if (bad_struct ("convert", p->struct_size, sizeof *p)) return -1;
    cp = *p;
  }
  if (!src || !*src || !dst || !*dst) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "convert: no source or destination given");
    return -1;
  }
  return disk_convert (src, dst, &cp);
}

int
vhdkit_check (const char *path, vhdkit_report_fn report, void *opaque)
{
  clear_error ();
  if (!path || !*path) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "no path given");
    return -1;
  }
  if (set_path_split (path, NULL, NULL))
    return set_check (path, report, opaque);
  return image_check (path, report, opaque);
}

int
vhdkit_probe_format (const char *path)
{
  clear_error ();
  return image_probe (path);
}

/* ---- change tracking ---- */

int
vhdkit_rct_enable (struct vhdkit_disk *h, uint32_t granularity)
{
  clear_error ();
  if (bad_handle (h)) return -1;
  return disk_rct_enable (h->d, granularity);
}

int
vhdkit_rct_disable (struct vhdkit_disk *h)
{
  clear_error ();
  if (bad_handle (h)) return -1;
  return disk_rct_disable (h->d);
}

int
vhdkit_rct_status (struct vhdkit_disk *h, struct vhdkit_rct_status *st)
{
  clear_error ();
  if (bad_handle (h) || bad_struct ("status", st->struct_size, sizeof *st)) return -1;
  uint32_t ss = st->struct_size;
  memset (st, 0, sizeof *st);
  st->struct_size = ss;
  return disk_rct_status (h->d, st);
}

int
vhdkit_rct_checkpoint (struct vhdkit_disk *h, char *id)
{
  clear_error ();
  if (bad_handle (h)) return -1;
  return disk_checkpoint (h->d, id);
}

int
vhdkit_disk_get_changes (struct vhdkit_disk *h, const char *limit_id, const char *target,
                         uint64_t offset, uint64_t length, size_t max_ranges,
                         struct vhdkit_changes *out)
{
  clear_error ();
  if (bad_handle (h) || bad_struct ("changes", out->struct_size, sizeof *out)) return -1;
  uint32_t ss = out->struct_size;
  memset (out, 0, sizeof *out);
  out->struct_size = ss;
  if (h->set)
    return set_changes (h->set, h->sd, limit_id, target, offset, length, max_ranges, out);
  /* §3.3: a target snapshot is for VHD Sets only. */
  if (target && *target) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0,
               "%s: TargetSnapshotId applies to VHD Sets (.vhds) only", h->d->top ? h->d->top->path : "disk");
    return -1;
  }
  return disk_changes (h->d, limit_id, offset, length, max_ranges, out);
}

void
vhdkit_changes_free (struct vhdkit_changes *c)
{
  if (!c) return;
  uint32_t ss = c->struct_size;
  free (c->offsets);
  free (c->lengths);
  free (c->kinds);
  memset (c, 0, sizeof *c);
  c->struct_size = ss;
}

/* ---- VHD Sets ---- */

int
vhdkit_set_convert (const char *image, const char *set_path, uint32_t rct_granularity)
{
  clear_error ();
  return set_convert (image, set_path, rct_granularity);
}

int
vhdkit_set_snapshot (const char *set, const char *id, char *out_id)
{
  clear_error ();
  return set_snapshot (set, id, out_id);
}

int
vhdkit_set_get_info (const char *set, struct vhdkit_set_info *out)
{
  clear_error ();
  if (bad_struct ("set info", out->struct_size, sizeof *out)) return -1;
  uint32_t ss = out->struct_size;
  memset (out, 0, sizeof *out);
  out->struct_size = ss;
  return set_get_info (set, out);
}

void
vhdkit_set_info_free (struct vhdkit_set_info *i)
{
  set_info_free (i);
}

int
vhdkit_set_get_snapshots (const char *set, const char *const *ids, size_t n_ids,
                          bool want_parents, struct vhdkit_snapshot_info ***out, size_t *n)
{
  clear_error ();
  return set_get_snapshots (set, ids, n_ids, want_parents, out, n);
}

void
vhdkit_snapshots_free (struct vhdkit_snapshot_info **s, size_t n)
{
  set_snapshots_free (s, n);
}

int
vhdkit_set_delete_snapshot (const char *set, const char *id, bool persist_reference,
                            vhdkit_progress_fn progress, void *opaque)
{
  clear_error ();
  return set_delete_snapshot (set, id, persist_reference, progress, opaque);
}

int
vhdkit_set_apply_snapshot (const char *set, const char *id)
{
  clear_error ();
  return set_apply_snapshot (set, id);
}

int
vhdkit_set_optimize (const char *set, vhdkit_progress_fn progress, void *opaque)
{
  clear_error ();
  return set_optimize (set, progress, opaque);
}

int
vhdkit_set_set_snapshot_info (const char *set, const struct vhdkit_snapshot_info *info)
{
  clear_error ();
  if (info && bad_struct ("snapshot info", info->struct_size, sizeof *info)) return -1;
  return set_set_snapshot_info (set, info);
}

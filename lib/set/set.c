/* VHD Sets: opening a set (docs/FORMAT-vhds.md), disks opened through
 * it, GetVirtualDiskChanges between snapshots, and the operations
 * (docs/VHD-SETS.md).  Invariants VS-n are cited where they are kept. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "set.h"
#include "io/io.h"
#include "rct/rct.h"
#include "endian.h"

/* ---- paths ---- */

bool
set_path_split (const char *path, char **setpath, const char **snap)
{
  const char *at = NULL;
  /* "X.vhds" or "X.vhds@ID": the last ".vhds" followed by the end or
   * '@', with a name before it. */
  for (const char *p = path; (p = strcasestr (p, ".vhds")); p++)
    if ((p[5] == '\0' || p[5] == '@') && p > path && p[-1] != '/') at = p + 5;
  if (!at) return false;
  if (setpath && !(*setpath = strndup (path, (size_t) (at - path)))) return false;
  if (snap) *snap = *at == '@' ? at + 1 : NULL;
  return true;
}

static int
fsync_dir (const char *dir)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1) return -1;
  int r = fsync (fd);
  close (fd);
  return r;
}

static void
guid_text (const struct guid *g, char *out)
{
  guid_to_text (g, out);
}

/* ---- open, commit, close (VS-1, VS-7) ---- */

void
set_close (struct set *s)
{
  if (!s) return;
  if (s->io) io_close (s->io);
  vhds_free (&s->v);
  free (s->path);
  free (s->dir);
  free (s->stem);
  free (s);
}

struct set *
set_open (const char *path, bool exclusive)
{
  struct set *s = calloc (1, sizeof *s);
  uint8_t *buf = NULL;
  if (!s || !(s->path = strdup (path))) goto nomem;
  s->exclusive = exclusive;
  {
    char *c = strdup (path), *c2 = strdup (path);
    if (!c || !c2) { free (c); free (c2); goto nomem; }
    char rp[PATH_MAX];
    if (!realpath (dirname (c), rp)) {
      set_error_errno (errno, "%s: the folder of the set", path);
      free (c); free (c2);
      goto fail;
    }
    s->dir = strdup (rp);
    const char *base = basename (c2);
    size_t bl = strlen (base);
    s->stem = strndup (base, bl >= 5 ? bl - 5 : bl);
    free (c); free (c2);
    if (!s->dir || !s->stem) goto nomem;
  }
  s->io = io_open (path, exclusive ? O_RDWR : O_RDONLY, 0);
  if (!s->io) {
    set_error_errno (errno, "%s: open the VHD Set file", path);
    goto fail;
  }
  if (io_lock (s->io, exclusive) == -1) {
    set_error (VHDKIT_RC_IN_USE, errno,
               exclusive ? "%s: the set is in use (a disk of it is open, or another operation runs)"
                         : "%s: the set is in use by an operation", path);
    goto fail;
  }
  if (!(buf = malloc (VHDS_SLOT))) goto nomem;
  struct vhds v[2];
  char why[2][300];
  bool ok[2];
  for (int i = 0; i < 2; i++) {
    /* The header says how long the copy is; read no more than that. */
    ssize_t n = io_pread (s->io, buf, VHDS_HDR, (uint64_t) i * VHDS_SLOT);
    if (n == VHDS_HDR) {
      uint32_t len = get_le32 (buf + 24);
      if (len > VHDS_HDR && len <= VHDS_SLOT)
        n = io_pread (s->io, buf, len, (uint64_t) i * VHDS_SLOT);
    }
    if (n < 0) { set_error_errno (errno, "%s: read", path); goto fail; }
    ok[i] = vhds_decode (buf, (size_t) n, &v[i], why[i], sizeof why[i]) == 0;
  }
  if (!ok[0] && !ok[1]) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: the VHD Set file is damaged (copy A: %s; copy B: %s)",
               path, why[0], why[1]);
    goto fail;
  }
  s->slot = ok[0] && ok[1] ? (v[1].seq > v[0].seq) : ok[1];
  s->v = v[s->slot];
  if (ok[1 - s->slot]) vhds_free (&v[1 - s->slot]);
  free (buf);
  return s;
 nomem:
  set_error_errno (ENOMEM, "%s", path);
 fail:
  free (buf);
  set_close (s);
  return NULL;
}

/* VS-1: both copies, the older first. */
static int
set_commit (struct set *s)
{
  char why[300];
  if (vhds_validate (&s->v, why, sizeof why) == -1) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: internal error: the new description is invalid: %s", s->path, why);
    return -1;
  }
  uint8_t *b = malloc (VHDS_SLOT);
  if (!b) { set_error_errno (ENOMEM, "%s", s->path); return -1; }
  s->v.seq++;
  size_t len = vhds_encode (&s->v, b);
  for (int t = 0; t < 2; t++) {
    int slot = 1 - s->slot;
    if (io_pwrite (s->io, b, len, (uint64_t) slot * VHDS_SLOT) == -1 || io_sync (s->io) == -1) {
      set_error_errno (errno, "%s: write the VHD Set file", s->path);
      free (b);
      return -1;
    }
    s->slot = slot;
  }
  free (b);
  return 0;
}

/* VS-2: the path of member I, which must stay in the set's folder. */
char *
set_member_path (struct set *s, uint32_t i)
{
  char *p = NULL;
  if (asprintf (&p, "%s/%s", s->dir, s->v.m[i].name) == -1) {
    set_error_errno (ENOMEM, "%s", s->path);
    return NULL;
  }
  char rp[PATH_MAX];
  if (realpath (p, rp)) {
    char *c = strdup (rp);
    if (!c) { free (p); set_error_errno (ENOMEM, "%s", s->path); return NULL; }
    bool inside = strcmp (dirname (c), s->dir) == 0;
    free (c);
    if (!inside) {
      set_error (VHDKIT_RC_ACCESS_DENIED, 0, "%s: member %s resolves to %s, outside the set's folder %s",
                 s->path, s->v.m[i].name, rp, s->dir);
      free (p);
      return NULL;
    }
  }
  else if (errno == ENOENT) {
    set_error (VHDKIT_RC_FILE_NOT_FOUND, ENOENT, "%s: member %s of the set does not exist", s->path, p);
    free (p);
    return NULL;
  }
  return p;
}

/* A path in the set's folder for NAME (not checked: for new files). */
static char *
set_file (struct set *s, const char *name, const char *suffix)
{
  char *p = NULL;
  if (asprintf (&p, "%s/%s%s", s->dir, name, suffix ? suffix : "") == -1) {
    set_error_errno (ENOMEM, "%s", s->path);
    return NULL;
  }
  return p;
}

static bool
exists (const char *p)
{
  struct stat st;
  return lstat (p, &st) == 0;
}

/* The in-memory effect of the last commit of a merge (VS-6) whose rename
 * is done: what a reader sees when an operation was interrupted. */
static void
settle_merge (struct set *s)
{
  uint32_t c = s->v.pend_child, f = s->v.pend_parent;
  s->v.m[c].parent = s->v.m[f].parent;
  s->v.pending = 0;
  vhds_remove_member (&s->v, f);
}

void
set_settle_view (struct set *s)
{
  if (s->v.pending != VHDS_PENDING_MERGE) return;
  char *f = set_file (s, s->v.m[s->v.pend_parent].name, NULL);
  if (f && !exists (f)) settle_merge (s);
  free (f);
}

/* ---- disks opened through a set ---- */

static int
parse_snapshot_id (const char *setpath, const char *text, struct guid *g)
{
  if (!text || guid_from_text (g, text) == -1) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: \"%s\" is not a snapshot ID (a GUID)",
               setpath, text ? text : "");
    return -1;
  }
  return 0;
}

/* The record of snapshot TEXT that has an image. */
static int
find_snapshot (struct set *s, const char *text, uint32_t *rec)
{
  struct guid g;
  if (parse_snapshot_id (s->path, text, &g) == -1) return -1;
  uint32_t i = vhds_find_record (&s->v, &g);
  if (i == VHDS_NONE) {
    set_error (VHDKIT_RC_INVALID_STATE, 0, "%s: the set has no snapshot %s", s->path, text);
    return -1;
  }
  if (s->v.r[i].member == VHDS_NONE) {
    set_error (VHDKIT_RC_INVALID_STATE, 0,
               "%s: %s is a reference point of a deleted snapshot: it has no content, only its RCT ID",
               s->path, text);
    return -1;
  }
  *rec = i;
  return 0;
}

static bool
same_file (const char *a, const char *b)
{
  struct stat sa, sb;
  return stat (a, &sa) == 0 && stat (b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* VS-3: the chain the files name is the chain the set names. */
static int
check_chain (struct set *s, struct vhdkit_disk *d, uint32_t m)
{
  const char *prev = NULL;
  for (;;) {
    char *mp = set_member_path (s, m);
    if (!mp) return -1;
    bool same = same_file (d->path, mp);
    free (mp);
    if (!same) {
      set_error (VHDKIT_RC_FAILED, 0, "%s: the set is damaged: it names %s where %s",
                 s->path, s->v.m[m].name,
                 prev ? "the parent locator of the image before it names another file" : "it opened another file");
      if (prev) {
        char *msg = strdup (vhdkit_get_error ());
        if (msg) {
          set_error (VHDKIT_RC_FAILED, 0, "%s (%s names %s as its parent)", msg, prev, d->path);
          free (msg);
        }
      }
      return -1;
    }
    uint32_t p = s->v.m[m].parent;
    if (!d->parent_path && p == VHDS_NONE) return 0;
    if (!d->parent_path || p == VHDS_NONE) {
      set_error (VHDKIT_RC_FAILED, 0, "%s: the set is damaged: %s %s", s->path, d->path,
                 p == VHDS_NONE ? "is a differencing image, but the set names it as the base"
                                : "is not a differencing image, but the set gives it a parent");
      return -1;
    }
    if (!d->parent) return 0;          /* VHDKIT_OPEN_NO_PARENT */
    prev = d->path;
    d = d->parent;
    m = p;
  }
}

struct vhdkit_disk *
set_disk_open (const char *path, unsigned flags)
{
  char *sp = NULL;
  const char *snap = NULL;
  if (!set_path_split (path, &sp, &snap)) {
    set_error_errno (ENOMEM, "%s", path);
    return NULL;
  }
  struct vhdkit_disk *d = NULL;
  char *mp = NULL;
  struct set *s = set_open (sp, false);
  if (!s) goto fail;
  set_settle_view (s);
  uint32_t m = s->v.leaf;
  if (snap) {
    uint32_t rec;
    if (find_snapshot (s, snap, &rec) == -1) goto fail;
    if (flags & VHDKIT_OPEN_RDWR) {
      set_error (VHDKIT_RC_ACCESS_DENIED, EROFS, "%s: snapshot %s is read-only; write to the set (its leaf) instead",
                 sp, snap);
      goto fail;
    }
    m = s->v.r[rec].member;
  }
  if (!(mp = set_member_path (s, m))) goto fail;
  d = vhdkit_disk_open (mp, flags);
  if (!d) { error_prefix ("%s", sp); goto fail; }
  if (check_chain (s, d, m) == -1) goto fail;
  d->set = s;
  d->set_snapshot = snap != NULL;
  free (mp);
  free (sp);
  return d;
 fail:
  {
    struct saved_error e;
    error_save (&e);
    if (d) vhdkit_disk_close (d);
    set_close (s);
    error_restore (&e);
  }
  free (mp);
  free (sp);
  return NULL;
}

/* ---- GetVirtualDiskChanges on a set (DESIGN.md §3.2–3.3) ---- */

static void
record_rct_id (const struct vhds_record *r, char *out)
{
  rct_format_id (&r->epoch, r->gen, out);
}

int
set_resolve_query (struct vhdkit_disk *d, const char *limit_id, const char *target,
                   char *buf, const char **limit, struct vhdkit_disk **td, bool *empty)
{
  struct set *s = d->set;
  struct guid g, e;
  uint32_t lgen = 0;
  *limit = limit_id;
  *td = NULL;
  *empty = false;
  /* LimitId: a snapshot ID (of a snapshot or a reference point) stands
   * for the RCT ID it recorded. */
  if (limit_id && guid_from_text (&g, limit_id) == 0) {
    uint32_t i = vhds_find_record (&s->v, &g);
    if (i == VHDS_NONE) {
      set_error (VHDKIT_RC_INVALID_STATE, 0,
                 "%s: LimitId %s is not a snapshot or reference point of the set; a full backup is needed",
                 s->path, limit_id);
      return -1;
    }
    if (!(s->v.r[i].flags & VHDS_REC_HAS_RCT)) {
      set_error (VHDKIT_RC_INVALID_STATE, 0,
                 "%s: snapshot %s was taken without change tracking, so there are no changes to compare with; a full backup is needed",
                 s->path, limit_id);
      return -1;
    }
    record_rct_id (&s->v.r[i], buf);
    *limit = buf;
  }
  if (!target || !*target) return 0;
  if (d->set_snapshot) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: TargetSnapshotId is for the set itself (SET.vhds), not for one of its snapshots (SET.vhds@ID)", s->path);
    return -1;
  }
  uint32_t t;
  if (find_snapshot (s, target, &t) == -1) return -1;
  const struct vhds_record *tr = &s->v.r[t];
  if (!(tr->flags & VHDS_REC_HAS_RCT)) {
    set_error (VHDKIT_RC_INVALID_STATE, 0,
               "%s: target snapshot %s was taken without change tracking; a full backup is needed", s->path, target);
    return -1;
  }
  if (!*limit || rct_parse_id (*limit, &e, &lgen) == -1) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: LimitId \"%s\" is neither an RCT ID nor a snapshot ID", s->path, *limit ? *limit : "");
    return -1;
  }
  if (!guid_eq (&e, &tr->epoch)) {
    set_error (VHDKIT_RC_INVALID_STATE, 0,
               "%s: LimitId %s and target snapshot %s belong to different tracking epochs; a full backup is needed",
               s->path, limit_id, target);
    return -1;
  }
  if (lgen > tr->gen) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: target snapshot %s is older than LimitId %s; give the older point as LimitId",
               s->path, target, limit_id);
    return -1;
  }
  char *mp = set_member_path (s, tr->member);
  if (!mp) return -1;
  /* Only its tracking is read: not its parents. */
  *td = vhdkit_disk_open (mp, VHDKIT_OPEN_RDONLY | VHDKIT_OPEN_NO_PARENT);
  free (mp);
  if (!*td) { error_prefix ("%s: target snapshot %s", s->path, target); return -1; }
  *empty = lgen == tr->gen;
  return 0;
}

/* ---- helpers of the operations ---- */

static int64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The DataWriteGuid of image PATH. */
static int
image_dwg (const char *path, uint8_t out[16])
{
  struct vhdkit_disk *d = disk_open_untracked (path, VHDKIT_OPEN_RDONLY | VHDKIT_OPEN_NO_PARENT);
  if (!d) return -1;
  int r = 0;
  if (!d->drv->data_write_guid) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: not a VHDX image", path);
    r = -1;
  }
  else
    d->drv->data_write_guid (d, out);
  vhdkit_disk_close (d);
  return r;
}

static void
unlink_sidecars (const char *image)
{
  char *p;
  if (asprintf (&p, "%s.rct", image) != -1) { unlink (p); free (p); }
  if (asprintf (&p, "%s.mrt", image) != -1) { unlink (p); free (p); }
}

static void
unlink_image (const char *image)
{
  unlink (image);
  unlink_sidecars (image);
}

/* Cleanup on a failure path: the error of the failure stays. */
static void
unlink_image_keep_error (const char *image)
{
  struct saved_error e;
  error_save (&e);
  unlink_image (image);
  error_restore (&e);
}

static void
close_keep_error (struct vhdkit_disk *d)
{
  if (!d) return;
  struct saved_error e;
  error_save (&e);
  vhdkit_disk_close (d);
  error_restore (&e);
}

/* A fresh member name: SETNAME_<GUID>.avhdx (VS-4). */
static int
new_member_name (struct set *s, char *name, size_t n)
{
  struct guid g;
  char t[40];
  if (guid_generate (&g) == -1) { set_error_errno (errno, "%s: random GUID", s->path); return -1; }
  guid_text (&g, t);
  for (char *p = t; *p; p++) if (*p >= 'a' && *p <= 'f') *p = (char) (*p - 'a' + 'A');
  if ((size_t) snprintf (name, n, "%s_%s.avhdx", s->stem, t) >= n) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, ENAMETOOLONG, "%s: the set's name is too long for member names", s->path);
    return -1;
  }
  return 0;
}

/* VS-6: finish a pending merge of child C into parent F. */
static int
finish_merge (struct set *s, vhdkit_progress_fn progress, void *opaque)
{
  uint32_t c = s->v.pend_child, f = s->v.pend_parent;
  char *fp = set_file (s, s->v.m[f].name, NULL), *cp = NULL;
  int r = -1;
  if (!fp) return -1;
  if (exists (fp)) {
    uint8_t dwg[16];
    if (!(cp = set_member_path (s, c))) goto out;
    /* The parent's frozen tracking belonged to the deleted snapshot. */
    unlink_sidecars (fp);
    if (image_dwg (cp, dwg) == -1 ||
        disk_merge_into_parent (cp, dwg, progress, opaque) == -1) {
      error_prefix ("%s: merge %s into %s", s->path, s->v.m[c].name, s->v.m[f].name);
      goto out;
    }
    /* F now holds C's content under C's DataWriteGuid: it takes C's
     * place (and name, and tracking files). */
    if (rename (fp, cp) == -1) { set_error_errno (errno, "%s: rename %s to %s", s->path, fp, cp); goto out; }
    if (fsync_dir (s->dir) == -1) { set_error_errno (errno, "%s: flush folder", s->dir); goto out; }
  }
  settle_merge (s);
  r = set_commit (s);
 out:
  free (fp);
  free (cp);
  return r;
}

/* Make member M go away if nothing needs it on its own (no record, not
 * the leaf): no child → delete it; one child → merge the child into it
 * (VS-6); more → keep.  *CHANGED tells whether anything happened. */
static int
collapse (struct set *s, uint32_t m, vhdkit_progress_fn progress, void *opaque, bool *changed)
{
  *changed = false;
  if (m == s->v.leaf || vhds_record_of_member (&s->v, m) != VHDS_NONE) return 0;
  uint32_t child = VHDS_NONE;
  uint32_t n = vhds_children (&s->v, m, &child);
  if (n == 0) {
    char *p = set_file (s, s->v.m[m].name, NULL);
    if (!p) return -1;
    vhds_remove_member (&s->v, m);
    int r = set_commit (s);
    if (r == 0) unlink_image (p);       /* VS-4: after the commit */
    free (p);
    *changed = r == 0;
    return r;
  }
  if (n > 1) return 0;
  s->v.pending = VHDS_PENDING_MERGE;
  s->v.pend_child = child;
  s->v.pend_parent = m;
  if (set_commit (s) == -1) return -1;
  *changed = true;
  return finish_merge (s, progress, opaque);
}

/* Remove unreferenced files named like members (VS-4). */
static void
remove_orphans (struct set *s, bool list_only, char ***out, size_t *nout)
{
  DIR *dir = opendir (s->dir);
  if (!dir) return;
  size_t sl = strlen (s->stem);
  struct dirent *e;
  while ((e = readdir (dir))) {
    const char *nm = e->d_name;
    if (strncmp (nm, s->stem, sl) != 0 || nm[sl] != '_') continue;
    /* Exactly the names vhdkit gives members: SETNAME_<GUID>.avhdx, then
     * nothing or a suffix of its own (.rct, .mrt, temporary names).  A
     * user's file that merely starts with the set's name is not ours. */
    struct guid g;
    char gt[GUID_TEXT_LEN + 1];
    snprintf (gt, sizeof gt, "%s", nm + sl + 1);
    const char *x = nm + sl + 1 + GUID_TEXT_LEN;
    if (strlen (gt) != GUID_TEXT_LEN || guid_from_text (&g, gt) == -1 || strncmp (x, ".avhdx", 6) != 0)
      continue;
    if (x[6] && strcmp (x + 6, ".rct") != 0 && strcmp (x + 6, ".mrt") != 0 &&
        strcmp (x + 6, ".rct.tmp") != 0 && strncmp (x + 6, ".tmp-", 5) != 0)
      continue;
    size_t ml = (size_t) (x + 6 - nm);
    bool member = false;
    for (uint32_t i = 0; i < s->v.nmembers && !member; i++)
      member = strlen (s->v.m[i].name) == ml && strncmp (s->v.m[i].name, nm, ml) == 0;
    /* A member's own sidecars (and nothing else of its name) stay. */
    if (member && (x[6] == '\0' || strcmp (x + 6, ".rct") == 0 || strcmp (x + 6, ".mrt") == 0))
      continue;
    char *p = set_file (s, nm, NULL);
    if (!p) continue;
    if (list_only) {
      char **a = realloc (*out, (*nout + 1) * sizeof *a);
      if (a) { *out = a; a[(*nout)++] = p; p = NULL; }
    }
    else
      unlink (p);
    free (p);
  }
  closedir (dir);
}

/* Open SET for an operation: exclusive, and any interrupted one done. */
static struct set *
op_begin (const char *setpath, vhdkit_progress_fn progress, void *opaque)
{
  clear_error ();
  if (!setpath || !set_path_split (setpath, NULL, NULL)) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: not a VHD Set file (.vhds)", setpath ? setpath : "");
    return NULL;
  }
  const char *snap = NULL;
  set_path_split (setpath, NULL, &snap);
  if (snap) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: give the set itself, without @snapshot", setpath);
    return NULL;
  }
  struct set *s = set_open (setpath, true);
  if (!s) return NULL;
  if (s->v.pending == VHDS_PENDING_MERGE && finish_merge (s, progress, opaque) == -1) {
    error_prefix ("%s: finishing an interrupted merge", setpath);
    set_close (s);
    return NULL;
  }
  return s;
}

/* ---- the operations ---- */

int
vhdkit_set_convert (const char *image, const char *set_path, uint32_t gran)
{
  clear_error ();
  char *sp = NULL, *tmp = NULL, *c = NULL, *c2 = NULL;
  struct vhdkit_disk *d = NULL;
  struct io *io = NULL;
  uint8_t *b = NULL;
  int r = -1;
  if (!image || !*image) { set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "no image given"); return -1; }
  if (set_path_split (image, NULL, NULL)) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: already a VHD Set", image);
    return -1;
  }
  if (set_path && *set_path) sp = strdup (set_path);
  else {
    const char *dot = strrchr (image, '.'), *sl = strrchr (image, '/');
    size_t n = dot && (!sl || dot > sl) ? (size_t) (dot - image) : strlen (image);
    if (asprintf (&sp, "%.*s.vhds", (int) n, image) == -1) sp = NULL;
  }
  if (!sp || !(c = strdup (image)) || !(c2 = strdup (sp))) { set_error_errno (ENOMEM, "%s", image); goto out; }
  if (!set_path_split (sp, NULL, NULL)) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: a VHD Set file name ends in .vhds", sp);
    goto out;
  }
  {
    char a[PATH_MAX], bdir[PATH_MAX];
    if (!realpath (dirname (c), a) || !realpath (dirname (c2), bdir)) {
      set_error_errno (errno, "%s: folder", sp);
      goto out;
    }
    if (strcmp (a, bdir) != 0) {
      set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: the set must be in the folder of its image %s", sp, image);
      goto out;
    }
  }
  if (exists (sp)) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, EEXIST, "%s: already exists", sp);
    goto out;
  }
  {
    /* The description first: nothing changes if the set cannot exist. */
    struct vhds t = { .leaf = 0 };
    const char *bn0 = strrchr (image, '/') ? strrchr (image, '/') + 1 : image;
    char why0[300];
    int bad = strlen (bn0) >= VHDS_NAME_MAX ? -2 : vhds_add_member (&t, bn0, VHDS_NONE, NULL);
    if (bad == 0) bad = vhds_validate (&t, why0, sizeof why0);
    else snprintf (why0, sizeof why0, "the file name is too long");
    vhds_free (&t);
    if (bad != 0) {
      set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: cannot be the base of a set: %s", image, why0);
      goto out;
    }
  }
  d = vhdkit_disk_open (image, VHDKIT_OPEN_RDWR);
  if (!d) goto out;
  if (!d->drv->data_write_guid) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: a VHD Set's base must be a VHDX image", image);
    goto out;
  }
  if (d->parent_path) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: a differencing image cannot be the base of a VHD Set (merge it first)", image);
    goto out;
  }
  if (!d->rct && gran != UINT32_MAX && vhdkit_rct_enable (d, gran) == -1) goto out;
  if (vhdkit_disk_close (d) == -1) { d = NULL; goto out; }
  d = NULL;
  /* The set file: both copies under a temporary name, then into place. */
  struct vhds v = { .seq = 0, .leaf = 0 };
  if (guid_generate (&v.set_id) == -1) { set_error_errno (errno, "%s: random GUID", sp); goto out; }
  const char *bn = strrchr (image, '/') ? strrchr (image, '/') + 1 : image;
  if (strlen (bn) >= VHDS_NAME_MAX) { set_error (VHDKIT_RC_INVALID_PARAMETER, ENAMETOOLONG, "%s: name too long", image); goto out; }
  if (vhds_add_member (&v, bn, VHDS_NONE, NULL) == -1) { set_error_errno (ENOMEM, "%s", sp); goto out; }
  char why[300];
  if (vhds_validate (&v, why, sizeof why) == -1) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: %s", sp, why);
    vhds_free (&v);
    goto out;
  }
  if (asprintf (&tmp, "%s.tmp", sp) == -1) { tmp = NULL; vhds_free (&v); goto out; }
  unlink (tmp);
  b = malloc (VHDS_SLOT);
  io = io_open (tmp, O_RDWR | O_CREAT | O_EXCL, 0666);
  if (!b || !io) { set_error_errno (b ? errno : ENOMEM, "%s: create", tmp); vhds_free (&v); goto out; }
  v.seq = 1;
  size_t len = vhds_encode (&v, b);
  vhds_free (&v);
  if (io_pwrite (io, b, len, 0) == -1 || io_pwrite (io, b, len, VHDS_SLOT) == -1 || io_sync (io) == -1) {
    set_error_errno (errno, "%s: write", tmp);
    goto out;
  }
  if (renameat2 (AT_FDCWD, tmp, AT_FDCWD, sp, RENAME_NOREPLACE) == -1) {
    set_error_errno (errno, "%s: rename into place", sp);
    goto out;
  }
  free (tmp);
  tmp = NULL;
  {
    char *c3 = strdup (sp);
    if (c3) { fsync_dir (dirname (c3)); free (c3); }
  }
  r = 0;
 out:
  {
    struct saved_error e;
    if (r == -1) error_save (&e);
    if (d) vhdkit_disk_close (d);
    if (io) io_close (io);
    if (tmp) unlink (tmp);
    if (r == -1) error_restore (&e);
  }
  free (b); free (sp); free (tmp); free (c); free (c2);
  return r;
}

int
vhdkit_set_snapshot (const char *setpath, const char *id, char *out_id)
{
  struct set *s = op_begin (setpath, NULL, NULL);
  if (!s) return -1;
  int r = -1;
  char *lp = NULL, *np = NULL;
  struct vhdkit_disk *d = NULL;
  struct vhds_record rec = { .member = s->v.leaf, .ctime_ns = now_ns () };
  if (id && *id) {
    if (parse_snapshot_id (s->path, id, &rec.id) == -1) goto out;
    if (guid_is_zero (&rec.id)) {
      set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: the zero GUID is not a snapshot ID", s->path);
      goto out;
    }
    if (vhds_find_record (&s->v, &rec.id) != VHDS_NONE) {
      set_error (VHDKIT_RC_INVALID_PARAMETER, EEXIST, "%s: snapshot %s already exists", s->path, id);
      goto out;
    }
  }
  else if (guid_generate (&rec.id) == -1) { set_error_errno (errno, "%s: random GUID", s->path); goto out; }
  if (s->v.nrecords >= VHDS_MAX_RECORDS || s->v.nmembers >= VHDS_MAX_MEMBERS) {
    set_error (VHDKIT_RC_OUT_OF_MEMORY, 0, "%s: the set holds the most snapshots or images it can (%d, %d); delete some first",
               s->path, VHDS_MAX_RECORDS, VHDS_MAX_MEMBERS);
    goto out;
  }
  if (!(lp = set_member_path (s, s->v.leaf))) goto out;
  /* Seal the leaf's generation: its RCT ID goes into the record. */
  d = vhdkit_disk_open (lp, VHDKIT_OPEN_RDWR);
  if (!d) goto out;
  if (check_chain (s, d, s->v.leaf) == -1) goto out;
  if (d->rct) {
    struct vhdkit_rct_status st;
    char idt[VHDKIT_RCT_ID_MAX];
    if (vhdkit_rct_status (d, &st) == -1) goto out;
    if (st.enabled && !st.problem[0]) {
      if (vhdkit_rct_checkpoint (d, idt) == -1) goto out;
      if (rct_parse_id (idt, &rec.epoch, &rec.gen) == -1) {
        set_error (VHDKIT_RC_FAILED, 0, "%s: internal error: bad RCT ID %s", lp, idt);
        goto out;
      }
      rec.flags |= VHDS_REC_HAS_RCT;
    }
  }
  if (vhdkit_disk_close (d) == -1) { d = NULL; goto out; }
  d = NULL;
  /* The new leaf (VS-4: not named by the set until the commit). */
  char name[VHDS_NAME_MAX];
  if (new_member_name (s, name, sizeof name) == -1) goto out;
  if (!(np = set_file (s, name, NULL))) goto out;
  struct vhdkit_create_params p = { .format = VHDKIT_FORMAT_VHDX, .type = VHDKIT_TYPE_DIFFERENCING, .parent = lp };
  if (vhdkit_disk_create (np, &p) == -1) goto out;
  if (rec.flags & VHDS_REC_HAS_RCT) {
    uint8_t dwg[16];
    if (image_dwg (np, dwg) == -1 || rct_clone_files (lp, np, dwg) == -1) goto out_unlink;
  }
  if (fsync_dir (s->dir) == -1) { set_error_errno (errno, "%s: flush folder", s->dir); goto out_unlink; }
  uint32_t ni;
  if (vhds_add_member (&s->v, name, s->v.leaf, &ni) == -1 || vhds_add_record (&s->v, &rec) == -1) {
    set_error_errno (ENOMEM, "%s", s->path);
    goto out_unlink;
  }
  s->v.leaf = ni;
  /* A failed commit may still have reached the disk: the new files
   * stay (an unreferenced one is removed by set optimize, VS-4). */
  if (set_commit (s) == -1) goto out;
  if (out_id) guid_text (&rec.id, out_id);
  r = 0;
  goto out;
 out_unlink:
  unlink_image_keep_error (np);
 out:
  close_keep_error (d);
  free (lp);
  free (np);
  set_close (s);
  return r;
}

int
vhdkit_set_delete_snapshot (const char *setpath, const char *id, bool persist,
                            vhdkit_progress_fn progress, void *opaque)
{
  struct set *s = op_begin (setpath, progress, opaque);
  if (!s) return -1;
  int r = -1;
  struct guid g;
  if (parse_snapshot_id (s->path, id, &g) == -1) goto out;
  uint32_t i = vhds_find_record (&s->v, &g);
  if (i == VHDS_NONE) {
    set_error (VHDKIT_RC_INVALID_STATE, 0, "%s: the set has no snapshot %s", s->path, id);
    goto out;
  }
  uint32_t m = s->v.r[i].member;
  if (persist && (s->v.r[i].flags & VHDS_REC_HAS_RCT))
    s->v.r[i].member = VHDS_NONE;       /* a reference point */
  else
    vhds_remove_record (&s->v, i);
  if (m == VHDS_NONE) { r = set_commit (s); goto out; }
  bool changed;
  /* The record change is committed with the merge intent, or alone. */
  if (collapse (s, m, progress, opaque, &changed) == -1) goto out;
  r = changed ? 0 : set_commit (s);
 out:
  set_close (s);
  return r;
}

int
vhdkit_set_optimize (const char *setpath, vhdkit_progress_fn progress, void *opaque)
{
  struct set *s = op_begin (setpath, progress, opaque);
  if (!s) return -1;
  int r = 0;
  for (bool again = true; again && r == 0; ) {
    again = false;
    for (uint32_t m = 0; m < s->v.nmembers && r == 0; m++) {
      bool changed;
      r = collapse (s, m, progress, opaque, &changed);
      if (changed) { again = true; break; }
    }
  }
  if (r == 0) remove_orphans (s, false, NULL, NULL);
  set_close (s);
  return r;
}

/* Every block changed since the snapshot counts as changed again in the
 * new leaf N, whose tracking is a copy of the old leaf's. */
static int
mark_reverted (struct vhdkit_disk *n, const char *rctid)
{
  for (uint64_t off = 0; off < n->size; ) {
    struct vhdkit_changes c;
    if (vhdkit_disk_get_changes (n, rctid, NULL, off, n->size - off, 0, &c) == -1) return -1;
    int r = 0;
    pthread_mutex_lock (&n->lock);
    for (size_t k = 0; k < c.count && r == 0; k++)
      r = rct_mark_changed (n, c.offsets[k], c.lengths[k]);
    pthread_mutex_unlock (&n->lock);
    off += c.processed;
    vhdkit_changes_free (&c);
    if (r == -1) return -1;
  }
  return 0;
}

int
vhdkit_set_apply_snapshot (const char *setpath, const char *id)
{
  struct set *s = op_begin (setpath, NULL, NULL);
  if (!s) return -1;
  int r = -1;
  char *lp = NULL, *fp = NULL, *np = NULL;
  struct vhdkit_disk *d = NULL;
  uint32_t rec;
  if (find_snapshot (s, id, &rec) == -1) goto out;
  struct vhds_record sr = s->v.r[rec];
  uint32_t old_leaf = s->v.leaf;
  if (!(lp = set_member_path (s, old_leaf)) || !(fp = set_member_path (s, sr.member))) goto out;
  /* Can the old leaf's tracking carry on?  Only in the snapshot's epoch
   * and at the snapshot's size. */
  bool carry = false, track = false;
  uint64_t snap_size = 0;
  {
    struct vhdkit_disk *sd = vhdkit_disk_open (fp, VHDKIT_OPEN_RDONLY);
    if (!sd) goto out;
    snap_size = sd->size;
    vhdkit_disk_close (sd);
  }
  d = vhdkit_disk_open (lp, VHDKIT_OPEN_RDWR);   /* recovers the leaf's tracking */
  if (!d) goto out;
  if (d->rct) {
    struct vhdkit_rct_status st;
    if (vhdkit_rct_status (d, &st) == -1) goto out;
    track = st.enabled;
    struct guid e;
    carry = st.enabled && !st.problem[0] && (sr.flags & VHDS_REC_HAS_RCT) && d->size == snap_size &&
            guid_from_text (&e, st.epoch) == 0 && guid_eq (&e, &sr.epoch);
  }
  uint32_t granularity = 0;
  if (track) {
    struct vhdkit_rct_status st;
    if (vhdkit_rct_status (d, &st) == 0) granularity = st.granularity;
  }
  if (vhdkit_disk_close (d) == -1) { d = NULL; goto out; }
  d = NULL;
  char name[VHDS_NAME_MAX];
  if (new_member_name (s, name, sizeof name) == -1) goto out;
  if (!(np = set_file (s, name, NULL))) goto out;
  struct vhdkit_create_params p = { .format = VHDKIT_FORMAT_VHDX, .type = VHDKIT_TYPE_DIFFERENCING, .parent = fp };
  if (vhdkit_disk_create (np, &p) == -1) goto out;
  if (carry) {
    uint8_t dwg[16];
    char rid[VHDKIT_RCT_ID_MAX];
    record_rct_id (&sr, rid);
    if (image_dwg (np, dwg) == -1 || rct_clone_files (lp, np, dwg) == -1) goto out_unlink;
    struct vhdkit_disk *n = vhdkit_disk_open (np, VHDKIT_OPEN_RDWR);
    if (!n) goto out_unlink;
    int mr = mark_reverted (n, rid);
    if (vhdkit_disk_close (n) == -1) mr = -1;
    if (mr == -1) goto out_unlink;
  }
  else if (track) {
    /* Tracking starts over: IDs of the old leaf's epoch cannot describe
     * the new branch. */
    struct vhdkit_disk *n = vhdkit_disk_open (np, VHDKIT_OPEN_RDWR);
    if (!n) goto out_unlink;
    int er = vhdkit_rct_enable (n, granularity);
    if (vhdkit_disk_close (n) == -1) er = -1;
    if (er == -1) goto out_unlink;
  }
  if (fsync_dir (s->dir) == -1) { set_error_errno (errno, "%s: flush folder", s->dir); goto out_unlink; }
  uint32_t ni;
  if (vhds_add_member (&s->v, name, sr.member, &ni) == -1) { set_error_errno (ENOMEM, "%s", s->path); goto out_unlink; }
  s->v.leaf = ni;
  uint32_t parent_of_old = s->v.m[old_leaf].parent;
  vhds_remove_member (&s->v, old_leaf);
  if (parent_of_old != VHDS_NONE && parent_of_old > old_leaf) parent_of_old--;
  if (set_commit (s) == -1) goto out;    /* see vhdkit_set_snapshot */
  unlink_image (lp);                     /* VS-4: after the commit */
  r = 0;
  /* The old leaf's ancestors that only it needed go too. */
  for (uint32_t m = parent_of_old; m != VHDS_NONE && r == 0; ) {
    uint32_t up = s->v.m[m].parent;
    bool changed;
    if (vhds_children (&s->v, m, NULL) != 0) break;
    r = collapse (s, m, NULL, NULL, &changed);
    if (!changed) break;
    if (up != VHDS_NONE && up > m) up--;
    m = up;
  }
  goto out;
 out_unlink:
  unlink_image_keep_error (np);
 out:
  close_keep_error (d);
  free (lp); free (fp); free (np);
  set_close (s);
  return r;
}

int
vhdkit_set_set_snapshot_info (const char *setpath, const struct vhdkit_snapshot_info *info)
{
  struct set *s = op_begin (setpath, NULL, NULL);
  if (!s) return -1;
  int r = -1;
  struct vhds_record nr = { .member = VHDS_NONE };
  if (!info || parse_snapshot_id (s->path, info->snapshot_id, &nr.id) == -1) goto out;
  if (guid_is_zero (&nr.id)) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: the zero GUID is not a snapshot ID", s->path);
    goto out;
  }
  uint32_t i = vhds_find_record (&s->v, &nr.id);
  if (i != VHDS_NONE) nr = s->v.r[i];
  else nr.ctime_ns = now_ns ();
  if (info->creation_time_ns) nr.ctime_ns = info->creation_time_ns;
  /* The image: only for a new record, or the same as before. */
  if (info->snapshot_path && *info->snapshot_path) {
    uint32_t m = VHDS_NONE;
    for (uint32_t k = 0; k < s->v.nmembers && m == VHDS_NONE; k++) {
      char *mp = set_file (s, s->v.m[k].name, NULL);
      if (mp && same_file (mp, info->snapshot_path)) m = k;
      free (mp);
    }
    if (m == VHDS_NONE) {
      set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: %s is not an image of the set", s->path, info->snapshot_path);
      goto out;
    }
    if (m != nr.member) {
      if (i != VHDS_NONE && nr.member != VHDS_NONE) {
        set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: snapshot %s already has its image; its content cannot be moved",
                   s->path, info->snapshot_id);
        goto out;
      }
      if (m == s->v.leaf || vhds_record_of_member (&s->v, m) != VHDS_NONE) {
        set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: %s is %s", s->path, info->snapshot_path,
                   m == s->v.leaf ? "the leaf, which takes the writes and cannot be a snapshot"
                                  : "already the image of another snapshot");
        goto out;
      }
      nr.member = m;
    }
  }
  /* The RCT ID must be the one the image was sealed with (VS-5), or for
   * a reference point one of the leaf's epoch that was issued. */
  if (info->rct_id[0]) {
    struct guid e;
    uint32_t gen;
    if (rct_parse_id (info->rct_id, &e, &gen) == -1) {
      set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: \"%s\" is not an RCT ID", s->path, info->rct_id);
      goto out;
    }
    uint32_t m = nr.member != VHDS_NONE ? nr.member : s->v.leaf;
    char *mp = set_member_path (s, m);
    if (!mp) goto out;
    struct vhdkit_disk *d = vhdkit_disk_open (mp, VHDKIT_OPEN_RDONLY);
    free (mp);
    if (!d) goto out;
    struct vhdkit_rct_status st;
    struct guid ce;
    int sr = vhdkit_rct_status (d, &st);
    vhdkit_disk_close (d);
    if (sr == -1) goto out;
    bool ok = st.enabled && !st.problem[0] && guid_from_text (&ce, st.epoch) == 0 && guid_eq (&ce, &e);
    if (ok && nr.member != VHDS_NONE) ok = gen + 1 == st.generation;
    if (ok && nr.member == VHDS_NONE) ok = gen >= 1 && gen < st.generation;
    if (!ok) {
      set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
                 nr.member != VHDS_NONE ? "%s: %s is not the RCT ID the snapshot's image was sealed with"
                                        : "%s: %s is not a reference point of the set's tracking",
                 s->path, info->rct_id);
      goto out;
    }
    nr.epoch = e;
    nr.gen = gen;
    nr.flags |= VHDS_REC_HAS_RCT;
  }
  if (nr.member == VHDS_NONE && !(nr.flags & VHDS_REC_HAS_RCT)) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: a record needs an image of the set or an RCT ID", s->path);
    goto out;
  }
  if (i != VHDS_NONE) s->v.r[i] = nr;
  else if (s->v.nrecords >= VHDS_MAX_RECORDS) {
    set_error (VHDKIT_RC_OUT_OF_MEMORY, 0, "%s: the set holds the most records it can (%d)", s->path, VHDS_MAX_RECORDS);
    goto out;
  }
  else if (vhds_add_record (&s->v, &nr) == -1) { set_error_errno (ENOMEM, "%s", s->path); goto out; }
  r = set_commit (s);
 out:
  set_close (s);
  return r;
}

/* ---- information ---- */

static int
push_str (char ***a, size_t *n, char *s)
{
  if (!s) return -1;
  char **x = realloc (*a, (*n + 1) * sizeof *x);
  if (!x) { free (s); return -1; }
  *a = x;
  x[(*n)++] = s;
  return 0;
}

static struct set *
info_begin (const char *setpath)
{
  clear_error ();
  const char *snap = NULL;
  if (!setpath || !set_path_split (setpath, NULL, &snap) || snap) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: not a VHD Set file (.vhds)", setpath ? setpath : "");
    return NULL;
  }
  struct set *s = set_open (setpath, false);
  if (s) set_settle_view (s);
  return s;
}

void
vhdkit_set_info_free (struct vhdkit_set_info *i)
{
  if (!i) return;
  for (size_t k = 0; k < i->n_snapshot_ids; k++) free (i->snapshot_ids[k]);
  for (size_t k = 0; k < i->n_all_paths; k++) free (i->all_paths[k]);
  free (i->snapshot_ids);
  free (i->all_paths);
  free (i->path);
  free (i->leaf_path);
  memset (i, 0, sizeof *i);
}

int
vhdkit_set_get_info (const char *setpath, struct vhdkit_set_info *out)
{
  memset (out, 0, sizeof *out);
  struct set *s = info_begin (setpath);
  if (!s) return -1;
  int r = -1;
  bool *listed = calloc (s->v.nmembers, 1);
  if (!listed || !(out->path = set_file (s, s->stem, ".vhds"))) goto nomem;
  for (uint32_t i = 0; i < s->v.nrecords; i++) {
    char t[40];
    guid_text (&s->v.r[i].id, t);
    if (push_str (&out->snapshot_ids, &out->n_snapshot_ids, strdup (t)) == -1) goto nomem;
  }
  /* The leaf and its parents first, then the other members. */
  /* Every member must exist in the set's folder (VS-2). */
  for (uint32_t m = 0; m < s->v.nmembers; m++) {
    char *mp = set_member_path (s, m);
    if (!mp) { vhdkit_set_info_free (out); goto out; }
    free (mp);
  }
  for (uint32_t m = s->v.leaf; m != VHDS_NONE; m = s->v.m[m].parent) {
    listed[m] = true;
    if (push_str (&out->all_paths, &out->n_all_paths, set_file (s, s->v.m[m].name, NULL)) == -1) goto nomem;
  }
  for (uint32_t m = 0; m < s->v.nmembers; m++)
    if (!listed[m] && push_str (&out->all_paths, &out->n_all_paths, set_file (s, s->v.m[m].name, NULL)) == -1)
      goto nomem;
  remove_orphans (s, true, &out->all_paths, &out->n_all_paths);
  if (!(out->leaf_path = set_file (s, s->v.m[s->v.leaf].name, NULL))) goto nomem;
  r = 0;
  goto out;
 nomem:
  set_error_errno (ENOMEM, "%s", setpath);
  vhdkit_set_info_free (out);
 out:
  free (listed);
  set_close (s);
  return r;
}

void
vhdkit_snapshots_free (struct vhdkit_snapshot_info *a, size_t n)
{
  if (!a) return;
  for (size_t i = 0; i < n; i++) {
    free (a[i].file_path);
    free (a[i].snapshot_path);
    for (size_t k = 0; k < a[i].n_parent_paths; k++) free (a[i].parent_paths[k]);
    free (a[i].parent_paths);
  }
  free (a);
}

int
vhdkit_set_get_snapshots (const char *setpath, const char *const *ids, size_t n_ids,
                          bool want_parents, struct vhdkit_snapshot_info **out, size_t *n)
{
  *out = NULL;
  *n = 0;
  struct set *s = info_begin (setpath);
  if (!s) return -1;
  int r = -1;
  uint32_t *sel = malloc ((n_ids ? n_ids : s->v.nrecords + 1) * sizeof *sel);
  size_t ns = 0;
  if (!sel) goto nomem;
  if (n_ids) {
    for (size_t k = 0; k < n_ids; k++) {
      struct guid g;
      if (parse_snapshot_id (s->path, ids[k], &g) == -1) goto out;
      uint32_t i = vhds_find_record (&s->v, &g);
      if (i == VHDS_NONE) {
        set_error (VHDKIT_RC_INVALID_STATE, 0, "%s: the set has no snapshot %s", s->path, ids[k]);
        goto out;
      }
      sel[ns++] = i;
    }
  }
  else
    for (uint32_t i = 0; i < s->v.nrecords; i++) sel[ns++] = i;
  struct vhdkit_snapshot_info *a = calloc (ns ? ns : 1, sizeof *a);
  if (!a) goto nomem;
  *out = a;
  *n = ns;
  for (size_t k = 0; k < ns; k++) {
    const struct vhds_record *rec = &s->v.r[sel[k]];
    guid_text (&rec->id, a[k].snapshot_id);
    a[k].creation_time_ns = rec->ctime_ns;
    if (rec->flags & VHDS_REC_HAS_RCT) record_rct_id (rec, a[k].rct_id);
    if (!(a[k].file_path = set_file (s, s->stem, ".vhds"))) goto nomem;
    a[k].snapshot_path = rec->member == VHDS_NONE ? strdup ("") : set_member_path (s, rec->member);
    if (!a[k].snapshot_path && rec->member != VHDS_NONE) goto out;
    if (!a[k].snapshot_path) goto nomem;
    if (want_parents && rec->member != VHDS_NONE)
      for (uint32_t m = s->v.m[rec->member].parent; m != VHDS_NONE; m = s->v.m[m].parent)
        if (push_str (&a[k].parent_paths, &a[k].n_parent_paths, set_file (s, s->v.m[m].name, NULL)) == -1)
          goto nomem;
  }
  r = 0;
  goto out;
 nomem:
  set_error_errno (ENOMEM, "%s", setpath);
 out:
  if (r == -1) { vhdkit_snapshots_free (*out, *n); *out = NULL; *n = 0; }
  free (sel);
  set_close (s);
  return r;
}

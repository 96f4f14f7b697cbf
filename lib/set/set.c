/* VHD Sets (layer 6): sets open in this process, disks opened through
 * them, GetVirtualDiskChanges between snapshots, and the operations
 * (docs/VHD-SETS.md), also on sets whose disks this process has open.
 * Invariants VS-n (docs/FORMAT-vhds.md) are cited where they are kept.
 *
 * What it owns: the registry of open sets (one struct set per set file
 * per process), the list of each set's disks open here, and every file
 * of a set but the images' contents.
 *
 * Locking: L-12 (the registry) and L-13 (one set), see set.h.  An
 * operation holds its set's lock from start to end; it closes the gate
 * of the set's open leaf only for the moment the leaf is replaced
 * (snapshot, apply), so the disk's I/O stalls for that long only.
 *
 * Crash behaviour: every operation prepares new files under names the
 * set does not reference, commits the description (two copies, VS-1),
 * then removes what is no longer referenced (VS-4); merges commit their
 * intent first (VS-6).
 */
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

static void
guid_text (const struct guid *g, char *out)
{
  guid_to_text (g, out);
}

static int64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the registry of open sets (L-12) ---- */

static pthread_mutex_t sets_lock = PTHREAD_MUTEX_INITIALIZER;
static struct set *sets;                /* under sets_lock */

static void
free_set (struct set *s)
{
  if (s->io) io_close (s->io);
  vhds_free (&s->v);
  pthread_mutex_destroy (&s->lock);
  free (s->path);
  free (s->dir);
  free (s->stem);
  free (s);
}

/* Read both copies into S->v (VS-1): the valid one with the higher
 * sequence number. */
static int
read_description (struct set *s)
{
  uint8_t *buf = malloc (VHDS_SLOT);
  if (!buf) { set_error_errno (ENOMEM, "%s", s->path); return -1; }
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
    if (n < 0) {
      set_error_errno (errno, "%s: read", s->path);
      if (i == 1 && ok[0]) vhds_free (&v[0]);
      free (buf);
      return -1;
    }
    ok[i] = vhds_decode (buf, (size_t) n, &v[i], why[i], sizeof why[i]) == 0;
  }
  free (buf);
  if (!ok[0] && !ok[1]) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: the VHD Set file is damaged (copy A: %s; copy B: %s)",
               s->path, why[0], why[1]);
    return -1;
  }
  vhds_free (&s->v);
  s->slot = ok[0] && ok[1] ? (v[1].seq > v[0].seq) : ok[1];
  s->v = v[s->slot];
  if (ok[1 - s->slot]) vhds_free (&v[1 - s->slot]);
  return 0;
}

/* Open the set file PATH for this process. */
static struct set *
open_set (const char *path, const struct stat *st)
{
  struct set *s = calloc (1, sizeof *s);
  if (!s || !(s->path = strdup (path))) { free (s); goto nomem; }
  pthread_mutex_init (&s->lock, NULL);
  s->dev = (uint64_t) st->st_dev;
  s->ino = (uint64_t) st->st_ino;
  {
    char *c = strdup (path), *c2 = strdup (path);
    if (!c || !c2) { free (c); free (c2); free_set (s); goto nomem; }
    char rp[PATH_MAX];
    if (!realpath (dirname (c), rp)) {
      set_error_errno (errno, "%s: the folder of the set", path);
      free (c); free (c2);
      free_set (s);
      return NULL;
    }
    s->dir = strdup (rp);
    const char *base = basename (c2);
    size_t bl = strlen (base);
    s->stem = strndup (base, bl >= 5 ? bl - 5 : bl);
    free (c); free (c2);
    if (!s->dir || !s->stem) { free_set (s); goto nomem; }
  }
  /* Writable when this process may change the set; readers of a set
   * they cannot write still open it. */
  s->io = io_open (path, O_RDWR, 0);
  s->can_write = s->io != NULL;
  if (!s->io && (errno == EACCES || errno == EROFS || errno == EPERM))
    s->io = io_open (path, O_RDONLY, 0);
  if (!s->io) {
    set_error_errno (errno, "%s: open the VHD Set file", path);
    free_set (s);
    return NULL;
  }
  if (io_lock_record (s->io, IO_LOCK_SHARED) == -1) {
    set_error (VHDKIT_RC_IN_USE, errno, "%s: the set is in use by an operation of another process", path);
    free_set (s);
    return NULL;
  }
  s->lock_held = IO_LOCK_SHARED;
  if (read_description (s) == -1) { free_set (s); return NULL; }
  return s;
 nomem:
  set_error_errno (ENOMEM, "%s", path);
  return NULL;
}

/* The set file PATH, open in this process, with a reference taken. */
static struct set *
set_get (const char *path)
{
  struct stat st;
  if (stat (path, &st) == -1) {
    set_error_errno (errno, "%s: open the VHD Set file", path);
    return NULL;
  }
  pthread_mutex_lock (&sets_lock);
  for (struct set *s = sets; s; s = s->next)
    if (s->dev == (uint64_t) st.st_dev && s->ino == (uint64_t) st.st_ino) {
      s->refs++;
      pthread_mutex_unlock (&sets_lock);
      return s;
    }
  pthread_mutex_unlock (&sets_lock);
  /* Opened without the registry lock (file I/O); a second opener that
   * raced us uses the first one in. */
  struct set *n = open_set (path, &st);
  if (!n) return NULL;
  pthread_mutex_lock (&sets_lock);
  for (struct set *s = sets; s; s = s->next)
    if (s->dev == n->dev && s->ino == n->ino) {
      s->refs++;
      pthread_mutex_unlock (&sets_lock);
      free_set (n);
      return s;
    }
  n->refs = 1;
  n->next = sets;
  sets = n;
  pthread_mutex_unlock (&sets_lock);
  return n;
}

static void
set_put (struct set *s)
{
  pthread_mutex_lock (&sets_lock);
  bool last = --s->refs == 0;
  if (last)
    for (struct set **p = &sets; *p; p = &(*p)->next)
      if (*p == s) { *p = s->next; break; }
  pthread_mutex_unlock (&sets_lock);
  if (last) free_set (s);
}

/* VS-1: both copies, the older first.  Exclusive lock held. */
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

/* ---- members ---- */

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

static uint32_t
member_named (const struct vhds *v, const char *name)
{
  for (uint32_t i = 0; i < v->nmembers; i++)
    if (strcmp (v->m[i].name, name) == 0) return i;
  return VHDS_NONE;
}

/* The in-memory effect of the last commit of a merge (VS-6) whose rename
 * is done: what a reader sees when an operation was interrupted. */
static void
settle_merge (struct vhds *v)
{
  uint32_t c = v->pend_child, f = v->pend_parent;
  v->m[c].parent = v->m[f].parent;
  v->pending = 0;
  vhds_remove_member (v, f);
}

/* A reader's view of the set (a copy: the set's own description stays
 * as the file says, for the next operation to finish). */
static int
set_view (struct set *s, struct vhds *view)
{
  if (vhds_copy (view, &s->v) == -1) {
    set_error_errno (ENOMEM, "%s", s->path);
    return -1;
  }
  if (view->pending == VHDS_PENDING_MERGE) {
    char *f = set_file (s, view->m[view->pend_parent].name, NULL);
    if (f && !exists (f)) settle_merge (view);
    free (f);
  }
  return 0;
}

/* The path of member I of VIEW. */
static char *
view_member_path (struct set *s, const struct vhds *view, uint32_t i)
{
  struct vhds keep = s->v;
  s->v = *view;
  char *p = set_member_path (s, i);
  s->v = keep;
  return p;
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
find_snapshot (struct set *s, const struct vhds *v, const char *text, uint32_t *rec)
{
  struct guid g;
  if (parse_snapshot_id (s->path, text, &g) == -1) return -1;
  uint32_t i = vhds_find_record (v, &g);
  if (i == VHDS_NONE) {
    set_error (VHDKIT_RC_INVALID_STATE, 0, "%s: the set has no snapshot %s", s->path, text);
    return -1;
  }
  if (v->r[i].member == VHDS_NONE) {
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

/* VS-3: the chain the files name is the chain the set (VIEW) names. */
static int
check_chain (struct set *s, const struct vhds *view, struct image *img, uint32_t m)
{
  const char *prev = NULL;
  for (;;) {
    char *mp = view_member_path (s, view, m);
    if (!mp) return -1;
    bool same = same_file (img->path, mp);
    free (mp);
    if (!same) {
      set_error (VHDKIT_RC_FAILED, 0, "%s: the set is damaged: it names %s where %s",
                 s->path, view->m[m].name,
                 prev ? "the parent locator of the image before it names another file" : "it opened another file");
      if (prev) {
        char *msg = strdup (error_message ());
        if (msg) {
          set_error (VHDKIT_RC_FAILED, 0, "%s (%s names %s as its parent)", msg, prev, img->path);
          free (msg);
        }
      }
      return -1;
    }
    uint32_t p = view->m[m].parent;
    if (!img->parent_path && p == VHDS_NONE) return 0;
    if (!img->parent_path || p == VHDS_NONE) {
      set_error (VHDKIT_RC_FAILED, 0, "%s: the set is damaged: %s %s", s->path, img->path,
                 p == VHDS_NONE ? "is a differencing image, but the set names it as the base"
                                : "is not a differencing image, but the set gives it a parent");
      return -1;
    }
    if (!img->parent) return 0;          /* VHDKIT_OPEN_NO_PARENT */
    prev = img->path;
    img = img->parent;
    m = p;
  }
}

int
set_disk_open (const char *path, unsigned flags, struct set **out_s, struct set_disk **out_sd)
{
  char *sp = NULL;
  const char *snap = NULL;
  if (!set_path_split (path, &sp, &snap)) {
    set_error_errno (ENOMEM, "%s", path);
    return -1;
  }
  struct disk *d = NULL;
  char *mp = NULL;
  struct set_disk *sd = NULL;
  struct vhds view = { 0 };
  bool have_view = false;
  struct set *s = set_get (sp);
  if (!s) goto fail;
  pthread_mutex_lock (&s->lock);
  if (set_view (s, &view) == -1) goto fail_locked;
  have_view = true;
  uint32_t m = view.leaf;
  if (snap) {
    uint32_t rec;
    if (find_snapshot (s, &view, snap, &rec) == -1) goto fail_locked;
    if (flags & VHDKIT_OPEN_RDWR) {
      set_error (VHDKIT_RC_ACCESS_DENIED, EROFS, "%s: snapshot %s is read-only; write to the set (its leaf) instead",
                 sp, snap);
      goto fail_locked;
    }
    m = view.r[rec].member;
  }
  if (!(mp = view_member_path (s, &view, m))) goto fail_locked;
  d = disk_open (mp, flags, false);
  if (!d) { error_prefix ("%s", sp); goto fail_locked; }
  if (check_chain (s, &view, d->top, m) == -1) goto fail_locked;
  if (!(sd = calloc (1, sizeof *sd))) { set_error_errno (ENOMEM, "%s", sp); goto fail_locked; }
  sd->d = d;
  sd->snapshot = snap != NULL;
  snprintf (sd->member, sizeof sd->member, "%s", view.m[m].name);
  sd->next = s->disks;
  s->disks = sd;
  pthread_mutex_unlock (&s->lock);
  vhds_free (&view);
  free (mp);
  free (sp);
  *out_s = s;
  *out_sd = sd;
  return 0;
 fail_locked:
  pthread_mutex_unlock (&s->lock);
 fail:
  if (d) disk_abandon (d);
  if (have_view) vhds_free (&view);
  if (s) set_put (s);
  free (mp);
  free (sp);
  return -1;
}

int
set_disk_close (struct set *s, struct set_disk *sd)
{
  pthread_mutex_lock (&s->lock);
  for (struct set_disk **p = &s->disks; *p; p = &(*p)->next)
    if (*p == sd) { *p = sd->next; break; }
  pthread_mutex_unlock (&s->lock);
  int r = disk_close (sd->d);
  free (sd);
  set_put (s);
  return r;
}

/* ---- in-process disks (set lock held) ---- */

/* The disk of this process that writes the leaf, if any. */
static struct set_disk *
leaf_writer (struct set *s)
{
  for (struct set_disk *sd = s->disks; sd; sd = sd->next)
    if (!sd->snapshot && sd->d->writable && strcmp (sd->member, s->v.m[s->v.leaf].name) == 0)
      return sd;
  return NULL;
}

/* True if a disk of this process reads member M (as its image or a
 * parent): its file may then not be changed or replaced. */
static bool
member_open_here (struct set *s, uint32_t m)
{
  char *p = set_file (s, s->v.m[m].name, NULL);
  struct stat st;
  bool open = false;
  if (p && stat (p, &st) == 0)
    for (struct set_disk *sd = s->disks; sd && !open; sd = sd->next)
      for (struct image *i = sd->d->top; i && !open; i = i->parent)
        open = i->st.dev == (uint64_t) st.st_dev && i->st.ino == (uint64_t) st.st_ino;
  free (p);
  return open;
}

/* True if a disk of this process other than EXCEPT reads member M as
 * its own image. */
static bool
member_is_disk_here (struct set *s, uint32_t m, const struct set_disk *except)
{
  for (struct set_disk *sd = s->disks; sd; sd = sd->next)
    if (sd != except && strcmp (sd->member, s->v.m[m].name) == 0) return true;
  return false;
}

/* ---- GetVirtualDiskChanges on a set (DESIGN.md §3.2–3.3) ---- */

static void
record_rct_id (const struct vhds_record *r, char *out)
{
  rct_format_id (&r->epoch, r->gen, out);
}

int
set_changes (struct set *s, struct set_disk *sd, const char *limit_id, const char *target,
             uint64_t off, uint64_t len, size_t max_ranges, struct vhdkit_changes *out)
{
  struct guid g, e;
  uint32_t lgen = 0;
  char buf[VHDKIT_RCT_ID_MAX];
  const char *limit = limit_id;
  struct vhds view;
  char *mp = NULL;
  bool empty = false;
  pthread_mutex_lock (&s->lock);
  int r = set_view (s, &view);
  pthread_mutex_unlock (&s->lock);
  if (r == -1) return -1;
  r = -1;
  /* LimitId: a snapshot ID (of a snapshot or a reference point) stands
   * for the RCT ID it recorded. */
  if (limit_id && guid_from_text (&g, limit_id) == 0) {
    uint32_t i = vhds_find_record (&view, &g);
    if (i == VHDS_NONE) {
      set_error (VHDKIT_RC_INVALID_STATE, 0,
                 "%s: LimitId %s is not a snapshot or reference point of the set; a full backup is needed",
                 s->path, limit_id);
      goto out;
    }
    if (!(view.r[i].flags & VHDS_REC_HAS_RCT)) {
      set_error (VHDKIT_RC_INVALID_STATE, 0,
                 "%s: snapshot %s was taken without change tracking, so there are no changes to compare with; a full backup is needed",
                 s->path, limit_id);
      goto out;
    }
    record_rct_id (&view.r[i], buf);
    limit = buf;
  }
  if (!target || !*target) {
    r = disk_changes (sd->d, limit, off, len, max_ranges, out);
    goto out;
  }
  if (sd->snapshot) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: TargetSnapshotId is for the set itself (SET.vhds), not for one of its snapshots (SET.vhds@ID)", s->path);
    goto out;
  }
  uint32_t t;
  if (find_snapshot (s, &view, target, &t) == -1) goto out;
  const struct vhds_record *tr = &view.r[t];
  if (!(tr->flags & VHDS_REC_HAS_RCT)) {
    set_error (VHDKIT_RC_INVALID_STATE, 0,
               "%s: target snapshot %s was taken without change tracking; a full backup is needed", s->path, target);
    goto out;
  }
  if (!limit || rct_parse_id (limit, &e, &lgen) == -1) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: LimitId \"%s\" is neither an RCT ID nor a snapshot ID", s->path, limit ? limit : "");
    goto out;
  }
  if (!guid_eq (&e, &tr->epoch)) {
    set_error (VHDKIT_RC_INVALID_STATE, 0,
               "%s: LimitId %s and target snapshot %s belong to different tracking epochs; a full backup is needed",
               s->path, limit_id, target);
    goto out;
  }
  if (lgen > tr->gen) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0,
               "%s: target snapshot %s is older than LimitId %s; give the older point as LimitId",
               s->path, target, limit_id);
    goto out;
  }
  empty = lgen == tr->gen;
  if (!(mp = view_member_path (s, &view, tr->member))) goto out;
  /* The target's own frozen tracking answers; only its tracking is
   * read, not its parents.  No lock is held meanwhile. */
  struct disk *td = disk_open (mp, VHDKIT_OPEN_RDONLY | VHDKIT_OPEN_NO_PARENT, false);
  if (!td) { error_prefix ("%s: target snapshot %s", s->path, target); goto out; }
  r = disk_changes (td, limit, off, len, max_ranges, out);
  disk_abandon (td);
  if (r == 0 && empty) {           /* the same point: nothing changed */
    uint32_t ss = out->struct_size;
    free (out->offsets); free (out->lengths); free (out->kinds);
    memset (out, 0, sizeof *out);
    out->struct_size = ss;
    out->processed = len;
  }
 out:
  free (mp);
  vhds_free (&view);
  return r;
}

/* ---- helpers of the operations ---- */

/* The DataWriteGuid of image PATH. */
static int
image_dwg (const char *path, uint8_t out[16])
{
  struct image *img = image_open (path, VHDKIT_OPEN_RDONLY | VHDKIT_OPEN_NO_PARENT, NULL);
  if (!img) return -1;
  int r = 0;
  if (!image_data_write_guid (img, out)) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: not a VHDX image", path);
    r = -1;
  }
  image_abandon (img);
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

static int
flush_folder (struct set *s)
{
  char *p = set_file (s, s->stem, ".vhds");
  int r = p ? io_sync_parent_dir (p) : -1;
  if (r == -1) set_error_errno (p ? errno : ENOMEM, "%s: flush folder", s->dir);
  free (p);
  return r;
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
    if (member_open_here (s, f) || member_open_here (s, c)) {
      set_error (VHDKIT_RC_IN_USE, 0,
                 "%s: an interrupted merge of %s into %s must finish first, and this process has one of them open; close the set's disks and run optimize",
                 s->path, s->v.m[c].name, s->v.m[f].name);
      goto out;
    }
    uint8_t dwg[16];
    if (!(cp = set_member_path (s, c))) goto out;
    /* The parent's frozen tracking belonged to the deleted snapshot. */
    unlink_sidecars (fp);
    if (image_dwg (cp, dwg) == -1 || disk_merge (cp, dwg, false, progress, opaque) == -1) {
      error_prefix ("%s: merge %s into %s", s->path, s->v.m[c].name, s->v.m[f].name);
      goto out;
    }
    /* F now holds C's content under C's DataWriteGuid: it takes C's
     * place (and name, and tracking files). */
    if (rename (fp, cp) == -1) { set_error_errno (errno, "%s: rename %s to %s", s->path, fp, cp); goto out; }
    if (flush_folder (s) == -1) goto out;
  }
  settle_merge (&s->v);
  r = set_commit (s);
 out:
  free (fp);
  free (cp);
  return r;
}

/* Make member M go away if nothing needs it on its own (no record, not
 * the leaf, not open in this process): no child → delete it; one child
 * → merge the child into it (VS-6); more → keep.  *CHANGED tells whether
 * anything happened. */
static int
collapse (struct set *s, uint32_t m, vhdkit_progress_fn progress, void *opaque, bool *changed)
{
  *changed = false;
  if (m == s->v.leaf || vhds_record_of_member (&s->v, m) != VHDS_NONE) return 0;
  if (member_open_here (s, m)) return 0;
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
  if (n > 1 || member_open_here (s, child)) return 0;
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

/* Begin an operation on SETPATH: the set open here, its lock taken, the
 * file locked for this process alone (VS-7), any interrupted operation
 * finished.  op_end undoes it. */
static struct set *
op_begin (const char *setpath, vhdkit_progress_fn progress, void *opaque)
{
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
  struct set *s = set_get (setpath);
  if (!s) return NULL;
  pthread_mutex_lock (&s->lock);
  if (!s->can_write) {
    set_error (VHDKIT_RC_ACCESS_DENIED, EACCES, "%s: the VHD Set file cannot be written by this process", setpath);
    goto fail;
  }
  if (io_lock_record (s->io, IO_LOCK_EXCLUSIVE) == -1) {
    set_error (VHDKIT_RC_IN_USE, errno,
               "%s: the set is in use by another process (a disk of it is open, or an operation runs)", setpath);
    goto fail;
  }
  s->lock_held = IO_LOCK_EXCLUSIVE;
  if (s->v.pending == VHDS_PENDING_MERGE && finish_merge (s, progress, opaque) == -1) {
    error_prefix ("%s: finishing an interrupted merge", setpath);
    goto fail_exclusive;
  }
  return s;
 fail_exclusive:
  io_lock_record (s->io, IO_LOCK_SHARED);
  s->lock_held = IO_LOCK_SHARED;
 fail:
  pthread_mutex_unlock (&s->lock);
  set_put (s);
  return NULL;
}

static void
op_end (struct set *s)
{
  /* Other processes may open disks of the set again. */
  if (io_lock_record (s->io, IO_LOCK_SHARED) == 0) s->lock_held = IO_LOCK_SHARED;
  pthread_mutex_unlock (&s->lock);
  set_put (s);
}

/* ---- the operations ---- */

int
set_convert (const char *image, const char *set_path, uint32_t gran)
{
  char *sp = NULL, *tmp = NULL, *c = NULL, *c2 = NULL;
  struct disk *d = NULL;
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
  const char *bn = strrchr (image, '/') ? strrchr (image, '/') + 1 : image;
  {
    /* The description first: nothing changes if the set cannot exist. */
    struct vhds t = { .leaf = 0 };
    char why0[300];
    int bad = strlen (bn) >= VHDS_NAME_MAX ? -2 : vhds_add_member (&t, bn, VHDS_NONE, NULL);
    if (bad == 0) bad = vhds_validate (&t, why0, sizeof why0);
    else snprintf (why0, sizeof why0, "the file name is too long");
    vhds_free (&t);
    if (bad != 0) {
      set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: cannot be the base of a set: %s", image, why0);
      goto out;
    }
  }
  d = disk_open (image, VHDKIT_OPEN_RDWR, false);
  if (!d) goto out;
  uint8_t dwg[16];
  if (!image_data_write_guid (d->top, dwg)) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: a VHD Set's base must be a VHDX image", image);
    goto out;
  }
  if (d->top->parent_path) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0, "%s: a differencing image cannot be the base of a VHD Set (merge it first)", image);
    goto out;
  }
  if (!d->rct && gran != UINT32_MAX && disk_rct_enable (d, gran) == -1) goto out;
  int cr = disk_close (d);
  d = NULL;
  if (cr == -1) goto out;
  /* The set file: both copies under a temporary name, then into place. */
  struct vhds v = { .seq = 0, .leaf = 0 };
  if (guid_generate (&v.set_id) == -1) { set_error_errno (errno, "%s: random GUID", sp); goto out; }
  if (vhds_add_member (&v, bn, VHDS_NONE, NULL) == -1) { set_error_errno (ENOMEM, "%s", sp); goto out; }
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
  io_sync_parent_dir (sp);
  r = 0;
 out:
  if (d) disk_abandon (d);
  if (io) io_close (io);
  if (tmp) unlink (tmp);
  free (b); free (sp); free (tmp); free (c); free (c2);
  return r;
}

/* ---- snapshot ---- */

struct snap_job {
  struct set *s;
  struct vhds_record rec;
  char *lp, *np;                 /* the leaf, the new leaf */
  char name[VHDS_NAME_MAX];
};

/* The leaf's tracking, sealed: the record's RCT ID.  Gate closed. */
static int
seal_leaf (struct disk *d, struct vhds_record *rec)
{
  struct rct *r = d->rct;
  if (!r || r->state != RCT_OK) return 0;
  uint32_t sealed;
  if (rct_seal (r, &sealed) == -1 || image_flush (d->top) == -1 || rct_flush (r) == -1)
    return -1;
  rec->epoch = r->h.epoch;
  rec->gen = sealed;
  rec->flags |= VHDS_REC_HAS_RCT;
  return 0;
}

/* Open PATH read-write and put it under D's handle (gate closed). */
static int
reopen_into (struct disk *d, const char *path)
{
  struct disk *n = disk_open (path, VHDKIT_OPEN_RDWR, false);
  if (!n) return -1;
  disk_adopt (d, n);
  return 0;
}

/* Snapshot, with the gate of D (the leaf's disk) closed: seal and close
 * the leaf, make the new child, commit, open the child under D. */
static int
snapshot_alone (struct disk *d, void *opaque)
{
  struct snap_job *j = opaque;
  struct set *s = j->s;
  char *released = NULL;
  if (seal_leaf (d, &j->rec) == -1) return -1;
  /* The leaf closes cleanly: its tracking can then be copied. */
  if (disk_release_image (d, &released) == -1) goto restore;
  struct vhdkit_create_params p = VHDKIT_CREATE_PARAMS_INIT;
  p.format = VHDKIT_FORMAT_VHDX;
  p.type = VHDKIT_TYPE_DIFFERENCING;
  p.parent = j->lp;
  if (image_create (j->np, &p) == -1) goto restore;
  if (j->rec.flags & VHDS_REC_HAS_RCT) {
    uint8_t dwg[16];
    if (image_dwg (j->np, dwg) == -1 || rct_clone_files (j->lp, j->np, dwg) == -1) goto unlink_new;
  }
  if (flush_folder (s) == -1) goto unlink_new;
  uint32_t ni;
  if (vhds_add_member (&s->v, j->name, s->v.leaf, &ni) == -1 || vhds_add_record (&s->v, &j->rec) == -1) {
    set_error_errno (ENOMEM, "%s", s->path);
    goto unlink_new;
  }
  s->v.leaf = ni;
  /* A failed commit may still have reached the disk: the new files
   * stay (an unreferenced one is removed by set optimize, VS-4), and the
   * set is read again to know which state it is in. */
  if (set_commit (s) == -1) {
    error_hold ();
    read_description (s);
    error_release ();
    goto restore;
  }
  free (released);
  return reopen_into (d, j->np);
 unlink_new:
  error_hold ();
  unlink_image (j->np);
  error_release ();
 restore:
  /* The old leaf goes back under the handle (or the new one, if the
   * commit did land). */
  error_hold ();
  if (!d->top) reopen_into (d, strcmp (s->v.m[s->v.leaf].name, j->name) == 0 ? j->np : j->lp);
  error_release ();
  free (released);
  return -1;
}

int
set_snapshot (const char *setpath, const char *id, char *out_id)
{
  struct set *s = op_begin (setpath, NULL, NULL);
  if (!s) return -1;
  int r = -1;
  struct snap_job j = { .s = s, .rec = { .member = s->v.leaf, .ctime_ns = now_ns () } };
  if (id && *id) {
    if (parse_snapshot_id (s->path, id, &j.rec.id) == -1) goto out;
    if (guid_is_zero (&j.rec.id)) {
      set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: the zero GUID is not a snapshot ID", s->path);
      goto out;
    }
    if (vhds_find_record (&s->v, &j.rec.id) != VHDS_NONE) {
      set_error (VHDKIT_RC_INVALID_PARAMETER, EEXIST, "%s: snapshot %s already exists", s->path, id);
      goto out;
    }
  }
  else if (guid_generate (&j.rec.id) == -1) { set_error_errno (errno, "%s: random GUID", s->path); goto out; }
  if (s->v.nrecords >= VHDS_MAX_RECORDS || s->v.nmembers >= VHDS_MAX_MEMBERS) {
    set_error (VHDKIT_RC_OUT_OF_MEMORY, 0, "%s: the set holds the most snapshots or images it can (%d, %d); delete some first",
               s->path, VHDS_MAX_RECORDS, VHDS_MAX_MEMBERS);
    goto out;
  }
  if (member_is_disk_here (s, s->v.leaf, leaf_writer (s))) {
    set_error (VHDKIT_RC_IN_USE, 0, "%s: the leaf is open read-only in this process; close it first", s->path);
    goto out;
  }
  if (!(j.lp = set_member_path (s, s->v.leaf))) goto out;
  if (new_member_name (s, j.name, sizeof j.name) == -1 || !(j.np = set_file (s, j.name, NULL))) goto out;
  struct set_disk *lw = leaf_writer (s);
  if (lw) {
    /* The leaf is open for writing here: it is switched to the new leaf
     * under its handle, its I/O held back meanwhile. */
    r = disk_exclusive (lw->d, snapshot_alone, &j);
    if (r == 0) snprintf (lw->member, sizeof lw->member, "%s", j.name);
  }
  else {
    struct disk *d = disk_open (j.lp, VHDKIT_OPEN_RDWR, false);
    if (!d) goto out;
    struct vhds view;
    if (set_view (s, &view) == -1) { disk_abandon (d); goto out; }
    int cc = check_chain (s, &view, d->top, s->v.leaf);
    vhds_free (&view);
    if (cc == -1) { disk_abandon (d); goto out; }
    r = snapshot_alone (d, &j);
    if (r == 0) r = disk_close (d);
    else disk_abandon (d);
  }
  if (r == 0 && out_id) guid_text (&j.rec.id, out_id);
 out:
  free (j.lp);
  free (j.np);
  op_end (s);
  return r;
}

/* ---- delete ---- */

int
set_delete_snapshot (const char *setpath, const char *id, bool persist,
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
  for (struct set_disk *sd = s->disks; m != VHDS_NONE && sd; sd = sd->next)
    if (sd->snapshot && strcmp (sd->member, s->v.m[m].name) == 0) {
      set_error (VHDKIT_RC_IN_USE, 0, "%s: snapshot %s is open in this process (SET.vhds@ID); close it first", s->path, id);
      goto out;
    }
  if (persist && (s->v.r[i].flags & VHDS_REC_HAS_RCT))
    s->v.r[i].member = VHDS_NONE;       /* a reference point */
  else
    vhds_remove_record (&s->v, i);
  if (m == VHDS_NONE) { r = set_commit (s); goto out; }
  bool changed;
  /* The record change is committed with the merge intent, or alone.  An
   * image this process reads is not merged now: it stays, unnamed,
   * until optimize finds it free (docs/VHD-SETS.md). */
  if (collapse (s, m, progress, opaque, &changed) == -1) goto out;
  r = changed ? 0 : set_commit (s);
 out:
  op_end (s);
  return r;
}

int
set_optimize (const char *setpath, vhdkit_progress_fn progress, void *opaque)
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
  op_end (s);
  return r;
}

/* ---- apply ---- */

struct apply_job {
  struct set *s;
  struct vhds_record sr;         /* the snapshot */
  uint32_t old_leaf;
  char *lp, *fp, *np;            /* old leaf, the snapshot's image, the new leaf */
  char name[VHDS_NAME_MAX];
  uint64_t snap_size;
};

/* Every block changed since the snapshot counts as changed again in the
 * new leaf N, whose tracking is a copy of the old leaf's. */
static int
mark_reverted (struct disk *n, const char *rctid)
{
  uint64_t size;
  disk_get_size (n, &size, NULL);
  for (uint64_t off = 0; off < size; ) {
    struct vhdkit_changes c = VHDKIT_CHANGES_INIT;
    if (disk_changes (n, rctid, off, size - off, 0, &c) == -1) return -1;
    int r = 0;
    for (size_t k = 0; k < c.count && r == 0; k++)
      r = disk_mark_changed (n, c.offsets[k], c.lengths[k]);
    off += c.processed;
    free (c.offsets); free (c.lengths); free (c.kinds);
    if (r == -1) return -1;
  }
  return 0;
}

/* Apply with the gate of D (the old leaf's disk) closed. */
static int
apply_alone (struct disk *d, void *opaque)
{
  struct apply_job *j = opaque;
  struct set *s = j->s;
  char *released = NULL;
  /* Can the old leaf's tracking carry on?  Only in the snapshot's epoch
   * and at the snapshot's size. */
  struct guid e;
  uint32_t cur, granularity = 0;
  bool track = d->rct != NULL;
  bool ok = d->rct && d->rct->state == RCT_OK;
  if (ok) rct_current (d->rct, &e, &cur, &granularity);
  bool carry = ok && (j->sr.flags & VHDS_REC_HAS_RCT) && LOAD_RELAXED (&d->top->size) == j->snap_size &&
               guid_eq (&e, &j->sr.epoch);
  if (disk_release_image (d, &released) == -1) goto restore;
  struct vhdkit_create_params p = VHDKIT_CREATE_PARAMS_INIT;
  p.format = VHDKIT_FORMAT_VHDX;
  p.type = VHDKIT_TYPE_DIFFERENCING;
  p.parent = j->fp;
  if (image_create (j->np, &p) == -1) goto restore;
  if (carry) {
    uint8_t dwg[16];
    char rid[VHDKIT_RCT_ID_MAX];
    record_rct_id (&j->sr, rid);
    if (image_dwg (j->np, dwg) == -1 || rct_clone_files (j->lp, j->np, dwg) == -1) goto unlink_new;
    struct disk *n = disk_open (j->np, VHDKIT_OPEN_RDWR, false);
    if (!n) goto unlink_new;
    int mr = mark_reverted (n, rid);
    if (disk_close (n) == -1) mr = -1;
    if (mr == -1) goto unlink_new;
  }
  else if (track) {
    /* Tracking starts over: IDs of the old leaf's epoch cannot describe
     * the new branch. */
    struct disk *n = disk_open (j->np, VHDKIT_OPEN_RDWR, false);
    if (!n) goto unlink_new;
    int er = disk_rct_enable (n, granularity);
    if (disk_close (n) == -1) er = -1;
    if (er == -1) goto unlink_new;
  }
  if (flush_folder (s) == -1) goto unlink_new;
  uint32_t ni;
  if (vhds_add_member (&s->v, j->name, j->sr.member, &ni) == -1) {
    set_error_errno (ENOMEM, "%s", s->path);
    goto unlink_new;
  }
  s->v.leaf = ni;
  vhds_remove_member (&s->v, j->old_leaf);
  if (set_commit (s) == -1) {            /* see snapshot_alone */
    error_hold ();
    read_description (s);
    error_release ();
    goto restore;
  }
  unlink_image (j->lp);                  /* VS-4: after the commit */
  free (released);
  return reopen_into (d, j->np);
 unlink_new:
  error_hold ();
  unlink_image (j->np);
  error_release ();
 restore:
  error_hold ();
  if (!d->top) reopen_into (d, member_named (&s->v, j->name) != VHDS_NONE ? j->np : j->lp);
  error_release ();
  free (released);
  return -1;
}

int
set_apply_snapshot (const char *setpath, const char *id)
{
  struct set *s = op_begin (setpath, NULL, NULL);
  if (!s) return -1;
  int r = -1;
  struct apply_job j = { .s = s };
  uint32_t rec;
  if (find_snapshot (s, &s->v, id, &rec) == -1) goto out;
  j.sr = s->v.r[rec];
  j.old_leaf = s->v.leaf;
  struct set_disk *lw = leaf_writer (s);
  if (member_is_disk_here (s, j.old_leaf, lw)) {
    set_error (VHDKIT_RC_IN_USE, 0, "%s: the leaf is open read-only in this process and would be replaced; close it first", s->path);
    goto out;
  }
  if (!(j.lp = set_member_path (s, j.old_leaf)) || !(j.fp = set_member_path (s, j.sr.member))) goto out;
  {
    struct image *si = image_open (j.fp, VHDKIT_OPEN_RDONLY, NULL);
    if (!si) goto out;
    j.snap_size = si->size;
    image_abandon (si);
  }
  if (new_member_name (s, j.name, sizeof j.name) == -1 || !(j.np = set_file (s, j.name, NULL))) goto out;
  uint32_t parent_of_old = s->v.m[j.old_leaf].parent;
  if (lw) {
    r = disk_exclusive (lw->d, apply_alone, &j);
    if (r == 0) snprintf (lw->member, sizeof lw->member, "%s", j.name);
  }
  else {
    /* Opening the leaf for writing recovers its tracking first. */
    struct disk *d = disk_open (j.lp, VHDKIT_OPEN_RDWR, false);
    if (!d) goto out;
    r = apply_alone (d, &j);
    if (r == 0) r = disk_close (d);
    else disk_abandon (d);
  }
  if (r == -1) goto out;
  /* The old leaf's ancestors that only it needed go too. */
  if (parent_of_old != VHDS_NONE && parent_of_old > j.old_leaf) parent_of_old--;
  for (uint32_t m = parent_of_old; m != VHDS_NONE && r == 0; ) {
    uint32_t up = s->v.m[m].parent;
    bool changed;
    if (vhds_children (&s->v, m, NULL) != 0) break;
    r = collapse (s, m, NULL, NULL, &changed);
    if (!changed) break;
    if (up != VHDS_NONE && up > m) up--;
    m = up;
  }
 out:
  free (j.lp); free (j.fp); free (j.np);
  op_end (s);
  return r;
}

/* ---- set-info ---- */

/* The tracking of member M now: its epoch and generation (from the
 * disk of this process that writes it, or from its files). */
static int
member_tracking (struct set *s, uint32_t m, bool *ok, struct guid *epoch, uint32_t *cur)
{
  *ok = false;
  struct set_disk *lw = m == s->v.leaf ? leaf_writer (s) : NULL;
  if (lw) {
    *ok = disk_rct_current (lw->d, epoch, cur, NULL);
    return 0;
  }
  char *mp = set_member_path (s, m);
  if (!mp) return -1;
  struct disk *d = disk_open (mp, VHDKIT_OPEN_RDONLY, false);
  free (mp);
  if (!d) return -1;
  struct vhdkit_rct_status st = VHDKIT_RCT_STATUS_INIT;
  int r = disk_rct_status (d, &st);
  disk_abandon (d);
  if (r == -1) return -1;
  *ok = st.enabled && !st.problem[0] && guid_from_text (epoch, st.epoch) == 0;
  *cur = st.generation;
  return 0;
}

int
set_set_snapshot_info (const char *setpath, const struct vhdkit_snapshot_info *info)
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
    struct guid e, ce;
    uint32_t gen, cur;
    bool ok;
    if (rct_parse_id (info->rct_id, &e, &gen) == -1) {
      set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: \"%s\" is not an RCT ID", s->path, info->rct_id);
      goto out;
    }
    uint32_t m = nr.member != VHDS_NONE ? nr.member : s->v.leaf;
    if (member_tracking (s, m, &ok, &ce, &cur) == -1) goto out;
    ok = ok && guid_eq (&ce, &e);
    if (ok && nr.member != VHDS_NONE) ok = gen + 1 == cur;
    if (ok && nr.member == VHDS_NONE) ok = gen >= 1 && gen < cur;
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
  op_end (s);
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

/* A reader's access: the set open here, its lock taken, and VIEW. */
static struct set *
info_begin (const char *setpath, struct vhds *view)
{
  const char *snap = NULL;
  if (!setpath || !set_path_split (setpath, NULL, &snap) || snap) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: not a VHD Set file (.vhds)", setpath ? setpath : "");
    return NULL;
  }
  struct set *s = set_get (setpath);
  if (!s) return NULL;
  pthread_mutex_lock (&s->lock);
  if (set_view (s, view) == -1) {
    pthread_mutex_unlock (&s->lock);
    set_put (s);
    return NULL;
  }
  /* The view stands in for the description while the lock is held. */
  struct vhds keep = s->v;
  s->v = *view;
  *view = keep;
  return s;
}

static void
info_end (struct set *s, struct vhds *view)
{
  struct vhds mine = s->v;
  s->v = *view;
  vhds_free (&mine);
  pthread_mutex_unlock (&s->lock);
  set_put (s);
}

void
set_info_free (struct vhdkit_set_info *i)
{
  if (!i) return;
  for (size_t k = 0; k < i->n_snapshot_ids; k++) free (i->snapshot_ids[k]);
  for (size_t k = 0; k < i->n_all_paths; k++) free (i->all_paths[k]);
  free (i->snapshot_ids);
  free (i->all_paths);
  free (i->path);
  free (i->leaf_path);
  uint32_t ss = i->struct_size;
  memset (i, 0, sizeof *i);
  i->struct_size = ss;
}

int
set_get_info (const char *setpath, struct vhdkit_set_info *out)
{
  struct vhds saved;
  struct set *s = info_begin (setpath, &saved);
  if (!s) return -1;
  int r = -1;
  bool *listed = calloc (s->v.nmembers ? s->v.nmembers : 1, 1);
  if (!listed || !(out->path = set_file (s, s->stem, ".vhds"))) goto nomem;
  for (uint32_t i = 0; i < s->v.nrecords; i++) {
    char t[40];
    guid_text (&s->v.r[i].id, t);
    if (push_str (&out->snapshot_ids, &out->n_snapshot_ids, strdup (t)) == -1) goto nomem;
  }
  /* Every member must exist in the set's folder (VS-2). */
  for (uint32_t m = 0; m < s->v.nmembers; m++) {
    char *mp = set_member_path (s, m);
    if (!mp) { set_info_free (out); goto out; }
    free (mp);
  }
  /* The leaf and its parents first, then the other members. */
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
  set_info_free (out);
 out:
  free (listed);
  info_end (s, &saved);
  return r;
}

void
set_snapshots_free (struct vhdkit_snapshot_info **a, size_t n)
{
  if (!a) return;
  for (size_t i = 0; i < n; i++) {
    if (!a[i]) continue;
    free (a[i]->file_path);
    free (a[i]->snapshot_path);
    for (size_t k = 0; k < a[i]->n_parent_paths; k++) free (a[i]->parent_paths[k]);
    free (a[i]->parent_paths);
    free (a[i]);
  }
  free (a);
}

int
set_get_snapshots (const char *setpath, const char *const *ids, size_t n_ids,
                   bool want_parents, struct vhdkit_snapshot_info ***out, size_t *n)
{
  *out = NULL;
  *n = 0;
  struct vhds saved;
  struct set *s = info_begin (setpath, &saved);
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
  struct vhdkit_snapshot_info **a = calloc (ns ? ns : 1, sizeof *a);
  if (!a) goto nomem;
  *out = a;
  *n = ns;
  for (size_t k = 0; k < ns; k++) {
    if (!(a[k] = calloc (1, sizeof *a[k]))) goto nomem;
    a[k]->struct_size = sizeof *a[k];
    const struct vhds_record *rec = &s->v.r[sel[k]];
    guid_text (&rec->id, a[k]->snapshot_id);
    a[k]->creation_time_ns = rec->ctime_ns;
    if (rec->flags & VHDS_REC_HAS_RCT) record_rct_id (rec, a[k]->rct_id);
    if (!(a[k]->file_path = set_file (s, s->stem, ".vhds"))) goto nomem;
    a[k]->snapshot_path = rec->member == VHDS_NONE ? strdup ("") : set_member_path (s, rec->member);
    if (!a[k]->snapshot_path && rec->member != VHDS_NONE) goto out;
    if (!a[k]->snapshot_path) goto nomem;
    if (want_parents && rec->member != VHDS_NONE)
      for (uint32_t m = s->v.m[rec->member].parent; m != VHDS_NONE; m = s->v.m[m].parent)
        if (push_str (&a[k]->parent_paths, &a[k]->n_parent_paths, set_file (s, s->v.m[m].name, NULL)) == -1)
          goto nomem;
  }
  r = 0;
  goto out;
 nomem:
  set_error_errno (ENOMEM, "%s", setpath);
 out:
  if (r == -1) { set_snapshots_free (*out, *n); *out = NULL; *n = 0; }
  free (sel);
  info_end (s, &saved);
  return r;
}

/* ---- check ---- */

/* A VHD Set: the set file, the chain it names (VS-3), and every image of
 * the chain. */
int
set_check (const char *path, vhdkit_report_fn report, void *opaque)
{
  struct set *s;
  struct set_disk *sd;
  if (set_disk_open (path, VHDKIT_OPEN_RDONLY, &s, &sd) == -1) {
    if (error_code () != VHDKIT_RC_FAILED) return -1;
    if (report) report (opaque, error_message ());
    return 1;
  }
  int worst = 0;
  for (struct image *m = sd->d->top; m && worst != -1; m = m->parent) {
    int r = image_check (m->path, report, opaque);
    if (r != 0) worst = r;
  }
  error_hold ();
  set_disk_close (s, sd);
  error_release ();
  return worst;
}

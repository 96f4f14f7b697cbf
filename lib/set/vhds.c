/* The .vhds file format (docs/FORMAT-vhds.md): decoding with every
 * validity check, encoding, and the edits the operations make. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "set.h"
#include "crc32c.h"
#include "endian.h"

#define MAGIC "VHDKSET1"

static int
bad (char *why, size_t n, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (why, n, fmt, ap);
  va_end (ap);
  return -1;
}

static bool
name_ok (const char *s)
{
  if (!s[0] || strchr (s, '/') || strcmp (s, ".") == 0 || strcmp (s, "..") == 0)
    return false;
  /* A member is never a set itself: no name a set path would match. */
  for (const char *p = s; (p = strcasestr (p, ".vhds")); p++)
    if (p[5] == '\0' || p[5] == '@') return false;
  return true;
}

int
vhds_validate (const struct vhds *v, char *why, size_t n)
{
  if (v->nmembers < 1 || v->nmembers > VHDS_MAX_MEMBERS)
    return bad (why, n, "%" PRIu32 " members (1 to %d allowed)", v->nmembers, VHDS_MAX_MEMBERS);
  if (v->nrecords > VHDS_MAX_RECORDS)
    return bad (why, n, "%" PRIu32 " records (at most %d allowed)", v->nrecords, VHDS_MAX_RECORDS);
  if (v->leaf >= v->nmembers)
    return bad (why, n, "the leaf is member %" PRIu32 " of %" PRIu32, v->leaf, v->nmembers);
  uint32_t roots = 0;
  for (uint32_t i = 0; i < v->nmembers; i++) {
    const struct vhds_member *m = &v->m[i];
    if (!name_ok (m->name))
      return bad (why, n, "member %" PRIu32 " has an invalid file name \"%s\" (a name in the set's folder is required)", i, m->name);
    for (uint32_t j = 0; j < i; j++)
      if (strcmp (v->m[j].name, m->name) == 0)
        return bad (why, n, "members %" PRIu32 " and %" PRIu32 " are the same file \"%s\"", j, i, m->name);
    if (m->parent == VHDS_NONE) { roots++; continue; }
    if (m->parent == i)
      return bad (why, n, "member %" PRIu32 " (%s) is its own parent", i, m->name);
    if (m->parent >= v->nmembers)
      return bad (why, n, "member %" PRIu32 " (%s) has parent %" PRIu32 ", which does not exist", i, m->name, m->parent);
    /* Following parents must reach the base: no loops. */
    uint32_t p = i, steps = 0;
    while (p != VHDS_NONE && steps <= v->nmembers) { p = v->m[p].parent; steps++; }
    if (p != VHDS_NONE)
      return bad (why, n, "the parents of member %" PRIu32 " (%s) form a loop", i, m->name);
  }
  if (roots != 1)
    return bad (why, n, "%" PRIu32 " members have no parent (exactly one base is required)", roots);
  for (uint32_t i = 0; i < v->nrecords; i++) {
    const struct vhds_record *r = &v->r[i];
    if (guid_is_zero (&r->id)) return bad (why, n, "record %" PRIu32 " has a zero SnapshotId", i);
    for (uint32_t j = 0; j < i; j++)
      if (guid_eq (&v->r[j].id, &r->id))
        return bad (why, n, "records %" PRIu32 " and %" PRIu32 " have the same SnapshotId", j, i);
    if (r->member != VHDS_NONE) {
      if (r->member >= v->nmembers)
        return bad (why, n, "record %" PRIu32 " names member %" PRIu32 ", which does not exist", i, r->member);
      if (r->member == v->leaf)
        return bad (why, n, "record %" PRIu32 " names the leaf, which is never a snapshot", i);
      for (uint32_t j = 0; j < i; j++)
        if (v->r[j].member == r->member)
          return bad (why, n, "records %" PRIu32 " and %" PRIu32 " name the same member", j, i);
    }
    if (r->flags & VHDS_REC_HAS_RCT) {
      if (guid_is_zero (&r->epoch) || r->gen == 0 || r->gen > 0x7ffffff0u)
        return bad (why, n, "record %" PRIu32 " has an invalid RCT ID", i);
    }
  }
  if (v->pending > VHDS_PENDING_MERGE)
    return bad (why, n, "unknown pending operation %" PRIu32, v->pending);
  if (v->pending == VHDS_PENDING_MERGE &&
      (v->pend_child >= v->nmembers || v->pend_parent >= v->nmembers ||
       v->m[v->pend_child].parent != v->pend_parent))
    return bad (why, n, "the pending merge names members %" PRIu32 " and %" PRIu32 ", which are not child and parent",
                v->pend_child, v->pend_parent);
  return 0;
}

void
vhds_free (struct vhds *v)
{
  free (v->m);
  free (v->r);
  v->m = NULL;
  v->r = NULL;
  v->nmembers = v->nrecords = 0;
}

int
vhds_decode (const uint8_t *b, size_t len, struct vhds *v, char *why, size_t n)
{
  memset (v, 0, sizeof *v);
  if (len < VHDS_HDR) return bad (why, n, "too short (%zu bytes)", len);
  if (memcmp (b, MAGIC, 8) != 0) return bad (why, n, "no \"%s\" signature", MAGIC);
  if (get_le32 (b + 12) != 1) return bad (why, n, "version %" PRIu32 " (1 expected)", get_le32 (b + 12));
  uint32_t length = get_le32 (b + 24);
  if (length < VHDS_HDR || length > len || length > VHDS_SLOT)
    return bad (why, n, "length %" PRIu32 " outside the copy", length);
  if (get_le32 (b + 8) != crc32c_skip (b, length, 8)) return bad (why, n, "checksum mismatch");
  v->seq = get_le64 (b + 16);
  v->nmembers = get_le32 (b + 28);
  v->nrecords = get_le32 (b + 32);
  v->leaf = get_le32 (b + 36);
  memcpy (v->set_id.b, b + 40, 16);
  v->pending = get_le32 (b + 56);
  v->pend_child = get_le32 (b + 60);
  v->pend_parent = get_le32 (b + 64);
  if (v->nmembers < 1 || v->nmembers > VHDS_MAX_MEMBERS || v->nrecords > VHDS_MAX_RECORDS ||
      (uint64_t) VHDS_HDR + (uint64_t) v->nmembers * VHDS_MEMBER + (uint64_t) v->nrecords * VHDS_RECORD != length) {
    int r = bad (why, n, "%" PRIu32 " members and %" PRIu32 " records do not fit length %" PRIu32,
                 v->nmembers, v->nrecords, length);
    v->nmembers = v->nrecords = 0;
    return r;
  }
  v->m = calloc (v->nmembers, sizeof *v->m);
  v->r = calloc (v->nrecords ? v->nrecords : 1, sizeof *v->r);
  if (!v->m || !v->r) { vhds_free (v); return bad (why, n, "out of memory"); }
  const uint8_t *p = b + VHDS_HDR;
  for (uint32_t i = 0; i < v->nmembers; i++, p += VHDS_MEMBER) {
    v->m[i].parent = get_le32 (p);
    if (memchr (p + 32, 0, VHDS_NAME_MAX) == NULL) {
      vhds_free (v);
      return bad (why, n, "the file name of member %" PRIu32 " is not terminated", i);
    }
    memcpy (v->m[i].name, p + 32, VHDS_NAME_MAX);
  }
  for (uint32_t i = 0; i < v->nrecords; i++, p += VHDS_RECORD) {
    struct vhds_record *r = &v->r[i];
    memcpy (r->id.b, p, 16);
    r->ctime_ns = (int64_t) get_le64 (p + 16);
    r->member = get_le32 (p + 24);
    r->flags = get_le32 (p + 28) & VHDS_REC_HAS_RCT;
    memcpy (r->epoch.b, p + 32, 16);
    r->gen = get_le32 (p + 48);
  }
  if (vhds_validate (v, why, n) == -1) { vhds_free (v); return -1; }
  return 0;
}

size_t
vhds_encode (const struct vhds *v, uint8_t *b)
{
  size_t length = VHDS_HDR + (size_t) v->nmembers * VHDS_MEMBER + (size_t) v->nrecords * VHDS_RECORD;
  memset (b, 0, length);
  memcpy (b, MAGIC, 8);
  put_le32 (b + 12, 1);
  put_le64 (b + 16, v->seq);
  put_le32 (b + 24, (uint32_t) length);
  put_le32 (b + 28, v->nmembers);
  put_le32 (b + 32, v->nrecords);
  put_le32 (b + 36, v->leaf);
  memcpy (b + 40, v->set_id.b, 16);
  put_le32 (b + 56, v->pending);
  put_le32 (b + 60, v->pending ? v->pend_child : 0);
  put_le32 (b + 64, v->pending ? v->pend_parent : 0);
  uint8_t *p = b + VHDS_HDR;
  for (uint32_t i = 0; i < v->nmembers; i++, p += VHDS_MEMBER) {
    put_le32 (p, v->m[i].parent);
    memcpy (p + 32, v->m[i].name, strnlen (v->m[i].name, VHDS_NAME_MAX - 1));
  }
  for (uint32_t i = 0; i < v->nrecords; i++, p += VHDS_RECORD) {
    const struct vhds_record *r = &v->r[i];
    memcpy (p, r->id.b, 16);
    put_le64 (p + 16, (uint64_t) r->ctime_ns);
    put_le32 (p + 24, r->member);
    put_le32 (p + 28, r->flags);
    if (r->flags & VHDS_REC_HAS_RCT) {
      memcpy (p + 32, r->epoch.b, 16);
      put_le32 (p + 48, r->gen);
    }
  }
  put_le32 (b + 8, crc32c_skip (b, length, 8));
  return length;
}

int
vhds_add_member (struct vhds *v, const char *name, uint32_t parent, uint32_t *index)
{
  struct vhds_member *m = realloc (v->m, (v->nmembers + 1) * sizeof *m);
  if (!m) return -1;
  v->m = m;
  memset (&m[v->nmembers], 0, sizeof *m);
  m[v->nmembers].parent = parent;
  snprintf (m[v->nmembers].name, VHDS_NAME_MAX, "%s", name);
  if (index) *index = v->nmembers;
  v->nmembers++;
  return 0;
}

/* Remove member I: every index after it moves down by one. */
void
vhds_remove_member (struct vhds *v, uint32_t i)
{
#define FIX(x) do { if ((x) != VHDS_NONE && (x) > i) (x)--; } while (0)
  memmove (&v->m[i], &v->m[i + 1], (v->nmembers - i - 1) * sizeof *v->m);
  v->nmembers--;
  for (uint32_t j = 0; j < v->nmembers; j++) FIX (v->m[j].parent);
  for (uint32_t j = 0; j < v->nrecords; j++) FIX (v->r[j].member);
  FIX (v->leaf);
  if (v->pending) { FIX (v->pend_child); FIX (v->pend_parent); }
#undef FIX
}

int
vhds_add_record (struct vhds *v, const struct vhds_record *rec)
{
  struct vhds_record *r = realloc (v->r, (v->nrecords + 1) * sizeof *r);
  if (!r) return -1;
  v->r = r;
  r[v->nrecords++] = *rec;
  return 0;
}

void
vhds_remove_record (struct vhds *v, uint32_t i)
{
  memmove (&v->r[i], &v->r[i + 1], (v->nrecords - i - 1) * sizeof *v->r);
  v->nrecords--;
}

uint32_t
vhds_find_record (const struct vhds *v, const struct guid *id)
{
  for (uint32_t i = 0; i < v->nrecords; i++)
    if (guid_eq (&v->r[i].id, id)) return i;
  return VHDS_NONE;
}

uint32_t
vhds_record_of_member (const struct vhds *v, uint32_t member)
{
  for (uint32_t i = 0; i < v->nrecords; i++)
    if (v->r[i].member == member) return i;
  return VHDS_NONE;
}

/* Number of children of MEMBER; *ONLY is one of them. */
uint32_t
vhds_children (const struct vhds *v, uint32_t member, uint32_t *only)
{
  uint32_t n = 0;
  for (uint32_t i = 0; i < v->nmembers; i++)
    if (v->m[i].parent == member) { n++; if (only) *only = i; }
  return n;
}

/* A deep copy of SRC into DST (views for readers); -1 only for ENOMEM. */
int
vhds_copy (struct vhds *dst, const struct vhds *src)
{
  *dst = *src;
  dst->m = NULL;
  dst->r = NULL;
  if (src->nmembers && !(dst->m = malloc (src->nmembers * sizeof *dst->m))) return -1;
  if (src->nrecords && !(dst->r = malloc (src->nrecords * sizeof *dst->r))) {
    free (dst->m);
    dst->m = NULL;
    return -1;
  }
  if (src->nmembers) memcpy (dst->m, src->m, src->nmembers * sizeof *dst->m);
  if (src->nrecords) memcpy (dst->r, src->r, src->nrecords * sizeof *dst->r);
  return 0;
}

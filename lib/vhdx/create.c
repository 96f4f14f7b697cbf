/* Creating VHDX images (fixed, dynamic, differencing).
 *
 * Layout: file identifier, two headers, two region tables, then at 1 MiB
 * the log (1 MiB), at 2 MiB the metadata region (1 MiB), at 3 MiB the
 * BAT (sized for the differencing layout, rounded to 1 MiB), then
 * payload blocks.  The image is built under a temporary name in the
 * target directory, flushed, and renamed into place without replacing
 * anything, so a crash never leaves a half-made image under PATH. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "vhdx.h"
#include "crc32c.h"
#include "endian.h"
#include "utf16.h"

#define LOG_OFF   MiB
#define LOG_LEN   MiB
#define META_OFF  (2 * MiB)
#define META_LEN  MiB
#define BAT_OFF   (3 * MiB)

/* Relative path, with Windows separators, from directory FROM to file
 * TO (both absolute and canonical): "..\\..\\dir\\file" or ".\\file". */
static char *
relative_path (const char *from, const char *to)
{
  char *f = NULL;
  if (asprintf (&f, "%s%s", from, strcmp (from, "/") == 0 ? "" : "/") == -1)
    return NULL;
  /* P = the longest common prefix of F and TO that ends with '/'. */
  size_t p = 0;
  for (size_t i = 0; f[i] && f[i] == to[i]; i++)
    if (f[i] == '/') p = i + 1;
  size_t ups = 0;
  for (const char *c = f + p; *c; c++)
    if (*c == '/') ups++;
  free (f);
  char *out = malloc (ups * 3 + strlen (to) + 3), *o = out;
  if (!out) return NULL;
  if (ups == 0) { memcpy (o, ".\\", 2); o += 2; }
  for (size_t k = 0; k < ups; k++) { memcpy (o, "..\\", 3); o += 3; }
  for (const char *c = to + p; *c; c++) *o++ = *c == '/' ? '\\' : *c;
  *o = '\0';
  return out;
}

struct kv { const char *k; char *v; };

/* 2.6.2.6: the parent locator item; returns its length. */
static uint8_t *
build_locator (const struct kv *kv, int n, size_t *len)
{
  uint8_t *ks[8], *vs[8];
  size_t kl[8], vl[8], total = 20 + 12 * (size_t) n;
  for (int i = 0; i < n; i++) {
    ks[i] = utf8_to_utf16le (kv[i].k, &kl[i]);
    vs[i] = utf8_to_utf16le (kv[i].v, &vl[i]);
    if (!ks[i] || !vs[i]) return NULL;
    total += kl[i] + vl[i];
  }
  uint8_t *b = calloc (1, total);
  if (!b) return NULL;
  memcpy (b, VHDX_LOCATOR_TYPE_GUID.b, 16);
  put_le16 (b + 18, (uint16_t) n);
  size_t pos = 20 + 12 * (size_t) n;
  for (int i = 0; i < n; i++) {
    uint8_t *e = b + 20 + 12 * i;
    put_le32 (e, (uint32_t) pos);
    memcpy (b + pos, ks[i], kl[i]); pos += kl[i];
    put_le32 (e + 4, (uint32_t) pos);
    memcpy (b + pos, vs[i], vl[i]); pos += vl[i];
    put_le16 (e + 8, (uint16_t) kl[i]);
    put_le16 (e + 10, (uint16_t) vl[i]);
    free (ks[i]); free (vs[i]);
  }
  *len = total;
  return b;
}

static void
meta_entry (uint8_t *table, int i, const struct guid *g, uint32_t off,
            uint32_t len, bool virtual_disk)
{
  uint8_t *e = table + 32 + 32 * i;
  memcpy (e, g->b, 16);
  put_le32 (e + 16, off);
  put_le32 (e + 20, len);
  put_le32 (e + 24, (virtual_disk ? 2u : 0u) | 4u);   /* IsRequired */
}

static int
write_at (struct io *io, const char *path, const void *b, size_t n, uint64_t off)
{
  if (io_pwrite (io, b, n, off) == -1) {
    set_error_errno (errno, "%s: write at %" PRIu64, path, off);
    return -1;
  }
  return 0;
}

int
vhdx_create (const char *path, const struct vhdkit_create_params *p,
             const struct drv_create_parent *parent)
{
  uint32_t lss = p->logical_sector_size, pss = p->physical_sector_size;
  uint64_t size = p->size;
  int type = p->type ? p->type : p->parent ? VHDKIT_TYPE_DIFFERENCING : VHDKIT_TYPE_DYNAMIC;
  uint32_t bs = p->block_size ? p->block_size
    : type == VHDKIT_TYPE_DIFFERENCING ? VHDKIT_DEFAULT_DIFF_BLOCK_SIZE : VHDKIT_DEFAULT_BLOCK_SIZE;
  struct guid linkage = {{ 0 }};
  struct kv kv[3];
  int nkv = 0, ret = -1;
  char *tmp = NULL, *dirc = NULL, *abs_dir = NULL;
  uint8_t *buf = NULL, *loc = NULL;
  size_t loclen = 0;
  struct io *io = NULL;

  if (type == VHDKIT_TYPE_DIFFERENCING && !parent) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: a differencing image needs a parent", path);
    return -1;
  }
  if (parent && type != VHDKIT_TYPE_DIFFERENCING) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: only a differencing image has a parent", path);
    return -1;
  }
  if (parent) {
    memcpy (linkage.b, parent->data_write_guid, 16);
    if (lss && lss != parent->lss) {
      set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: logical sector size %" PRIu32
                 " differs from the parent's %" PRIu32, path, lss, parent->lss);
      return -1;
    }
    lss = parent->lss;
    if (!pss) pss = parent->pss;
    if (!size) size = parent->size;
  }
  if (!lss) lss = 512;
  if (!pss) pss = 4096;
  if ((lss != 512 && lss != 4096) || (pss != 512 && pss != 4096)) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: sector sizes %" PRIu32 "/%" PRIu32
               " must each be 512 or 4096", path, lss, pss);
    return -1;
  }
  if (!is_pow2 (bs) || bs < VHDKIT_MIN_BLOCK_SIZE || bs > VHDKIT_MAX_BLOCK_SIZE) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: block size %" PRIu32
               " is not a power of two between 1 MiB and 256 MiB", path, bs);
    return -1;
  }
  if (size == 0 || size % lss || size > VHDKIT_MAX_VIRTUAL_SIZE) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: virtual size %" PRIu64
               " must be a non-zero multiple of %" PRIu32 " up to 64 TiB", path, size, lss);
    return -1;
  }
  if (type != VHDKIT_TYPE_FIXED && type != VHDKIT_TYPE_DYNAMIC && type != VHDKIT_TYPE_DIFFERENCING) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: unknown disk type %d", path, type);
    return -1;
  }
  if (access (path, F_OK) == 0) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: already exists", path);
    return -1;
  }

  if (parent) {
    const char *abs_parent = parent->real;
    dirc = strdup (path);
    if (!dirc || !(abs_dir = realpath (dirname (dirc), NULL))) {
      set_error_errno (errno, "%s: resolve directory", path);
      goto out;
    }
    char lt[40];
    guid_to_text (&linkage, lt);
    kv[0].k = "parent_linkage";
    if (asprintf (&kv[0].v, "{%s}", lt) == -1) { kv[0].v = NULL; goto nomem; }
    nkv = 1;
    kv[1].k = "relative_path";
    if (!(kv[1].v = relative_path (abs_dir, abs_parent))) goto nomem;
    nkv = 2;
    kv[2].k = "absolute_win32_path";
    if (asprintf (&kv[2].v, "\\\\?\\%s", abs_parent) == -1) { kv[2].v = NULL; goto nomem; }
    for (char *c = kv[2].v + 4; *c; c++) if (*c == '/') *c = '\\';
    nkv = 3;
    if (!(loc = build_locator (kv, nkv, &loclen))) goto nomem;
  }

  uint64_t cr, db, entries;
  vhdx_compute_geometry (size, bs, lss, true, &cr, &db, &entries);
  uint64_t bat_len = round_up (entries * 8, MiB);
  if (bat_len > UINT32_MAX) {
    set_error (VHDKIT_RC_INVALID_PARAMETER, 0, "%s: the BAT would exceed 4 GiB; use a larger block size", path);
    goto out;
  }
  uint64_t data_off = BAT_OFF + bat_len;

  /* A temporary name beside PATH; open(2) applies the umask to 0666. */
  for (int tries = 0; ; tries++) {
    struct guid r;
    char rt[40];
    if (guid_generate (&r) == -1) { set_error_errno (errno, "%s: random name", path); goto out; }
    guid_to_text (&r, rt);
    free (tmp);
    if (asprintf (&tmp, "%s.tmp-%.8s", path, rt) == -1) { tmp = NULL; goto nomem; }
    if ((io = io_open (tmp, O_RDWR | O_CREAT | O_EXCL, 0666)))
      break;
    if (errno != EEXIST || tries > 100) {
      set_error_errno (errno, "%s: create", path);
      free (tmp);
      tmp = NULL;
      goto out;
    }
  }
  if (!(buf = calloc (1, MiB))) goto nomem;

  /* 2.2.1 file identifier */
  memcpy (buf, "vhdxfile", 8);
  size_t cl;
  uint8_t *creator = utf8_to_utf16le ("vhdkit " VHDKIT_VERSION_STRING, &cl);
  if (!creator) goto nomem;
  memcpy (buf + 8, creator, cl);
  free (creator);
  /* 2.2.2 headers */
  struct vhdx_header h = { .seq = 0, .version = 1, .log_length = LOG_LEN, .log_offset = LOG_OFF };
  if (guid_generate (&h.file_write) == -1 || guid_generate (&h.data_write) == -1) {
    set_error_errno (errno, "%s: random GUID", path);
    goto out;
  }
  vhdx_encode_header (&h, buf + VHDX_HEADER1_OFF);
  h.seq = 1;
  vhdx_encode_header (&h, buf + VHDX_HEADER2_OFF);
  /* 2.2.3 region tables */
  uint8_t *rt = buf + VHDX_REGION1_OFF;
  memcpy (rt, "regi", 4);
  put_le32 (rt + 8, 2);
  memcpy (rt + 16, VHDX_BAT_GUID.b, 16);
  put_le64 (rt + 32, BAT_OFF);
  put_le32 (rt + 40, (uint32_t) bat_len);
  put_le32 (rt + 44, 1);
  memcpy (rt + 48, VHDX_META_GUID.b, 16);
  put_le64 (rt + 64, META_OFF);
  put_le32 (rt + 72, (uint32_t) META_LEN);
  put_le32 (rt + 76, 1);
  put_le32 (rt + 4, crc32c_skip (rt, VHDX_REGION_SIZE, 4));
  memcpy (buf + VHDX_REGION2_OFF, rt, VHDX_REGION_SIZE);
  if (write_at (io, path, buf, MiB, 0) == -1) goto out;

  /* 2.6 metadata region */
  memset (buf, 0, MiB);
  memcpy (buf, "metadata", 8);
  int nitems = parent ? 6 : 5;
  put_le16 (buf + 10, (uint16_t) nitems);
  uint32_t io_ = VHDX_META_TABLE_SIZE;
  struct guid disk_id;
  if (guid_generate (&disk_id) == -1) { set_error_errno (errno, "%s: random GUID", path); goto out; }
  meta_entry (buf, 0, &VHDX_FILE_PARAMS_GUID, io_, 8, false);
  put_le32 (buf + io_, bs);
  put_le32 (buf + io_ + 4, (type == VHDKIT_TYPE_FIXED ? 1u : 0u) | (parent ? 2u : 0u));
  io_ += 8;
  meta_entry (buf, 1, &VHDX_DISK_SIZE_GUID, io_, 8, true);
  put_le64 (buf + io_, size);
  io_ += 8;
  meta_entry (buf, 2, &VHDX_DISK_ID_GUID, io_, 16, true);
  memcpy (buf + io_, disk_id.b, 16);
  io_ += 16;
  meta_entry (buf, 3, &VHDX_LSS_GUID, io_, 4, true);
  put_le32 (buf + io_, lss);
  io_ += 4;
  meta_entry (buf, 4, &VHDX_PSS_GUID, io_, 4, true);
  put_le32 (buf + io_, pss);
  io_ += 4;
  if (parent) {
    meta_entry (buf, 5, &VHDX_PARENT_LOC_GUID, io_, (uint32_t) loclen, false);
    memcpy (buf + io_, loc, loclen);
  }
  if (write_at (io, path, buf, MiB, META_OFF) == -1) goto out;

  /* 2.5 BAT: zeros (NOT_PRESENT) except for fixed images, whose blocks
   * are laid out in order after the BAT. */
  if (io_truncate (io, data_off) == -1) {
    set_error_errno (errno, "%s: size", path);
    goto out;
  }
  if (type == VHDKIT_TYPE_FIXED) {
    uint64_t total = db * (uint64_t) bs;
    if (io_truncate (io, data_off + total) == -1) {
      set_error_errno (errno, "%s: size", path);
      goto out;
    }
    /* Provision the space; a filesystem without fallocate gets a sparse
     * file, which reads the same. */
    for (uint64_t done = 0; done < total; ) {
      uint64_t n = total - done < (UINT64_C(1) << 30) ? total - done : (UINT64_C(1) << 30);
      if (io_zero_range (io, data_off + done, n, IO_ZERO_PREALLOC) == -1 &&
          errno != EOPNOTSUPP) {
        set_error_errno (errno, "%s: allocate %" PRIu64 " bytes", path, total);
        goto out;
      }
      done += n;
      if (p->progress && p->progress (p->progress_opaque, done, total)) {
        set_error (VHDKIT_RC_FAILED, ECANCELED, "%s: creation cancelled", path);
        goto out;
      }
    }
    for (uint64_t b0 = 0; b0 < db; b0 += MiB / 8 / 2) {
      memset (buf, 0, MiB);
      uint64_t first_idx = b0 + b0 / cr, last_idx = first_idx;
      for (uint64_t b = b0; b < db && b < b0 + MiB / 16; b++) {
        uint64_t idx = b + b / cr;
        put_le64 (buf + 8 * (idx - first_idx),
                  BAT_ENTRY (PAYLOAD_BLOCK_FULLY_PRESENT, data_off + b * (uint64_t) bs));
        last_idx = idx;
      }
      if (write_at (io, path, buf, (size_t) (last_idx - first_idx + 1) * 8,
                    BAT_OFF + first_idx * 8) == -1)
        goto out;
    }
  }
  if (type == VHDKIT_TYPE_DIFFERENCING) {
    /* Every chunk gets its (all-zero, sparse) sector bitmap block now,
     * as Hyper-V does: libvhdi consults the bitmap even for blocks whose
     * chunk has none, reading garbage from offset 0. */
    uint64_t chunks = div_round_up (db, cr);
    if (io_truncate (io, data_off + chunks * MiB) == -1) {
      set_error_errno (errno, "%s: size", path);
      goto out;
    }
    for (uint64_t c = 0; c < chunks; c++) {
      uint8_t e[8];
      put_le64 (e, BAT_ENTRY (SB_BLOCK_PRESENT, data_off + c * MiB));
      if (write_at (io, path, e, 8, BAT_OFF + (c * (cr + 1) + cr) * 8) == -1)
        goto out;
    }
  }
  if (io_sync (io) == -1) {
    set_error_errno (errno, "%s: flush", path);
    goto out;
  }
  if (io_close (io) == -1) {
    io = NULL;
    set_error_errno (errno, "%s: close", path);
    goto out;
  }
  io = NULL;
  if (renameat2 (AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == -1) {
    set_error_errno (errno, "%s: rename into place", path);
    goto out;
  }
  free (tmp);
  tmp = NULL;
  ret = 0;
  goto out;
 nomem:
  set_error_errno (ENOMEM, "%s: create", path);
 out:
  if (io) io_close (io);
  if (tmp) { unlink (tmp); free (tmp); }
  for (int i = 0; i < nkv; i++) free (kv[i].v);
  free (buf); free (loc); free (dirc); free (abs_dir);
  return ret;
}

/* VHDX header section and metadata region (MS-VHDX 2.2, 2.6): decoding
 * with every field validated, and the header update procedure
 * (2.2.2.1, invariant VX-1 in docs/CRASH-SAFETY.md).  No caching here:
 * callers keep what they decode in struct vhdx. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vhdx.h"
#include "crc32c.h"
#include "endian.h"
#include "utf16.h"

const struct guid VHDX_BAT_GUID = {{ 0x66,0x77,0xc2,0x2d,0x23,0xf6,0x00,0x42,0x9d,0x64,0x11,0x5e,0x9b,0xfd,0x4a,0x08 }};
const struct guid VHDX_META_GUID = {{ 0x06,0xa2,0x7c,0x8b,0x90,0x47,0x9a,0x4b,0xb8,0xfe,0x57,0x5f,0x05,0x0f,0x88,0x6e }};
const struct guid VHDX_FILE_PARAMS_GUID = {{ 0x37,0x67,0xa1,0xca,0x36,0xfa,0x43,0x4d,0xb3,0xb6,0x33,0xf0,0xaa,0x44,0xe7,0x6b }};
const struct guid VHDX_DISK_SIZE_GUID = {{ 0x24,0x42,0xa5,0x2f,0x1b,0xcd,0x76,0x48,0xb2,0x11,0x5d,0xbe,0xd8,0x3b,0xf4,0xb8 }};
const struct guid VHDX_DISK_ID_GUID = {{ 0xab,0x12,0xca,0xbe,0xe6,0xb2,0x23,0x45,0x93,0xef,0xc3,0x09,0xe0,0x00,0xc7,0x46 }};
const struct guid VHDX_LSS_GUID = {{ 0x1d,0xbf,0x41,0x81,0x6f,0xa9,0x09,0x47,0xba,0x47,0xf2,0x33,0xa8,0xfa,0xab,0x5f }};
const struct guid VHDX_PSS_GUID = {{ 0xc7,0x48,0xa3,0xcd,0x5d,0x44,0x71,0x44,0x9c,0xc9,0xe9,0x88,0x52,0x51,0xc5,0x56 }};
const struct guid VHDX_PARENT_LOC_GUID = {{ 0x2d,0x5f,0xd3,0xa8,0x0b,0xb3,0x4d,0x45,0xab,0xf7,0xd3,0xd8,0x48,0x34,0xab,0x0c }};
const struct guid VHDX_LOCATOR_TYPE_GUID = {{ 0xb7,0xef,0x4a,0xb0,0x9e,0xd1,0x81,0x4a,0xb7,0x89,0x25,0xb8,0xe9,0x44,0x59,0x13 }};

/* Corrupt-image errors all read the same way. */
#define CORRUPT(s, ...) do {                                         \
    set_error (VHDKIT_RC_FAILED, 0, __VA_ARGS__);                    \
    error_prefix ("%s: corrupt VHDX image", (s)->path);           \
    return -1;                                                       \
  } while (0)

void
vhdx_compute_geometry (uint64_t size, uint32_t block_size, uint32_t lss,
                       bool differencing, uint64_t *chunk_ratio,
                       uint64_t *data_blocks, uint64_t *bat_entries)
{
  uint64_t cr = (VHDX_CHUNK_SECTORS * lss) / block_size;
  uint64_t db = div_round_up (size, block_size);
  uint64_t sb = div_round_up (db, cr);
  *chunk_ratio = cr;
  *data_blocks = db;
  /* 2.5: a differencing image's BAT reaches the last sector bitmap
   * entry; others end at the last payload entry.  vhdkit uses the larger
   * layout everywhere it sizes a BAT, and the exact one to validate. */
  if (differencing)
    *bat_entries = sb * (cr + 1);
  else
    *bat_entries = db ? db + (db - 1) / cr : 0;
}

static void
decode_header (const uint8_t *b, struct vhdx_header *h)
{
  h->seq = get_le64 (b + 8);
  memcpy (h->file_write.b, b + 16, 16);
  memcpy (h->data_write.b, b + 32, 16);
  memcpy (h->log_guid.b, b + 48, 16);
  h->log_version = get_le16 (b + 64);
  h->version = get_le16 (b + 66);
  h->log_length = get_le32 (b + 68);
  h->log_offset = get_le64 (b + 72);
}

void
vhdx_encode_header (const struct vhdx_header *h, uint8_t *b)
{
  memset (b, 0, VHDX_HEADER_SIZE);
  memcpy (b, "head", 4);
  put_le64 (b + 8, h->seq);
  memcpy (b + 16, h->file_write.b, 16);
  memcpy (b + 32, h->data_write.b, 16);
  memcpy (b + 48, h->log_guid.b, 16);
  put_le16 (b + 64, h->log_version);
  put_le16 (b + 66, h->version);
  put_le32 (b + 68, h->log_length);
  put_le64 (b + 72, h->log_offset);
  put_le32 (b + 4, crc32c_skip (b, VHDX_HEADER_SIZE, 4));
}

/* 2.2.2: a header is valid if its signature and checksum are; the
 * current one is the valid one with the greater sequence number. */
int
vhdx_read_headers (struct vhdx *s)
{
  uint8_t *b = malloc (VHDX_HEADER_SIZE);
  if (!b) { set_error_errno (ENOMEM, "%s", s->path); return -1; }
  for (int i = 0; i < 2; i++) {
    uint64_t off = i ? VHDX_HEADER2_OFF : VHDX_HEADER1_OFF;
    s->hdr_ok[i] = false;
    if (io_pread_full (s->io, b, VHDX_HEADER_SIZE, off) == -1) {
      if (errno != ENODATA) {
        set_error_errno (errno, "%s: read header %d", s->path, i + 1);
        free (b);
        return -1;
      }
      continue;       /* truncated: this copy is invalid */
    }
    if (memcmp (b, "head", 4) != 0 ||
        get_le32 (b + 4) != crc32c_skip (b, VHDX_HEADER_SIZE, 4))
      continue;
    decode_header (b, &s->hdr[i]);
    s->hdr_ok[i] = true;
  }
  free (b);
  if (!s->hdr_ok[0] && !s->hdr_ok[1])
    CORRUPT (s, "neither header (at 64 KiB and 128 KiB) has a valid signature and CRC-32C");
  if (s->hdr_ok[0] && s->hdr_ok[1])
    s->cur = s->hdr[1].seq > s->hdr[0].seq ? 1 : 0;
  else
    s->cur = s->hdr_ok[1] ? 1 : 0;
  const struct vhdx_header *h = &s->hdr[s->cur];
  if (h->version != 1) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0,
               "%s: VHDX format version %u is not supported (only 1)",
               s->path, h->version);
    return -1;
  }
  if (h->log_version != 0 && !guid_is_zero (&h->log_guid)) {
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0,
               "%s: VHDX log version %u is not supported (only 0)",
               s->path, h->log_version);
    return -1;
  }
  if (h->log_offset % MiB || h->log_length % MiB || h->log_offset < MiB ||
      (h->log_length == 0 && !guid_is_zero (&h->log_guid)))
    CORRUPT (s, "log offset %" PRIu64 " or length %" PRIu32
             " is not a non-zero multiple of 1 MiB past the header section",
             h->log_offset, h->log_length);
  return 0;
}

/* 2.2.2.1: write the non-current header with sequence+1, flush; TIMES=2
 * repeats so both copies are current.  The first update of a session
 * takes a new FileWriteGuid. */
int
vhdx_write_header (struct vhdx *s, const struct guid *new_data_write,
                   const struct guid *new_log_guid, int times)
{
  uint8_t *b = malloc (VHDX_HEADER_SIZE);
  if (!b) { set_error_errno (ENOMEM, "%s", s->path); return -1; }
  struct vhdx_header h = s->hdr[s->cur];
  if (!s->session_started) {
    if (guid_generate (&h.file_write) == -1) {
      set_error_errno (errno, "%s: random GUID", s->path);
      free (b);
      return -1;
    }
  }
  if (new_data_write) h.data_write = *new_data_write;
  if (new_log_guid) h.log_guid = *new_log_guid;
  h.log_version = 0;
  for (int t = 0; t < times; t++) {
    int slot = 1 - s->cur;
    h.seq = s->hdr[s->cur].seq + 1;
    vhdx_encode_header (&h, b);
    if (io_pwrite (s->io, b, VHDX_HEADER_SIZE,
                   slot ? VHDX_HEADER2_OFF : VHDX_HEADER1_OFF) == -1 ||
        io_sync (s->io) == -1) {
      set_error_errno (errno, "%s: write header %d", s->path, slot + 1);
      STORE_RELEASE (&s->poisoned, true);
      free (b);
      return -1;
    }
    s->hdr[slot] = h;
    s->hdr_ok[slot] = true;
    s->cur = slot;
    STORE_RELEASE (&s->session_started, true);
  }
  free (b);
  return 0;
}

struct range { uint64_t off, len; const char *what; };

static int
check_overlaps (struct vhdx *s, struct range *r, size_t n)
{
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (r[i].off < r[j].off + r[j].len && r[j].off < r[i].off + r[i].len)
        CORRUPT (s, "the %s (%" PRIu64 "+%" PRIu64 ") overlaps the %s (%" PRIu64 "+%" PRIu64 ")",
                 r[i].what, r[i].off, r[i].len, r[j].what, r[j].off, r[j].len);
  return 0;
}

/* 2.2.3: use region table 1 if valid, else 2. */
int
vhdx_read_regions (struct vhdx *s)
{
  uint8_t *b = malloc (VHDX_REGION_SIZE);
  if (!b) { set_error_errno (ENOMEM, "%s", s->path); return -1; }
  int which = -1;
  for (int i = 0; i < 2 && which < 0; i++) {
    if (vhdx_meta_pread (s, b, VHDX_REGION_SIZE,
                         i ? VHDX_REGION2_OFF : VHDX_REGION1_OFF) == -1) {
      if (errno != ENODATA) { free (b); return -1; }
      continue;
    }
    if (memcmp (b, "regi", 4) == 0 &&
        get_le32 (b + 4) == crc32c_skip (b, VHDX_REGION_SIZE, 4))
      which = i;
  }
  if (which < 0) {
    free (b);
    CORRUPT (s, "neither region table (at 192 KiB and 256 KiB) has a valid signature and CRC-32C");
  }
  uint32_t count = get_le32 (b + 8);
  if (count > 2047) {
    free (b);
    CORRUPT (s, "region table entry count %" PRIu32 " exceeds 2047", count);
  }
  bool have_bat = false, have_meta = false;
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t *e = b + 16 + 32 * i;
    struct guid g;
    memcpy (g.b, e, 16);
    uint64_t off = get_le64 (e + 16);
    uint32_t len = get_le32 (e + 24);
    uint32_t req = get_le32 (e + 28);
    char gt[40];
    guid_to_text (&g, gt);
    bool bat = guid_eq (&g, &VHDX_BAT_GUID), meta = guid_eq (&g, &VHDX_META_GUID);
    if (!bat && !meta) {
      if (req & 1) {
        free (b);
        set_error (VHDKIT_RC_NOT_SUPPORTED, 0,
                   "%s: the image requires region {%s}, which vhdkit does not know",
                   s->path, gt);
        return -1;
      }
      continue;
    }
    if ((bat && have_bat) || (meta && have_meta)) {
      free (b);
      CORRUPT (s, "region {%s} appears twice in the region table", gt);
    }
    if (off % MiB || off < MiB || len % MiB || len == 0) {
      free (b);
      CORRUPT (s, "the %s region (%" PRIu64 "+%" PRIu32 ") is not aligned to 1 MiB past the header section",
               bat ? "BAT" : "metadata", off, len);
    }
    if (bat) { s->bat_off = off; s->bat_len = len; have_bat = true; }
    else { s->meta_off = off; s->meta_len = len; have_meta = true; }
  }
  free (b);
  if (!have_bat || !have_meta)
    CORRUPT (s, "the region table lacks the %s region", have_bat ? "metadata" : "BAT");
  const struct vhdx_header *h = &s->hdr[s->cur];
  struct range r[3] = {
    { s->bat_off, s->bat_len, "BAT region" },
    { s->meta_off, s->meta_len, "metadata region" },
    { h->log_offset, h->log_length, "log" },
  };
  if (check_overlaps (s, r, h->log_length ? 3 : 2) == -1)
    return -1;
  for (int i = 0; i < 3; i++) {
    uint64_t end;
    if (!add_ok (r[i].off, r[i].len, &end) || end > s->file_size)
      CORRUPT (s, "the %s (%" PRIu64 "+%" PRIu64 ") lies beyond the end of the file (%" PRIu64 " bytes)",
               r[i].what, r[i].off, r[i].len, s->file_size);
  }
  return 0;
}

/* Read a metadata item into BUF (exactly LEN bytes expected). */
static int
read_item (struct vhdx *s, uint32_t off, uint32_t len, uint32_t want,
           const char *name, void *buf)
{
  if (len != want)
    CORRUPT (s, "metadata item %s has length %" PRIu32 ", expected %" PRIu32, name, len, want);
  return vhdx_meta_pread (s, buf, want, s->meta_off + off);
}

static int
parse_locator (struct vhdx *s, const uint8_t *p, uint32_t len)
{
  if (len < 20)
    CORRUPT (s, "the parent locator is %" PRIu32 " bytes, too short for its header", len);
  struct guid type;
  memcpy (type.b, p, 16);
  if (!guid_eq (&type, &VHDX_LOCATOR_TYPE_GUID)) {
    char gt[40];
    guid_to_text (&type, gt);
    set_error (VHDKIT_RC_NOT_SUPPORTED, 0,
               "%s: parent locator type {%s} is not the VHDX locator", s->path, gt);
    return -1;
  }
  uint16_t n = get_le16 (p + 18);
  if (20 + (uint64_t) n * 12 > len)
    CORRUPT (s, "the parent locator's %u entries do not fit in its %" PRIu32 " bytes", n, len);
  for (uint16_t i = 0; i < n; i++) {
    const uint8_t *e = p + 20 + 12 * i;
    uint32_t ko = get_le32 (e), vo = get_le32 (e + 4);
    uint16_t kl = get_le16 (e + 8), vl = get_le16 (e + 10);
    if (!ko || !vo || !kl || !vl || (uint64_t) ko + kl > len || (uint64_t) vo + vl > len)
      CORRUPT (s, "parent locator entry %u points outside the locator", i);
    char *k = utf16le_to_utf8 (p + ko, kl), *v = utf16le_to_utf8 (p + vo, vl);
    if (!k || !v) {
      free (k); free (v);
      CORRUPT (s, "parent locator entry %u is not valid UTF-16", i);
    }
    if (strcmp (k, "parent_linkage") == 0 || strcmp (k, "parent_linkage2") == 0) {
      bool two = k[14] == '2';
      struct guid *g = two ? &s->linkage2 : &s->linkage;
      if (guid_from_text (g, v) == -1) {
        set_error (VHDKIT_RC_FAILED, 0, "%s: corrupt VHDX image: %s \"%s\" is not a GUID",
                   s->path, k, v);
        free (k); free (v);
        return -1;
      }
      if (two) s->has_linkage2 = true; else s->has_linkage = true;
      free (v);
    }
    else if (strcmp (k, "relative_path") == 0) { free (s->loc_relative); s->loc_relative = v; }
    else if (strcmp (k, "volume_path") == 0) { free (s->loc_volume); s->loc_volume = v; }
    else if (strcmp (k, "absolute_win32_path") == 0) { free (s->loc_absolute); s->loc_absolute = v; }
    else free (v);
    free (k);
  }
  if (!s->has_linkage)
    CORRUPT (s, "the parent locator has no parent_linkage");
  if (!s->loc_relative && !s->loc_volume && !s->loc_absolute)
    CORRUPT (s, "the parent locator names no path to the parent");
  return 0;
}

/* 2.6: the metadata table and the known items.  Unknown required items
 * make the image unsupported. */
int
vhdx_read_metadata (struct vhdx *s)
{
  uint8_t *t = malloc (VHDX_META_TABLE_SIZE);
  if (!t) { set_error_errno (ENOMEM, "%s", s->path); return -1; }
  if (vhdx_meta_pread (s, t, VHDX_META_TABLE_SIZE, s->meta_off) == -1) {
    free (t);
    return -1;
  }
  int ret = -1;
  if (memcmp (t, "metadata", 8) != 0) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: corrupt VHDX image: the metadata table signature is wrong", s->path);
    goto out;
  }
  uint16_t count = get_le16 (t + 10);
  if (count > 2047) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: corrupt VHDX image: metadata entry count %u exceeds 2047", s->path, count);
    goto out;
  }
  enum { FP, VS, ID, LSS, PSS, PL, NITEMS };
  const struct guid *known[NITEMS] = { &VHDX_FILE_PARAMS_GUID, &VHDX_DISK_SIZE_GUID,
    &VHDX_DISK_ID_GUID, &VHDX_LSS_GUID, &VHDX_PSS_GUID, &VHDX_PARENT_LOC_GUID };
  static const char *names[NITEMS] = { "File Parameters", "Virtual Disk Size",
    "Virtual Disk ID", "Logical Sector Size", "Physical Sector Size", "Parent Locator" };
  uint32_t ioff[NITEMS] = { 0 }, ilen[NITEMS] = { 0 };
  bool have[NITEMS] = { false };
  for (uint16_t i = 0; i < count; i++) {
    const uint8_t *e = t + 32 + 32 * i;
    struct guid g;
    memcpy (g.b, e, 16);
    uint32_t off = get_le32 (e + 16), len = get_le32 (e + 20), flags = get_le32 (e + 24);
    bool is_user = flags & 1, required = flags & 4;
    if (len > MiB || (len && (off < VHDX_META_TABLE_SIZE || (uint64_t) off + len > s->meta_len))) {
      set_error (VHDKIT_RC_FAILED, 0, "%s: corrupt VHDX image: metadata item %u (%" PRIu32 "+%" PRIu32
                 ") lies outside the metadata region", s->path, i, off, len);
      goto out;
    }
    int k;
    for (k = 0; k < NITEMS; k++)
      if (!is_user && guid_eq (&g, known[k])) break;
    if (k == NITEMS) {
      if (required) {
        char gt[40];
        guid_to_text (&g, gt);
        set_error (VHDKIT_RC_NOT_SUPPORTED, 0,
                   "%s: the image requires metadata item {%s}, which vhdkit does not know",
                   s->path, gt);
        goto out;
      }
      continue;
    }
    if (have[k]) {
      set_error (VHDKIT_RC_FAILED, 0, "%s: corrupt VHDX image: metadata item %s appears twice", s->path, names[k]);
      goto out;
    }
    have[k] = true; ioff[k] = off; ilen[k] = len;
  }
  for (int k = 0; k < PL; k++)
    if (!have[k]) {
      set_error (VHDKIT_RC_FAILED, 0, "%s: corrupt VHDX image: required metadata item %s is missing", s->path, names[k]);
      goto out;
    }
  uint8_t v[16];
  if (read_item (s, ioff[FP], ilen[FP], 8, names[FP], v) == -1) goto out;
  s->block_size = get_le32 (v);
  uint32_t fpf = get_le32 (v + 4);
  s->leave_allocated = fpf & 1;
  s->has_parent = fpf & 2;
  if (read_item (s, ioff[VS], ilen[VS], 8, names[VS], v) == -1) goto out;
  s->size = get_le64 (v);
  s->size_item_off = s->meta_off + ioff[VS];
  if (read_item (s, ioff[ID], ilen[ID], 16, names[ID], v) == -1) goto out;
  memcpy (s->disk_id.b, v, 16);
  if (read_item (s, ioff[LSS], ilen[LSS], 4, names[LSS], v) == -1) goto out;
  s->lss = get_le32 (v);
  if (read_item (s, ioff[PSS], ilen[PSS], 4, names[PSS], v) == -1) goto out;
  s->pss = get_le32 (v);

  if (!is_pow2 (s->block_size) || s->block_size < VHDKIT_MIN_BLOCK_SIZE ||
      s->block_size > VHDKIT_MAX_BLOCK_SIZE) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: corrupt VHDX image: block size %" PRIu32
               " is not a power of two between 1 MiB and 256 MiB", s->path, s->block_size);
    goto out;
  }
  if ((s->lss != 512 && s->lss != 4096) || (s->pss != 512 && s->pss != 4096)) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: corrupt VHDX image: sector sizes %" PRIu32 "/%" PRIu32
               " are not 512 or 4096", s->path, s->lss, s->pss);
    goto out;
  }
  if (s->size == 0 || s->size % s->lss || s->size > VHDKIT_MAX_VIRTUAL_SIZE) {
    set_error (VHDKIT_RC_FAILED, 0, "%s: corrupt VHDX image: virtual size %" PRIu64
               " is not a non-zero multiple of %" PRIu32 " up to 64 TiB", s->path, s->size, s->lss);
    goto out;
  }
  if (s->has_parent) {
    if (!have[PL] || ilen[PL] == 0) {
      set_error (VHDKIT_RC_FAILED, 0, "%s: corrupt VHDX image: a differencing image without a parent locator", s->path);
      goto out;
    }
    uint8_t *pl = malloc (ilen[PL]);
    if (!pl) { set_error_errno (ENOMEM, "%s", s->path); goto out; }
    if (vhdx_meta_pread (s, pl, ilen[PL], s->meta_off + ioff[PL]) == -1 ||
        parse_locator (s, pl, ilen[PL]) == -1) {
      free (pl);
      goto out;
    }
    free (pl);
  }
  ret = 0;
 out:
  free (t);
  return ret;
}

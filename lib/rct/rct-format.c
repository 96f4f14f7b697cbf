/* Encoding of the tracking files (docs/FORMAT-rct.md): the two-copy
 * header of IMAGE.rct and the sealed 4 KiB pages of both files. */
#include <string.h>

#include "rct.h"
#include "crc32c.h"
#include "endian.h"

#define HDR_MAGIC "VHDKRCT1"

void
rct_encode_header (const struct rct_header *h, uint8_t *b)
{
  memset (b, 0, RCT_HDR_SIZE);
  memcpy (b, HDR_MAGIC, 8);
  put_le32 (b + 12, RCT_VERSION);
  put_le64 (b + 16, h->seq);
  memcpy (b + 24, h->epoch.b, 16);
  put_le32 (b + 40, h->granularity);
  put_le32 (b + 44, h->cur);
  put_le32 (b + 48, h->session_dirty);
  put_le32 (b + 52, h->image_format);
  memcpy (b + 56, h->dwg.b, 16);
  memcpy (b + 72, h->pending_dwg.b, 16);
  put_le64 (b + 88, h->st_dev);
  put_le64 (b + 96, h->st_ino);
  put_le64 (b + 104, h->st_size);
  put_le64 (b + 112, h->st_mtime_ns);
  put_le64 (b + 120, h->st_ctime_ns);
  put_le64 (b + 128, h->max_leaf);
  put_le64 (b + 136, h->max_l1);
  put_le32 (b + 144, h->nsizes);
  put_le64 (b + 1800, h->leaves_written);
  put_le64 (b + 1808, h->leaves_span);
  memcpy (b + 1816, h->session.b, 16);
  for (uint32_t i = 0; i < h->nsizes && i < RCT_SIZE_HISTORY; i++) {
    put_le32 (b + 152 + 24 * i, h->sizes[i].gen);
    put_le64 (b + 160 + 24 * i, h->sizes[i].min);
    put_le64 (b + 168 + 24 * i, h->sizes[i].last);
  }
  memcpy (b + 2048, h->reason, strnlen (h->reason, sizeof h->reason - 1));
  put_le32 (b + 8, crc32c_skip (b, RCT_HDR_SIZE, 8));
}

/* The format version a header copy claims, or 0 if it is not one. */
uint32_t
rct_header_version (const uint8_t *b)
{
  return memcmp (b, HDR_MAGIC, 8) == 0 ? get_le32 (b + 12) : 0;
}

/* 0 if BUF holds a valid header copy. */
int
rct_decode_header (const uint8_t *b, struct rct_header *h)
{
  if (memcmp (b, HDR_MAGIC, 8) != 0 || get_le32 (b + 12) != RCT_VERSION ||
      get_le32 (b + 8) != crc32c_skip (b, RCT_HDR_SIZE, 8))
    return -1;
  memset (h, 0, sizeof *h);
  h->seq = get_le64 (b + 16);
  memcpy (h->epoch.b, b + 24, 16);
  h->granularity = get_le32 (b + 40);
  h->cur = get_le32 (b + 44);
  h->session_dirty = get_le32 (b + 48);
  h->image_format = get_le32 (b + 52);
  memcpy (h->dwg.b, b + 56, 16);
  memcpy (h->pending_dwg.b, b + 72, 16);
  h->st_dev = get_le64 (b + 88);
  h->st_ino = get_le64 (b + 96);
  h->st_size = get_le64 (b + 104);
  h->st_mtime_ns = get_le64 (b + 112);
  h->st_ctime_ns = get_le64 (b + 120);
  h->max_leaf = get_le64 (b + 128);
  h->max_l1 = get_le64 (b + 136);
  h->nsizes = get_le32 (b + 144);
  if (h->nsizes == 0 || h->nsizes > RCT_SIZE_HISTORY) return -1;
  h->leaves_written = get_le64 (b + 1800);
  h->leaves_span = get_le64 (b + 1808);
  memcpy (h->session.b, b + 1816, 16);
  for (uint32_t i = 0; i < h->nsizes; i++) {
    h->sizes[i].gen = get_le32 (b + 152 + 24 * i);
    h->sizes[i].min = get_le64 (b + 160 + 24 * i);
    h->sizes[i].last = get_le64 (b + 168 + 24 * i);
  }
  memcpy (h->reason, b + 2048, sizeof h->reason - 1);
  h->reason[sizeof h->reason - 1] = '\0';
  /* Values a writer never produces. */
  if (!is_pow2 (h->granularity) || h->granularity < 512 ||
      h->granularity > VHDKIT_RCT_MAX_GRANULARITY ||
      h->cur == 0 || h->cur > RCT_MAX_GEN || guid_is_zero (&h->epoch) ||
      h->max_leaf > rct_leaf_capacity (h->granularity) ||
      h->max_l1 > rct_l1_pages (h->granularity))
    return -1;
  return 0;
}

/* Leaf pages needed for the largest virtual size at GRANULARITY. */
uint64_t
rct_leaf_capacity (uint32_t granularity)
{
  return div_round_up (div_round_up (VHDKIT_MAX_VIRTUAL_SIZE, granularity), RCT_PER_PAGE);
}

uint64_t
rct_l1_pages (uint32_t granularity)
{
  return div_round_up (rct_leaf_capacity (granularity), RCT_L1_PER_PAGE);
}

uint32_t
rct_epoch_tag (const struct guid *e)
{
  return crc32c (0, e->b, 16);
}

/* Pages of IMAGE.mrt belong to one writing session of one epoch. */
uint32_t
rct_session_tag (const struct guid *epoch, const struct guid *session)
{
  return crc32c (crc32c (0, epoch->b, 16), session->b, 16);
}

void
rct_seal_page (uint8_t *p, uint32_t magic, uint64_t index, uint32_t tag)
{
  put_le32 (p + 4080, magic);
  put_le32 (p + 4084, (uint32_t) index);
  put_le32 (p + 4088, tag);
  put_le32 (p + 4092, crc32c (0, p, 4092));
}

/* 1 if the page is all zeros (never written), 0 if valid, -1 if not. */
int
rct_check_page (const uint8_t *p, uint32_t magic, uint64_t index, uint32_t tag)
{
  static const uint8_t zero[RCT_PAGE];
  /* A sealed page has its magic; only a page without it can be empty. */
  if (get_le32 (p + 4080) != magic)
    return memcmp (p, zero, RCT_PAGE) == 0 ? 1 : -1;
  if (get_le32 (p + 4084) != (uint32_t) index ||
      get_le32 (p + 4088) != tag ||
      get_le32 (p + 4092) != crc32c (0, p, 4092))
    return -1;
  return 0;
}

/* The first page of IMAGE.mrt (docs/FORMAT-rct.md, RCT-10). */
#define MRT_MAGIC "VHDKMRT1"

void
rct_encode_mrt_header (uint8_t *p, const struct guid *epoch, const struct guid *session,
                       uint64_t nbitpages)
{
  memset (p, 0, RCT_PAGE);
  memcpy (p, MRT_MAGIC, 8);
  put_le32 (p + 8, 1);
  memcpy (p + 16, epoch->b, 16);
  memcpy (p + 32, session->b, 16);
  put_le64 (p + 48, nbitpages);
  rct_seal_page (p, RCT_MRTH_MAGIC, 0, rct_session_tag (epoch, session));
}

/* 0 if P is the header of the write-ahead map of EPOCH's SESSION, with
 * its number of bit pages in *NBITPAGES; -1 otherwise. */
int
rct_decode_mrt_header (const uint8_t *p, const struct guid *epoch, const struct guid *session,
                       uint64_t *nbitpages)
{
  if (memcmp (p, MRT_MAGIC, 8) != 0 || get_le32 (p + 8) != 1 ||
      rct_check_page (p, RCT_MRTH_MAGIC, 0, rct_session_tag (epoch, session)) != 0 ||
      memcmp (p + 16, epoch->b, 16) != 0 || memcmp (p + 32, session->b, 16) != 0)
    return -1;
  *nbitpages = get_le64 (p + 48);
  return 0;
}

/* Private declarations of change tracking.  The on-disk format and the
 * invariants RCT-n cited in the code are in docs/FORMAT-rct.md. */
#ifndef VHDKIT_RCT_H
#define VHDKIT_RCT_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"
#include "guid.h"

#define RCT_PAGE        4096
#define RCT_PER_PAGE    1020           /* tags per leaf page */
#define RCT_L1_PER_PAGE 340            /* 12-byte summary entries per L1 page */
#define RCT_L1_ENTRY    12
#define RCT_TOP_ZERO    0x8000u        /* summary: the top block's change was a zero */
#define RCT_VERSION     3
#define RCT_HDR_SIZE    4096
#define RCT_L1_OFF      (64 * 1024)
#define MRT_BITS_PER_PAGE (4080 * 8)
#define RCT_ZERO_KIND   0x80000000u    /* tag bit: last change was a zero */
#define RCT_GEN(t)      ((t) & 0x7fffffffu)
#define RCT_MAX_GEN     0x7ffffff0u
#define RCT_SIZE_HISTORY 64

enum rct_state {
  RCT_OK,          /* tracking and trustworthy */
  RCT_INVALID,     /* read-only view of state that cannot be trusted */
  RCT_BUSY,        /* a writer holds the tracking files */
};

/* A generation in which the size changed: the smallest size it passed
 * through, and the size it ended with (its size when sealed). */
struct rct_size { uint32_t gen; uint64_t min, last; };

/* The header (two copies, RCT-1). */
struct rct_header {
  uint64_t seq;
  struct guid epoch;
  uint32_t granularity;
  uint32_t cur;                  /* generation now being written */
  uint32_t session_dirty;        /* a writing session is (or was) open */
  uint32_t image_format;         /* VHDKIT_FORMAT_VHDX or _RAW */
  struct guid dwg, pending_dwg;  /* VHDX DataWriteGuid fingerprint */
  uint64_t st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns;  /* raw */
  uint64_t max_leaf;             /* leaf pages ever written (high water) */
  uint64_t max_l1;               /* L1 pages ever written */
  uint64_t leaves_written;       /* leaf pages with tags, among ... */
  uint64_t leaves_span;          /* ... the first this many (RCT-6) */
  struct guid session;           /* the writing session the .mrt belongs to (RCT-10) */
  uint32_t nsizes;
  struct rct_size sizes[RCT_SIZE_HISTORY];
  char reason[256];              /* why the current epoch began ("" = enabled) */
};

struct rct_leaf {                /* a cached leaf page */
  uint64_t page;                 /* index; UINT64_MAX = empty slot */
  uint32_t *tags;                /* RCT_PER_PAGE */
  bool dirty;
};

struct rct {
  struct vhdkit_disk *d;
  char *path, *mrt_path;
  struct io *io, *mio;
  enum rct_state state;
  char why[512];                 /* for RCT_INVALID/BUSY: the sentence */
  bool writable;
  struct rct_header h;
  int hslot;                     /* slot of the current header copy */
  uint64_t leaf_off;             /* file offset of leaf page 0 */
  uint64_t npages;               /* leaf pages covering the virtual size */
  /* The summary of leaf page p (RCT-9): the newest generation in it,
   * the newest among its other blocks, and which block is the newest. */
  uint32_t *l1;                  /* newest generation per leaf page (npages) */
  uint32_t *l1s;                 /* newest generation except block l1t[p] */
  uint16_t *l1t;                 /* that block (0..1019) | RCT_TOP_ZERO */
  uint32_t *l2;                  /* max of each L1 page's entries */
  uint64_t nl1;                  /* L1 pages covering npages */
  uint8_t *l1_dirty;             /* per L1 page */
  uint8_t *mrt;                  /* MRT bits known durable in IMAGE.mrt (npages) */
  uint64_t nmrt;
  uint8_t *recovered;            /* read-only recovery: page counts as changed at cur */
  uint8_t *touched;              /* pages written since the last flush */
  uint64_t leaves_with_tags;     /* pages p < npages with l1[p] > 0 */
  const uint8_t *map;            /* IMAGE.rct mapped read-only, for queries */
  size_t map_len;
  bool any_recovered;
  struct rct_leaf *cache;        /* open addressing by page */
  size_t cache_cap, cache_count;
  size_t purge_at;               /* next cache size at which clean pages are dropped */
  bool session_marked;           /* this session's map and dirty header are durable (RCT-10) */
  bool hdr_dirty;                /* header fields changed since the last header write */
};

/* rct-format.c */
void rct_encode_header (const struct rct_header *h, uint8_t *buf);
int rct_decode_header (const uint8_t *buf, struct rct_header *h);
uint32_t rct_header_version (const uint8_t *buf);
uint32_t rct_epoch_tag (const struct guid *epoch);
uint32_t rct_session_tag (const struct guid *epoch, const struct guid *session);
void rct_seal_page (uint8_t *page, uint32_t magic, uint64_t index, uint32_t tag);
int rct_check_page (const uint8_t *page, uint32_t magic, uint64_t index, uint32_t tag);
void rct_encode_mrt_header (uint8_t *page, const struct guid *epoch, const struct guid *session,
                            uint64_t nbitpages);
int rct_decode_mrt_header (const uint8_t *page, const struct guid *epoch, const struct guid *session,
                           uint64_t *nbitpages);
uint64_t rct_leaf_capacity (uint32_t granularity);
uint64_t rct_l1_pages (uint32_t granularity);
#define RCT_LEAF_MAGIC 0x50544352u     /* "RCTP" */
#define RCT_L1_MAGIC   0x53544352u     /* "RCTS" */
#define RCT_MRT_MAGIC  0x4254524du     /* "MRTB" */
#define RCT_MRTH_MAGIC 0x4854524du     /* "MRTH" */

/* rct.c, for query.c */
int rct_load_leaf (struct rct *r, uint64_t page, uint32_t *tags);   /* 1: substituted */
uint64_t rct_min_size_since (const struct rct *r, uint32_t gen);
int rct_parse_id (const char *id, struct guid *epoch, uint32_t *gen);
void rct_format_id (const struct guid *epoch, uint32_t gen, char *out);

#endif

/* Private declarations of change tracking.  The on-disk format and the
 * invariants RCT-n cited in the code are in docs/FORMAT-rct.md. */
#ifndef VHDKIT_RCT_H
#define VHDKIT_RCT_H

#include <stdbool.h>
#include <stdint.h>

#include "chain.h"
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
  RCT_FAILED,      /* a change of the files failed half way: writes are
                      refused until the image is opened again */
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

/* A leaf page in memory (writers only).  Under its stripe lock (L-9). */
struct rct_page {
  uint32_t tags[RCT_PAGE / 4];   /* RCT_PER_PAGE tags, and room for the
                                    trailer: a page is read in place */
  uint32_t version;              /* bumped by every change */
  bool dirty;                    /* changed since last durable */
};

#define RCT_STRIPES 64           /* locks over the leaf pages (L-9) */

/* The tracking of one open image.
 *
 * Locking (docs/ARCHITECTURE.md):
 *  - L-8 lock: the header (but cur, see below), the session, flushes
 *    (held across the .rct writes and syncs of a flush), reference points.
 *  - L-9 stripe[p % RCT_STRIPES]: leaf page p in memory (dir[p], its
 *    tags, dirty, version) and its summary (l1, l1s, l1t).  Held for
 *    memory work only.
 *  - L-10 mrt_lock: writing the write-ahead map; held across its write
 *    and sync, by one writer at a time, who writes every bit requested
 *    so far (group commit).  Bits known durable (mrt) are read without
 *    it; requests are or'ed into want without it.
 *  - cur (the generation now written), inflight, touch, l2, l1_dirty and
 *    leaves_with_tags are atomics.
 *  - Everything sized by the disk (the arrays, npages) changes only when
 *    the disk layer's gate is closed (resize, new epoch: L-2).
 * Lock order: vhdx commit (L-5), then lock (L-8), then mrt_lock (L-10),
 * then a stripe (L-9).
 */
struct rct {
  struct image *img;             /* the tracked image */
  const char *image_path;        /* img's */
  char *path, *mrt_path;
  struct io *io, *mio;
  enum rct_state state;
  char why[512];                 /* for RCT_INVALID/BUSY/FAILED: the sentence */
  bool writable;
  uint32_t lss;

  pthread_mutex_t lock;          /* L-8 */
  struct rct_header h;           /* under lock; h.cur mirrors cur */
  uint32_t cur;                  /* atomic: the generation now written */
  int hslot;                     /* slot of the current header copy */
  bool session_marked;           /* this session's map and dirty header are durable (RCT-10) */
  bool hdr_dirty;                /* header fields changed since the last header write */
  uint32_t flush_seq;            /* atomic: flushes begun */

  uint64_t leaf_off;             /* file offset of leaf page 0 */
  uint64_t npages;               /* leaf pages covering the virtual size */
  uint64_t nl1;                  /* L1 pages covering npages */
  uint64_t nmrt;                 /* bit pages of the map */
  /* The summary of leaf page p (RCT-9), writers only: the newest
   * generation in it, the newest among its other blocks, and which block
   * is the newest. */
  uint32_t *l1;                  /* newest generation per leaf page (npages) */
  uint32_t *l1s;                 /* newest generation except block l1t[p] */
  uint16_t *l1t;                 /* that block (0..1019) | RCT_TOP_ZERO */
  uint8_t *l1_dirty;             /* atomic, per L1 page */
  uint32_t *l2;                  /* atomic max of each L1 page's entries */
  uint64_t leaves_with_tags;     /* atomic: pages p < npages whose newest > 0 */

  /* Writers only. */
  pthread_mutex_t stripe[RCT_STRIPES];   /* L-9 */
  struct rct_page **dir;         /* per leaf page, NULL if not in memory */
  size_t npages_loaded;          /* atomic */
  uint32_t *inflight;            /* atomic: writes between begin and end (L-11) */
  uint32_t *touch;               /* atomic max: flush_seq at their end (L-11) */
  pthread_mutex_t dirty_lock;    /* L-9: the list of dirty leaf pages */
  uint64_t *dirty_list;
  size_t ndirty_list, dirty_cap;
  uint32_t ck_active;            /* atomic: reference points in progress (L-11) */
  pthread_mutex_t carry_lock;    /* L-11: writes that ended during one, */
  struct rct_op *carry;          /* still pinned, to tag at the seal */
  size_t ncarry, carry_cap;
  pthread_mutex_t mrt_lock;      /* L-10 */
  uint8_t *mrt;                  /* atomic bytes: bits known durable in IMAGE.mrt */
  uint8_t *mrt_want;             /* atomic bytes: bits requested */

  /* Readers only.  A read-only view keeps no summaries in memory: a
   * query reads the L1 pages its window needs (struct rct_l1_cursor)
   * and checks each one it reads.  The count of pages with tags (RCT-6)
   * and l2 come from one pass over every L1 page, made by the first call
   * that needs them (rct_ready: status, or a query that had to rebuild
   * an L1 page) under the tracking lock (L-8); checked is then set
   * (release), and state may have become RCT_INVALID (release, read
   * with acquire by queries). */
  uint8_t *recovered;            /* read-only recovery: page counts as changed at cur */
  bool any_recovered;
  bool l1_due;                   /* the files passed the checks made before the pass */
  bool checked;                  /* atomic: the pass is done (l2 is final) */
};

/* The summaries of the leaf pages of one L1 page (RCT-9), decoded from
 * a checked page or rebuilt from its leaves. */
struct rct_sums {
  uint32_t max[RCT_L1_PER_PAGE];
  uint32_t second[RCT_L1_PER_PAGE];
  uint16_t top[RCT_L1_PER_PAGE];
};

/* Reads L1 pages in file order, RCT_L1_BATCH at a time, skipping holes
 * of the file (which read as zeros); one per thread and pass. */
#define RCT_L1_BATCH 16
struct rct_l1_cursor {
  uint8_t *buf;                  /* RCT_L1_BATCH pages from page first */
  uint64_t first, count;
  bool zeros;                    /* the batch lies in a hole: not read */
  uint64_t probe, data, hole;    /* the file's first data extent [data, hole) at or after probe */
  uint64_t j;                    /* the page in sums; UINT64_MAX: none */
  uint32_t newest;               /* the largest of sums.max */
  bool rebuilt;                  /* a page read was (partly) rebuilt from its leaves */
  struct rct_sums sums;
};

/* What one write, zero or discard recorded (rct_write_begin .. _end). */
struct rct_op {
  uint64_t b0, b1;               /* blocks [b0, b1) */
  uint64_t p0, p1;               /* leaf pages [p0, p1] */
  uint64_t z0, z1;               /* blocks wholly zeroed [z0, z1) */
  uint32_t gen;                  /* the generation tagged at begin */
  bool active;
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

/* rct.c, for query.c and track.c */
/* Leaf page P from the file into TAGS (RCT_PAGE bytes: the page is
 * read there and its RCT_PER_PAGE tags decoded in place); NEWEST is what
 * its summary says (an all-zero page is lost if that is not 0).
 * 1: substituted. */
int rct_load_leaf (struct rct *r, uint64_t page, uint32_t newest, uint32_t *tags);
/* The summaries of L1 page J into C->sums (read and checked, rebuilt
 * from the leaves if damaged, RCT-6); 0 or -1. */
int rct_l1_read (struct rct *r, struct rct_l1_cursor *c, uint64_t j);
int rct_l1_cursor_init (struct rct *r, struct rct_l1_cursor *c);
void rct_l1_cursor_free (struct rct_l1_cursor *c);
/* The summary of leaf page P (< npages) computed from all its tags. */
void rct_summarize (const uint32_t *tags, uint32_t *max, uint32_t *second, uint16_t *top);
/* A read-only view: the pass over every L1 page done (RCT-6), so l2
 * and the count of pages with tags are known, and the state says
 * whether pages were lost.  Status calls it first; a query when it had
 * to rebuild an L1 page.  0, or -1 on a read error. */
int rct_ready (struct rct *r);
uint64_t rct_min_size_since (const struct rct *r, uint32_t gen);
int rct_parse_id (const char *id, struct guid *epoch, uint32_t *gen);
void rct_format_id (const struct guid *epoch, uint32_t gen, char *out);
int rct_write_header (struct rct *r);
void rct_sum_from_tags (struct rct *r, uint64_t p, const uint32_t *tags);
int rct_state_error (struct rct *r);
/* Size the arrays for a disk of SIZE (growing keeps what is there). */
int rct_size_arrays (struct rct *r, uint64_t size);
void rct_free_arrays (struct rct *r);
/* track.c, for rct.c: flush with the lock held (ALL: clear every bit of
 * the map, at a clean close); write the session's map. */
int rct_flush_locked (struct rct *r, bool all);
/* Begin the writing session if it has not begun (RCT-10); L-8 held. */
int rct_session_begin_locked (struct rct *r);
int rct_mrt_put_session (struct rct *r, uint64_t from);
int rct_recover_page (struct rct *r, uint64_t p);
/* For queries on a writer's state: page P's tags (memory first; TAGS
 * and NEWEST as for rct_load_leaf), and its summary. */
int rct_page_tags (struct rct *r, uint64_t p, uint32_t newest, uint32_t *tags);
void rct_page_summary (struct rct *r, uint64_t p, uint32_t *max, uint32_t *second, uint16_t *top);
/* The MRT bit of leaf page P as known durable / set it in memory. */
bool rct_mrt_get (const struct rct *r, uint64_t p);
void rct_mrt_set (struct rct *r, uint64_t p);

/* ---- the interface of the layer (for the disk layer, disk.c) ---- */

/* Load IMAGE.rct of IMG if it exists (*OUT = NULL when tracking is
 * off).  A writer recovers after an unclean close. */
int rct_attach (struct image *img, bool writable, struct rct **out);
/* Flush and release (clean close): -1 if the state could not be made
 * durable (released either way). */
int rct_detach (struct rct *r);
/* Release on a failure path (the error stays). */
void rct_abandon (struct rct *r);
/* Start tracking IMG (opened read-write): *OUT gets the attached state. */
int rct_enable (struct image *img, uint32_t granularity, struct rct **out);
/* Stop tracking: release R (may be NULL) and delete IMAGE's files. */
int rct_disable (struct rct *r, const char *image_path);

/* The write path (track.c, RCT-2, L-11): before a write, zero or
 * discard of [OFF, OFF+LEN) reaches the image, and after it ended
 * (whatever its result).  ZERO: the range reads as zeros afterwards. */
int rct_write_begin (struct rct *r, uint64_t off, uint64_t len, bool zero, struct rct_op *op);
void rct_write_end (struct rct *r, struct rct_op *op);
/* After the image was flushed: make tracking state durable (RCT-3). */
int rct_flush (struct rct *r);
/* A reference point: rct_checkpoint_begin first of all (a write that
 * ends from then on is reported since the new ID, L-11), then seal the
 * current generation (*SEALED); the caller flushes the image, rct_flush
 * makes the new generation durable, and rct_checkpoint_end ends it,
 * whatever happened. */
void rct_checkpoint_begin (struct rct *r);
int rct_seal (struct rct *r, uint32_t *sealed);
void rct_checkpoint_end (struct rct *r);
/* True when the generation counter is exhausted: the next reference
 * point needs a new epoch, with the gate closed (rct_new_epoch). */
bool rct_needs_new_epoch (struct rct *r);
int rct_new_epoch (struct rct *r, const char *why);
/* The image is about to take a new DataWriteGuid (VHDX), INV-4: the
 * driver hook. */
int rct_before_data_write_guid (struct rct *r, const uint8_t guid[16]);
/* Before the image is resized (RCT-8), and after; gate closed. */
int rct_resize_prepare (struct rct *r, uint64_t old_size, uint64_t new_size);
int rct_resized (struct rct *r, uint64_t new_size);
/* Status, for vhdkit_rct_status. */
int rct_get_status (struct rct *r, struct vhdkit_rct_status *st);
/* GetVirtualDiskChanges (query.c). */
int rct_query (struct rct *r, const char *image_path, uint64_t size, uint32_t lss,
               const char *limit_id, uint64_t off, uint64_t len,
               size_t max_ranges, struct vhdkit_changes *c);
/* The epoch and the generation now written (sets: records). */
void rct_current (struct rct *r, struct guid *epoch, uint32_t *cur, uint32_t *granularity);
/* VHD Sets: the tracking of SRC_IMAGE, closed cleanly, copied to
 * DST_IMAGE whose DataWriteGuid is DWG. */
int rct_clone_files (const char *src_image, const char *dst_image, const uint8_t dwg[16]);

#endif

/* Private declarations of the VHDX driver (MS-VHDX).  Section numbers
 * in comments refer to MS-VHDX v8.0; "VX-n" to the crash-safety
 * invariants in docs/CRASH-SAFETY.md. */
#ifndef VHDKIT_VHDX_H
#define VHDKIT_VHDX_H

#include <stdbool.h>
#include <stdint.h>

#include "driver.h"
#include "guid.h"

/* 2.1 layout of the header section. */
#define VHDX_FILE_ID_OFF   0
#define VHDX_HEADER1_OFF   (64 * KiB)
#define VHDX_HEADER2_OFF   (128 * KiB)
#define VHDX_REGION1_OFF   (192 * KiB)
#define VHDX_REGION2_OFF   (256 * KiB)
#define VHDX_HEADER_SIZE   4096
#define VHDX_REGION_SIZE   (64 * KiB)
#define VHDX_META_TABLE_SIZE (64 * KiB)
#define VHDX_SECTOR        4096      /* log and metadata update unit */
#define VHDX_SB_BLOCK_SIZE MiB       /* 2.4 sector bitmap block */
#define VHDX_CHUNK_SECTORS (UINT64_C(1) << 23)

/* 2.5.1 BAT entry states. */
#define PAYLOAD_BLOCK_NOT_PRESENT       0
#define PAYLOAD_BLOCK_UNDEFINED         1
#define PAYLOAD_BLOCK_ZERO              2
#define PAYLOAD_BLOCK_UNMAPPED          3
#define PAYLOAD_BLOCK_UNMAPPED_V095     5   /* written by pre-1.0 writers */
#define PAYLOAD_BLOCK_FULLY_PRESENT     6
#define PAYLOAD_BLOCK_PARTIALLY_PRESENT 7
#define SB_BLOCK_NOT_PRESENT            0
#define SB_BLOCK_PRESENT                6

#define BAT_STATE(e)   ((unsigned) ((e) & 7))
#define BAT_OFFSET(e)  (((e) >> 20) << 20)        /* FileOffsetMB in bytes */
#define BAT_RESERVED(e) (((e) >> 3) & 0x1ffff)
#define BAT_ENTRY(state, off) ((uint64_t) (state) | ((off) & ~(MiB - 1)))

/* 2.2.2 header, decoded. */
struct vhdx_header {
  uint64_t seq;
  struct guid file_write, data_write, log_guid;
  uint16_t log_version, version;
  uint32_t log_length;
  uint64_t log_offset;
};

/* A range written by an in-memory log replay (read-only opens). */
struct overlay {
  uint64_t off, len;
  uint8_t *data;            /* NULL: zeros */
};

/* A cached 4 KiB metadata sector (sector bitmaps, metadata region,
 * region tables) that may be dirty: changed in memory, not yet written
 * through the log. */
struct msector {
  uint64_t off;             /* file offset, 4 KiB aligned; 0 = empty slot */
  uint8_t *buf;
  bool dirty;
};

/* A pending allocation: block IDX is being given space; writers of the
 * same block wait on alloc_cv until it is published (L-3). */
struct alloc_pending { uint64_t idx; };

/* One open VHDX file (a driver instance).
 *
 * Locking (docs/ARCHITECTURE.md):
 *  - L-3 meta: BAT entry changes, bat_state dirty bits, the metadata
 *    sector cache, ndirty/nreserved, pending allocations, file_end and
 *    file_size.  Held for memory work only (and the ftruncate that
 *    extends the file), never across data I/O or a sync.
 *  - L-5 commit: one commit (or header update, or flush) at a time; held
 *    across the log write and its syncs.  Taken before meta, never while
 *    holding it.
 *  - The data path reads BAT entries and bat_state's loaded bit without
 *    a lock (acquire loads; stored with release under meta).
 *  - Immutable after open: everything above "mutable" below.
 */
struct vhdx {
  const char *path;         /* the chain layer's, outlives us */
  struct io *io;
  bool writable;
  const struct drv_hooks *hooks;
  struct drv_next next;     /* the parent chain (opaque NULL: none) */
  uint32_t lss, pss;

  uint64_t bat_off, meta_off;
  uint32_t bat_len, meta_len;
  uint64_t log_off;         /* the log region (from the header at open; */
  uint32_t log_len;         /* vhdkit never moves it) */

  /* 2.6.2 metadata. */
  uint32_t block_size;
  bool leave_allocated, has_parent;
  struct guid disk_id;
  uint64_t size_item_off;   /* file offset of the Virtual Disk Size item */
  char *loc_relative, *loc_volume, *loc_absolute;

  struct overlay *ov;       /* in-memory log replay (read-only opens) */
  size_t nov;

  pthread_mutex_t meta;     /* L-3 */
  pthread_mutex_t commit;   /* L-5 */
  pthread_cond_t alloc_cv;  /* with meta: a pending allocation ended */

  /* ---- mutable ---- */
  uint64_t size;            /* virtual size: changes only in resize (L-2) */
  struct guid linkage, linkage2;   /* under commit */
  bool has_linkage, has_linkage2;

  /* Headers: under commit. */
  struct vhdx_header hdr[2];
  bool hdr_ok[2];
  int cur;                  /* index of the current header */

  /* 2.5 BAT: entries cached in memory, loaded one 4 KiB sector (512
   * entries) at a time.  Entries and bit 0 of bat_state: lock-free
   * reads, written under meta. */
  uint64_t chunk_ratio, data_blocks, bat_entries;
  uint64_t *bat;
  uint8_t *bat_state;       /* per BAT sector: bit 0 loaded, bit 1 dirty */
  uint64_t bat_sectors;
  uint8_t *bat_tail;        /* under meta: the last BAT sector as read, if */
  uint64_t bat_tail_sec;    /* it is partly past the last entry */

  struct msector *ms;       /* under meta: open-addressing hash of metadata sectors */
  size_t ms_cap, ms_count;
  size_t ndirty;            /* under meta: dirty BAT + metadata sectors */
  size_t nreserved;         /* under meta: sectors allocations in flight will dirty */
  struct alloc_pending *pend;   /* under meta */
  size_t npend, pend_cap;

  uint64_t file_size;       /* under meta (lock-free loads): size of the file */
  uint64_t file_end;        /* under meta: allocation point, 1 MiB aligned */
  uint64_t allocated_blocks;

  /* Session state for writers (docs/CRASH-SAFETY.md), under commit;
   * the flags are also loaded lock-free on the write path. */
  bool session_started;     /* FileWriteGuid renewed (2.2.2.1) */
  bool data_guid_renewed;   /* DataWriteGuid renewed */
  bool have_next_dw;        /* merge: the DataWriteGuid to take next */
  struct guid next_dw;
  bool poisoned;            /* a metadata write failed: refuse writes (VX-5) */
  struct guid session_log_guid;  /* LogGuid of this session's entries */
  uint64_t log_seq;
  int log_half;             /* entries alternate between the log's halves */
};

/* format.c: on-disk structures. */
int vhdx_read_headers (struct vhdx *s);
void vhdx_encode_header (const struct vhdx_header *h, uint8_t *buf);
int vhdx_write_header (struct vhdx *s, const struct guid *new_data_write,
                       const struct guid *new_log_guid, int times);
int vhdx_read_regions (struct vhdx *s);
int vhdx_read_metadata (struct vhdx *s);
void vhdx_compute_geometry (uint64_t size, uint32_t block_size, uint32_t lss,
                            bool differencing, uint64_t *chunk_ratio,
                            uint64_t *data_blocks, uint64_t *bat_entries);

/* log.c: 2.3 */
int vhdx_log_replay (struct vhdx *s, bool in_memory, bool *replayed);
/* One entry; FLUSHED and LAST are the file offsets the entry records
 * (2.3.1.1).  Commit lock held. */
int vhdx_log_write (struct vhdx *s, uint64_t *offs, uint8_t **bufs, size_t n,
                    uint64_t flushed, uint64_t last);

/* Reads of metadata see the in-memory replay. */
int vhdx_meta_pread (struct vhdx *s, void *buf, size_t n, uint64_t off);

/* bat.c */
/* The BAT entry IDX (lock-free; loads its sector if needed). */
int vhdx_bat_get (struct vhdx *s, uint64_t idx, uint64_t *entry);
/* Change entry IDX; meta held, its sector loaded (vhdx_bat_get first). */
void vhdx_bat_set_locked (struct vhdx *s, uint64_t idx, uint64_t entry);
/* The cached metadata sector at OFF; meta held.  Returns 1 and sets
 * *BUF, or 0 if the sector is not cached (drop meta, vhdx_ms_load,
 * retry), or -1. */
int vhdx_ms_lookup_locked (struct vhdx *s, uint64_t off, uint8_t **buf);
/* Load the metadata sector at OFF into the cache (meta not held). */
int vhdx_ms_load (struct vhdx *s, uint64_t off);
/* The same in a single-threaded context (open, resize): meta not held,
 * loads on a miss. */
int vhdx_ms_get (struct vhdx *s, uint64_t off, uint8_t **buf);
void vhdx_ms_mark_dirty_locked (struct vhdx *s, uint64_t off);
/* Wait (meta held) until there is room for COUNT more dirty sectors in
 * the next log entry, committing if needed; meta is dropped and taken
 * again meanwhile, so the caller rechecks what it read. */
int vhdx_room_locked (struct vhdx *s, size_t count);
int vhdx_commit (struct vhdx *s);
/* Flush: commit, or sync the data; the commit lock is taken. */
int vhdx_flush_all (struct vhdx *s);
int vhdx_begin_write (struct vhdx *s, bool data_change);
bool vhdx_poisoned (struct vhdx *s);
int vhdx_poisoned_error (struct vhdx *s);
void vhdx_free_caches (struct vhdx *s);
static inline uint64_t payload_index (const struct vhdx *s, uint64_t block)
{ return block + block / s->chunk_ratio; }
static inline uint64_t sb_index (const struct vhdx *s, uint64_t chunk)
{ return chunk * (s->chunk_ratio + 1) + s->chunk_ratio; }

/* The parent locator's keys and known GUIDs. */
extern const struct guid VHDX_BAT_GUID, VHDX_META_GUID,
  VHDX_FILE_PARAMS_GUID, VHDX_DISK_SIZE_GUID, VHDX_DISK_ID_GUID,
  VHDX_LSS_GUID, VHDX_PSS_GUID, VHDX_PARENT_LOC_GUID, VHDX_LOCATOR_TYPE_GUID;

/* vhdx.c, for check.c: open (read-only, no parent) and close. */
int vhdx_open_inst (const struct drv_open_args *a, struct vhdx **out, struct drv_geometry *g);
int vhdx_close_inst (struct vhdx *s);
/* create.c, check.c */
int vhdx_create (const char *path, const struct vhdkit_create_params *p,
                 const struct drv_create_parent *parent);
int vhdx_check (const char *path, vhdkit_report_fn report, void *opaque);

#endif

/* Private declarations of the VHDX driver (MS-VHDX).  Section numbers
 * in comments refer to MS-VHDX v8.0; "VX-n" to the crash-safety
 * invariants in docs/CRASH-SAFETY.md. */
#ifndef VHDKIT_VHDX_H
#define VHDKIT_VHDX_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"
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

struct vhdx {
  struct vhdkit_disk *d;
  struct io *io;

  struct vhdx_header hdr[2];
  bool hdr_ok[2];
  int cur;                  /* index of the current header */

  uint64_t bat_off, meta_off;
  uint32_t bat_len, meta_len;

  /* 2.6.2 metadata. */
  uint32_t block_size;
  bool leave_allocated, has_parent;
  struct guid disk_id;
  uint64_t size_item_off;   /* file offset of the Virtual Disk Size item */
  struct guid linkage, linkage2;
  bool has_linkage, has_linkage2;
  char *loc_relative, *loc_volume, *loc_absolute;

  /* 2.5 BAT: entries cached in memory, loaded one 4 KiB sector (512
   * entries) at a time. */
  uint64_t chunk_ratio, data_blocks, bat_entries;
  uint64_t *bat;
  uint8_t *bat_state;       /* per BAT sector: bit 0 loaded, bit 1 dirty */
  uint64_t bat_sectors;

  struct msector *ms;       /* open-addressing hash of metadata sectors */
  size_t ms_cap, ms_count;
  size_t ndirty;            /* dirty BAT sectors + dirty metadata sectors */

  uint64_t file_size;       /* current size of the file */
  uint64_t file_end;        /* allocation point: file_size rounded to 1 MiB */

  struct overlay *ov;       /* in-memory log replay */
  size_t nov;

  /* Session state for writers (docs/CRASH-SAFETY.md). */
  bool session_started;     /* FileWriteGuid renewed (2.2.2.1) */
  bool data_guid_renewed;   /* DataWriteGuid renewed */
  bool have_next_dw;        /* merge: the DataWriteGuid to take next */
  struct guid next_dw;
  bool poisoned;            /* a metadata write failed: refuse writes */
  struct guid session_log_guid;  /* LogGuid of this session's entries */
  uint64_t log_seq;
  int log_half;             /* entries alternate between the log's halves */
  uint64_t allocated_blocks;
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
int vhdx_log_write (struct vhdx *s, uint64_t *offs, uint8_t **bufs, size_t n);

/* Reads of metadata see the in-memory replay. */
int vhdx_meta_pread (struct vhdx *s, void *buf, size_t n, uint64_t off);

/* bat.c */
int vhdx_bat_get (struct vhdx *s, uint64_t idx, uint64_t *entry);
int vhdx_bat_set (struct vhdx *s, uint64_t idx, uint64_t entry);
int vhdx_ms_get (struct vhdx *s, uint64_t off, uint8_t **buf);
int vhdx_ms_mark_dirty (struct vhdx *s, uint64_t off);
int vhdx_commit (struct vhdx *s);
int vhdx_begin_write (struct vhdx *s, bool data_change);
int vhdx_make_room (struct vhdx *s);
void vhdx_free_caches (struct vhdx *s);
static inline uint64_t payload_index (const struct vhdx *s, uint64_t block)
{ return block + block / s->chunk_ratio; }
static inline uint64_t sb_index (const struct vhdx *s, uint64_t chunk)
{ return chunk * (s->chunk_ratio + 1) + s->chunk_ratio; }

/* The parent locator's keys and known GUIDs. */
extern const struct guid VHDX_BAT_GUID, VHDX_META_GUID,
  VHDX_FILE_PARAMS_GUID, VHDX_DISK_SIZE_GUID, VHDX_DISK_ID_GUID,
  VHDX_LSS_GUID, VHDX_PSS_GUID, VHDX_PARENT_LOC_GUID, VHDX_LOCATOR_TYPE_GUID;

/* Merge support (VX-8): record LINK as the child's parent_linkage2 (and
 * the parent's current DataWriteGuid as parent_linkage), durably; and
 * make a parent take DW as its next DataWriteGuid. */
int vhdx_set_linkage2 (struct vhdkit_disk *child, const struct guid *link);
/* The same with both linkages given (after a merge: both the parent's
 * new DataWriteGuid, so readers that check only parent_linkage agree). */
int vhdx_set_linkages (struct vhdkit_disk *child, const struct guid *link1,
                       const struct guid *link2);
int vhdx_preset_data_write_guid (struct vhdkit_disk *d, const struct guid *dw);
int vhdx_take_data_write_guid (struct vhdkit_disk *d);

/* vhdx.c, for check.c */
int vhdx_open_io (struct vhdkit_disk *d, struct io *io, const uint64_t *chain_ids,
                  struct vhdx **out);

#endif

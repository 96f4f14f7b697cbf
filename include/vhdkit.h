/* vhdkit — virtual disks with resilient change tracking.
 *
 * This is the only public header of libvhdkit.  Everything a program may
 * rely on is declared here; everything else is private to the library.
 *
 * Conventions (the same for every call):
 *  - Calls return 0 (or a non-NULL pointer) on success and -1 (or NULL) on
 *    failure.  On failure the cause is kept in thread-local state:
 *    vhdkit_get_error() is a sentence naming the file and the cause,
 *    vhdkit_get_errno() the underlying errno (0 if none), and
 *    vhdkit_get_error_code() the Msvm_ImageManagementService return code
 *    (VHDKIT_RC_*) that the service reports for it.
 *  - The library never prints and never exits.
 *  - A struct vhdkit_disk may be used from many threads at once, and
 *    calls on it run concurrently: reads and writes of allocated data
 *    take no lock across their I/O (docs/ARCHITECTURE.md gives the
 *    locking rules).  A call's effect on the disk is atomic per logical
 *    sector: a read racing with writes of the same sector returns, per
 *    sector, the old content or one of the writes.
 *  - Callbacks (extent maps, progress) are called in the calling thread
 *    with no library lock held; they may call the library, also on the
 *    same handle.
 *  - vhdkit_disk_close waits for calls in progress on the handle; a
 *    call that starts while close runs fails with VHDKIT_RC_NOT_AVAILABLE;
 *    a call after close has returned is a use after free.
 *  - Structs the caller passes in or gets filled begin with
 *    `uint32_t struct_size`: set it to sizeof the struct (the *_INIT
 *    macros do), so that a program built against this header keeps
 *    working with a later library whose structs have grown.
 *  - Offsets and lengths are in bytes and must be multiples of the disk's
 *    logical sector size unless a call says otherwise.
 */
#ifndef VHDKIT_H
#define VHDKIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VHDKIT_VERSION_MAJOR 0
#define VHDKIT_VERSION_MINOR 2
#define VHDKIT_VERSION_MICRO 0
#define VHDKIT_VERSION_STRING "0.2.0"

/* The version of the library actually loaded, "MAJOR.MINOR.MICRO"
 * (may be newer than VHDKIT_VERSION_STRING, the header's). */
const char *vhdkit_get_version (void);

/* ---- Return codes (Msvm_ImageManagementService method results) ---- */
#define VHDKIT_RC_OK                 0u
#define VHDKIT_RC_JOB_STARTED     4096u
#define VHDKIT_RC_FAILED         32768u
#define VHDKIT_RC_ACCESS_DENIED  32769u
#define VHDKIT_RC_NOT_SUPPORTED  32770u
#define VHDKIT_RC_STATUS_UNKNOWN 32771u
#define VHDKIT_RC_TIMEOUT        32772u
#define VHDKIT_RC_INVALID_PARAMETER 32773u
#define VHDKIT_RC_IN_USE         32774u
#define VHDKIT_RC_INVALID_STATE  32775u
#define VHDKIT_RC_INCORRECT_TYPE 32776u
#define VHDKIT_RC_NOT_AVAILABLE  32777u
#define VHDKIT_RC_OUT_OF_MEMORY  32778u
#define VHDKIT_RC_FILE_NOT_FOUND 32779u

/* The last error of the calling thread. */
const char *vhdkit_get_error (void);
int vhdkit_get_errno (void);
uint32_t vhdkit_get_error_code (void);

/* The documented name of a return code ("Invalid parameter"), or NULL. */
const char *vhdkit_rc_name (uint32_t rc);

/* ---- Formats and types (values of Msvm_VirtualHardDiskSettingData) ---- */
#define VHDKIT_FORMAT_UNKNOWN 0
#define VHDKIT_FORMAT_VHD     2   /* recognised, refused: not supported yet */
#define VHDKIT_FORMAT_VHDX    3
#define VHDKIT_FORMAT_VHDSET  4
#define VHDKIT_FORMAT_RAW     32768 /* vendor value: a flat image file */

#define VHDKIT_TYPE_UNKNOWN      0
#define VHDKIT_TYPE_FIXED        2
#define VHDKIT_TYPE_DYNAMIC      3
#define VHDKIT_TYPE_DIFFERENCING 4

/* Limits of the VHDX format (MS-VHDX 2.6.2). */
#define VHDKIT_MAX_VIRTUAL_SIZE (UINT64_C(64) << 40)
#define VHDKIT_MIN_BLOCK_SIZE   (UINT32_C(1) << 20)
#define VHDKIT_MAX_BLOCK_SIZE   (UINT32_C(256) << 20)
#define VHDKIT_DEFAULT_BLOCK_SIZE (UINT32_C(32) << 20)
#define VHDKIT_DEFAULT_DIFF_BLOCK_SIZE (UINT32_C(2) << 20)

/* Called during long operations.  Return non-zero to cancel; the operation
 * then fails with VHDKIT_RC_FAILED and ECANCELED, leaving the files in a
 * consistent state. */
typedef int (*vhdkit_progress_fn) (void *opaque, uint64_t done, uint64_t total);

/* ---- Creating images ---- */
struct vhdkit_create_params {
  uint32_t struct_size;          /* sizeof (struct vhdkit_create_params) */
  int format;                    /* VHDKIT_FORMAT_VHDX or _RAW; 0 = from the
                                    path's extension (.vhdx/.avhdx, else raw) */
  int type;                      /* VHDKIT_TYPE_*; 0 = dynamic, or
                                    differencing when parent is set */
  uint64_t size;                 /* virtual size; 0 with a parent = parent's */
  uint32_t block_size;           /* 0 = 32 MiB (2 MiB for differencing) */
  uint32_t logical_sector_size;  /* 0 = 512; 512 or 4096 */
  uint32_t physical_sector_size; /* 0 = 4096; 512 or 4096 */
  const char *parent;            /* differencing: the parent's path */
  vhdkit_progress_fn progress;   /* fixed images are written in full */
  void *progress_opaque;
  bool existing;                 /* convert: write into DST, which exists
                                    and is at least as large as SRC (its
                                    tracking records every change) */
};

#define VHDKIT_CREATE_PARAMS_INIT { .struct_size = sizeof (struct vhdkit_create_params) }

/* Create a new image.  Fails with VHDKIT_RC_INVALID_PARAMETER if the path
 * already exists.  A differencing child records the parent's DataWriteGuid
 * and a relative path to it (MS-VHDX 2.6.2.6.3). */
int vhdkit_disk_create (const char *path, const struct vhdkit_create_params *p);

/* ---- Opening images ---- */
#define VHDKIT_OPEN_RDONLY    0u
#define VHDKIT_OPEN_RDWR      1u
#define VHDKIT_OPEN_NO_PARENT 2u   /* do not open the parent chain: reads of
                                      sectors that live in a parent fail */
#define VHDKIT_OPEN_RAW       4u   /* treat the file as a raw image */

struct vhdkit_disk;

/* Open an image.  VHDX logs are replayed before any other I/O (in memory
 * when read-only).  A read-write open takes an exclusive lock on the file;
 * a second writer gets VHDKIT_RC_IN_USE. */
struct vhdkit_disk *vhdkit_disk_open (const char *path, unsigned flags);

/* Flush and close.  Returns -1 if data could not be made durable; the
 * handle is freed either way. */
int vhdkit_disk_close (struct vhdkit_disk *d);

/* Flags of the I/O calls (0 = none).  A call given a flag it does not
 * take fails with VHDKIT_RC_INVALID_PARAMETER. */
#define VHDKIT_IO_FUA       1u   /* pwrite, zero: durable (data, metadata and
                                    tracking) when the call returns */
#define VHDKIT_IO_NO_HOLE   2u   /* zero: leave the range allocated (write
                                    zeros) instead of releasing it */
#define VHDKIT_IO_FAST_ZERO 4u   /* zero: fail with VHDKIT_RC_NOT_SUPPORTED
                                    (errno ENOTSUP), changing nothing, if any
                                    part would need zeros written */

/* FLAGS: 0 (reads take none). */
int vhdkit_disk_pread (struct vhdkit_disk *d, void *buf, size_t count,
                       uint64_t offset, unsigned flags);
/* FLAGS: VHDKIT_IO_FUA. */
int vhdkit_disk_pwrite (struct vhdkit_disk *d, const void *buf, size_t count,
                        uint64_t offset, unsigned flags);
/* Make the range read as zeros.  Whole blocks are released to the ZERO
 * state where the format allows it (unless VHDKIT_IO_NO_HOLE); partial
 * blocks are written.  FLAGS: VHDKIT_IO_FUA, _NO_HOLE, _FAST_ZERO. */
int vhdkit_disk_zero (struct vhdkit_disk *d, uint64_t count, uint64_t offset,
                      unsigned flags);
/* Discard (unmap) a range.  Afterwards the range reads as zeros, as
 * after vhdkit_disk_zero, but the space is given up the way the format
 * says an unmap does: whole blocks of a dynamic VHDX become UNMAPPED
 * (zero gives the ZERO state), raw images get holes punched where the
 * file system can; the rest is zeroed.  Tracking counts the range as
 * changed (to zeros).  FLAGS: VHDKIT_IO_FUA. */
int vhdkit_disk_discard (struct vhdkit_disk *d, uint64_t count,
                         uint64_t offset, unsigned flags);
/* A barrier: every write, zero and discard that completed before the
 * call started is durable when it returns (data, then metadata via the
 * log, then tracking). */
int vhdkit_disk_flush (struct vhdkit_disk *d);

/* What Msvm_VirtualHardDiskSettingData and Msvm_VirtualHardDiskState say. */
struct vhdkit_disk_info {
  uint32_t struct_size;          /* sizeof (struct vhdkit_disk_info) */
  int format;                    /* VHDKIT_FORMAT_* */
  int type;                      /* VHDKIT_TYPE_* */
  uint64_t virtual_size;         /* MaxInternalSize */
  uint64_t min_internal_size;    /* smallest size a shrink could reach */
  uint64_t file_size;            /* FileSize: bytes of the file on disk */
  uint32_t block_size;           /* 0 for raw */
  uint32_t logical_sector_size;
  uint32_t physical_sector_size;
  char virtual_disk_id[40];      /* "XXXXXXXX-XXXX-..." as Get-VHD prints
                                    DiskIdentifier; empty for raw */
  char data_write_guid[40];      /* the header's DataWriteGuid (VHDX) */
  char parent_linkage[40];       /* differencing: the recorded linkage */
  unsigned chain_depth;          /* 1 for a disk without parent */
  uint64_t allocated_bytes;      /* payload bytes allocated in this file */
  unsigned fragmentation_percentage;
  const char *path;              /* owned by the handle */
  const char *parent_path;       /* owned by the handle; NULL if none */
};
#define VHDKIT_DISK_INFO_INIT { .struct_size = sizeof (struct vhdkit_disk_info) }
int vhdkit_disk_get_info (struct vhdkit_disk *d, struct vhdkit_disk_info *info);

/* Only the virtual size and the logical sector size: cheap, unlike
 * vhdkit_disk_get_info, which scans the block table for the allocation
 * figures.  Either pointer may be NULL. */
int vhdkit_disk_get_size (struct vhdkit_disk *d, uint64_t *size,
                          uint32_t *logical_sector_size);

/* Extent map.  The callback receives consecutive extents covering
 * [offset, offset+length) with flags (coalesced; a non-zero return
 * stops the map, which then fails with ECANCELED).  The extents are
 * found in batches; the callback runs between batches with no lock
 * held, so a map that races with writes reports, per batch, the state
 * of one moment. */
#define VHDKIT_EXTENT_ZERO 1u      /* reads as zeros */
#define VHDKIT_EXTENT_HOLE 2u      /* not allocated anywhere in the chain */
typedef int (*vhdkit_extent_fn) (void *opaque, uint64_t offset,
                                 uint64_t length, unsigned flags);
int vhdkit_disk_map (struct vhdkit_disk *d, uint64_t offset, uint64_t length,
                     vhdkit_extent_fn fn, void *opaque);

/* Change the virtual size.  Growing adds zeros; shrinking is refused with
 * VHDKIT_RC_INVALID_PARAMETER unless the removed tail holds no data. */
int vhdkit_disk_resize (struct vhdkit_disk *d, uint64_t new_size);

/* ---- Whole-file operations ---- */

/* Merge a differencing image into its parent: every sector present in
 * the child is written to the parent, which stays valid and openable at
 * every instant.  First the child records the parent's next
 * DataWriteGuid as parent_linkage2, so the child keeps opening against
 * the parent throughout and afterwards (it then holds nothing the parent
 * lacks and may be deleted).  An interrupted merge is completed by
 * running it again. */
int vhdkit_disk_merge (const char *child_path, vhdkit_progress_fn progress,
                       void *opaque);

/* Copy SRC into a new image DST created with P (P->size 0 = SRC's size,
 * P->logical_sector_size 0 = SRC's).  Zero and unallocated ranges stay
 * unallocated in DST. */
int vhdkit_disk_convert (const char *src, const char *dst,
                         const struct vhdkit_create_params *p);

/* Validate structure and chain without changing anything.  Each problem
 * found is passed to REPORT (may be NULL).  Returns 0 if the image is
 * sound, 1 if problems were found, -1 if it could not be checked at all. */
typedef void (*vhdkit_report_fn) (void *opaque, const char *problem);
int vhdkit_check (const char *path, vhdkit_report_fn report, void *opaque);

/* Probe the format of a file from its contents (VHDKIT_FORMAT_*). */
int vhdkit_probe_format (const char *path);


/* ---- Resilient change tracking (docs/FORMAT-rct.md) ----
 *
 * Tracking state lives beside the image in IMAGE.rct and IMAGE.mrt and
 * is loaded by vhdkit_disk_open whenever IMAGE.rct exists.  While a disk
 * is open for writing, every write, zero and discard is recorded before
 * it is acknowledged in a way that survives a crash (INV-1).
 *
 * A reference point seals the current generation and returns its RCT
 * ID, "rctX:<epoch GUID with ':' for '-'>:<generation, 8 hex digits>";
 * every ID of the current epoch stays usable.  A foreign writer (the
 * image changed by software that does not track), lost or damaged
 * tracking files, or disabling tracking start a new epoch: older IDs
 * then fail with VHDKIT_RC_INVALID_STATE and a sentence saying a full
 * backup is needed. */

#define VHDKIT_RCT_DEFAULT_GRANULARITY (64u * 1024u)
#define VHDKIT_RCT_MAX_GRANULARITY     (2u * 1024u * 1024u)
#define VHDKIT_RCT_ID_MAX 64           /* bytes, with the NUL */

/* Start tracking on a disk opened read-write.  GRANULARITY is a power of
 * two from the logical sector size to 2 MiB (0 = 64 KiB).  Enabling an
 * already tracked disk fails with VHDKIT_RC_INVALID_STATE. */
int vhdkit_rct_enable (struct vhdkit_disk *d, uint32_t granularity);

/* Stop tracking and delete the tracking files (every ID becomes
 * invalid). */
int vhdkit_rct_disable (struct vhdkit_disk *d);

struct vhdkit_rct_status {
  uint32_t struct_size;          /* sizeof (struct vhdkit_rct_status) */
  bool enabled;
  bool newer_changes;            /* written since most_recent_id */
  char most_recent_id[VHDKIT_RCT_ID_MAX];   /* "" before the first */
  uint32_t granularity;
  char epoch[40];                /* the tracking epoch GUID */
  uint32_t generation;           /* the generation now being written */
  bool recovered;                /* this open recovered from a crash */
  char problem[512];             /* "" or why every reference point is
                                    invalid (a foreign writer, damaged
                                    files) until the next writer starts a
                                    new epoch */
};
#define VHDKIT_RCT_STATUS_INIT { .struct_size = sizeof (struct vhdkit_rct_status) }
int vhdkit_rct_status (struct vhdkit_disk *d, struct vhdkit_rct_status *st);

/* Create a reference point: seal the current generation, flush the disk
 * and the tracking state, and copy the sealed generation's RCT ID into
 * ID (at least VHDKIT_RCT_ID_MAX bytes).  Needs a disk opened
 * read-write; writes may go on meanwhile, on other threads:
 *  - a write whose data had reached the image before the call began is
 *    not reported since the new ID;
 *  - a write that begins after the call returned is;
 *  - a write in flight while it runs is reported since the new ID (it
 *    may also be reported since the one before). */
int vhdkit_rct_checkpoint (struct vhdkit_disk *d, char *id);

/* GetVirtualDiskChanges (DESIGN.md §3). */
#define VHDKIT_CHANGES_DEFAULT_MAX 65536u
#define VHDKIT_CHANGES_MAX_CAP (1u << 24)  /* larger caps: VHDKIT_RC_OUT_OF_MEMORY */
#define VHDKIT_CHANGE_DATA 0u          /* kinds[] values */
#define VHDKIT_CHANGE_ZERO 1u          /* last changed by zero/discard */
struct vhdkit_changes {
  uint32_t struct_size;          /* sizeof (struct vhdkit_changes) */
  uint64_t processed;            /* ProcessedByteLength */
  size_t count;                  /* ranges in the arrays */
  uint64_t *offsets;             /* ChangedByteOffsets */
  uint64_t *lengths;             /* ChangedByteLengths */
  uint8_t *kinds;                /* what last changed each range */
};

/* The ranges of [OFFSET, OFFSET+LENGTH) changed since LIMIT_ID: sorted,
 * coalesced, clipped, sector aligned; at most MAX_RANGES of them (0 =
 * VHDKIT_CHANGES_DEFAULT_MAX).  OUT->processed is LENGTH unless the cap
 * was reached, in which case it ends where the last range ends; it is
 * never 0 when LENGTH > 0.  TARGET may be NULL or "" (the current
 * state); other values are for VHD Sets and fail with
 * VHDKIT_RC_NOT_SUPPORTED on a plain image.  Free OUT with
 * vhdkit_changes_free.  Every failure sets the return code the method
 * reports. */
#define VHDKIT_CHANGES_INIT { .struct_size = sizeof (struct vhdkit_changes) }
int vhdkit_disk_get_changes (struct vhdkit_disk *d, const char *limit_id,
                             const char *target, uint64_t offset,
                             uint64_t length, size_t max_ranges,
                             struct vhdkit_changes *out);
void vhdkit_changes_free (struct vhdkit_changes *c);


/* ---- VHD Sets (docs/FORMAT-vhds.md, docs/VHD-SETS.md) ----
 *
 * A set SET.vhds names a tree of images in its own folder: the base (a
 * VHDX), differencing children (.avhdx), the current leaf that takes the
 * writes, and snapshot records.  Every member stays a standard VHDX.
 *
 * Paths: vhdkit_disk_open ("SET.vhds") opens the leaf (read-write if
 * asked); vhdkit_disk_open ("SET.vhds@<SnapshotId>") opens a snapshot
 * read-only, also while the leaf is being written.  Every disk call then
 * works as on an image; vhdkit_disk_get_changes on a disk opened through
 * a set also takes a snapshot ID as LIMIT_ID and a TARGET snapshot.
 *
 * The operations below take the set's exclusive lock: while a disk of
 * the set is open in another process (or another operation runs) they
 * fail with VHDKIT_RC_IN_USE.  A process that has disks of the set open
 * itself may run them (docs/VHD-SETS.md, "Sets in use"): a snapshot or
 * an apply switches this process's open leaf handle to the new leaf,
 * briefly holding back its I/O; an operation that would change an image
 * a handle of this process reads (a snapshot opened as SET@ID, or the
 * leaf's parent merged while the leaf is open for writing) is refused
 * with VHDKIT_RC_IN_USE or deferred as documented there.  Each is
 * crash-safe: interrupted at any instant, the set opens to its old or
 * its new state, and the next operation (or vhdkit_set_optimize)
 * finishes what was left. */

#define VHDKIT_GUID_STR 37             /* bytes of a GUID in text, with the NUL */

/* ConvertVirtualHardDiskToVHDSet: make IMAGE (a VHDX; not a differencing
 * image) the base of a new set SET_PATH (NULL = IMAGE with ".vhds" for
 * its extension, in the same folder).  The image keeps its tracking
 * state; if it has none, tracking is enabled with RCT_GRANULARITY (0 =
 * the default) unless RCT_GRANULARITY is UINT32_MAX. */
int vhdkit_set_convert (const char *image, const char *set_path,
                        uint32_t rct_granularity);

/* Take a snapshot: seal the leaf's current generation (its RCT ID goes
 * into the record), freeze the leaf and make a new child the leaf.  ID
 * NULL or "" = a random GUID; the snapshot ID is copied to OUT_ID
 * (VHDKIT_GUID_STR bytes; may be NULL). */
int vhdkit_set_snapshot (const char *set, const char *id, char *out_id);

/* Msvm_VHDSnapshotInformation. */
struct vhdkit_snapshot_info {
  uint32_t struct_size;          /* filled in by the library: its sizeof */
  char *file_path;               /* the set */
  char snapshot_id[VHDKIT_GUID_STR];
  char *snapshot_path;           /* the frozen image; "" for a reference point */
  char **parent_paths;           /* immediate parent first, root last */
  size_t n_parent_paths;         /* (only with WANT_PARENTS) */
  int64_t creation_time_ns;      /* since 1970-01-01 UTC */
  char rct_id[VHDKIT_RCT_ID_MAX];   /* "" if taken without tracking */
};

/* Msvm_VHDSetInformation. */
struct vhdkit_set_info {
  uint32_t struct_size;          /* sizeof (struct vhdkit_set_info) */
  char *path;
  char **snapshot_ids;  size_t n_snapshot_ids;
  char **all_paths;     size_t n_all_paths;   /* the leaf, then its parents
                                                 to the base, then the other
                                                 members, then unreferenced
                                                 files of the set's name */
  char *leaf_path;
};

#define VHDKIT_SET_INFO_INIT { .struct_size = sizeof (struct vhdkit_set_info) }
int vhdkit_set_get_info (const char *set, struct vhdkit_set_info *out);
void vhdkit_set_info_free (struct vhdkit_set_info *i);

/* The records with the given IDS (all records if N_IDS is 0), oldest
 * first, as an array of N pointers.  An unknown ID fails with
 * VHDKIT_RC_INVALID_STATE. */
int vhdkit_set_get_snapshots (const char *set, const char *const *ids,
                              size_t n_ids, bool want_parents,
                              struct vhdkit_snapshot_info ***out, size_t *n);
void vhdkit_snapshots_free (struct vhdkit_snapshot_info **s, size_t n);

/* DeleteVHDSnapshot: remove the record; with PERSIST_REFERENCE keep a
 * reference point in its place, whose ID (and RCT ID) stays usable as a
 * LimitId.  The snapshot's image is merged away when no other snapshot
 * needs it on its own. */
int vhdkit_set_delete_snapshot (const char *set, const char *id,
                                bool persist_reference,
                                vhdkit_progress_fn progress, void *opaque);

/* Apply (revert to) a snapshot: the leaf is discarded and a new leaf
 * starts from the snapshot's content.  Tracking counts every block
 * changed since the snapshot as changed again (the revert writes it). */
int vhdkit_set_apply_snapshot (const char *set, const char *id);

/* OptimizeVHDSet: finish an interrupted operation, merge away images no
 * snapshot needs, delete unreferenced files of the set's name. */
int vhdkit_set_optimize (const char *set, vhdkit_progress_fn progress,
                         void *opaque);

/* SetVHDSnapshotInformation: overwrite the record with INFO's ID, or add
 * one.  Settable: creation_time_ns, and for a new record snapshot_path
 * (an image of the set that no record names and that is not the leaf)
 * or rct_id (a reference point).  A record's RCT ID must be the one its
 * image was sealed with (anything else could hide changes). */
int vhdkit_set_set_snapshot_info (const char *set,
                                  const struct vhdkit_snapshot_info *info);
#define VHDKIT_SNAPSHOT_INFO_INIT { .struct_size = sizeof (struct vhdkit_snapshot_info) }

#ifdef __cplusplus
}
#endif
#endif /* VHDKIT_H */

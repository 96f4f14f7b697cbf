/* The method table and the methods (vhdkitd.h).
 *
 * One entry per method: both doors dispatch from it, params.c checks
 * calls against it, and docs/API.md is printed from it (api_doc_print;
 * tests/daemon/test-daemon-api-doc.sh fails when the file drifts).
 * Parameter names and types are Microsoft's for Msvm_* classes.
 *
 * Every method that names a disk takes it through the registry, so that
 * it works on a disk the daemon holds open and that is being written.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdkitd.h"
#include "cimtime.h"

#define IMS "Msvm_ImageManagementService"
#define CTS "Vhdkit_ChangeTrackingService"
#define VSS "Vhdkit_VHDSetService"
#define JOB "Msvm_ConcreteJob"
#define VKS "Vhdkit_Service"

/* ---- errors ---- */

uint32_t
call_fail (struct call *c, uint32_t rc, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (c->error, sizeof c->error, fmt, ap);
  va_end (ap);
  return rc;
}

uint32_t
call_lib_fail (struct call *c)
{
  uint32_t rc = vhdkit_get_error_code ();
  const char *e = vhdkit_get_error ();
  snprintf (c->error, sizeof c->error, "%s", e && *e ? e : "the operation failed");
  return rc ? rc : VHDKIT_RC_FAILED;
}

int
call_progress (void *opaque, uint64_t done, uint64_t total)
{
  struct call *c = opaque;
  if (c->job && total)
    jobs_set_percent (c->job, (unsigned) (done * 100 / total));
  return c->cancel && __atomic_load_n (c->cancel, __ATOMIC_ACQUIRE);
}

const char *
rc_description (uint32_t rc)
{
  switch (rc) {
  case 0: return "Completed with No Error";
  case 4096: return "Method Parameters Checked - Job Started";
  case 32768: return "Failed";
  case 32769: return "Access Denied";
  case 32770: return "Not Supported";
  case 32771: return "Status is unknown";
  case 32772: return "Timeout";
  case 32773: return "Invalid parameter";
  case 32774: return "System is in use";
  case 32775: return "Invalid state for this operation";
  case 32776: return "Incorrect data type";
  case 32777: return "System is not available";
  case 32778: return "Out of memory";
  case 32779: return "File not found";
  default: return "Unknown";
  }
}

/* ---- helpers ---- */

json_t *
json_text (const char *s)
{
  json_t *v = json_string (s ? s : "");
  if (v) return v;
  /* Not UTF-8 (a file name or bytes quoted from a damaged file): keep
   * the ASCII, replace the rest. */
  size_t n = strlen (s);
  char *t = malloc (n + 1);
  if (!t) return json_string ("");
  for (size_t i = 0; i < n; i++) t[i] = (unsigned char) s[i] < 0x80 ? s[i] : '?';
  t[n] = 0;
  v = json_string (t);
  free (t);
  return v ? v : json_string ("");
}

static const char *
str (json_t *in, const char *name)
{
  json_t *v = json_object_get (in, name);
  return json_is_string (v) ? json_string_value (v) : NULL;
}

static uint64_t
u64 (json_t *in, const char *name)
{
  json_t *v = json_object_get (in, name);
  return json_is_integer (v) ? (uint64_t) json_integer_value (v) : 0;
}

/* Resolve the path parameter NAME and get its shared handle. */
static uint32_t
disk_of (struct call *c, json_t *in, const char *name, struct reg_disk **rd)
{
  char real[4096];
  const char *p = str (in, name);
  uint32_t rc = roots_resolve (c, name, p, true, real, sizeof real);
  if (rc) return rc;
  return reg_get (c, real, rd);
}

/* uint64 values beyond INT64_MAX cannot be JSON integers in jansson:
 * none of ours are (sizes are at most 64 TiB). */
static json_t *
jint (uint64_t v)
{
  return json_integer ((json_int_t) v);
}

/* ---- Msvm_ImageManagementService ---- */

static uint32_t
m_get_setting_data (struct call *c, json_t *in, json_t *out)
{
  struct reg_disk *rd;
  uint32_t rc = disk_of (c, in, "Path", &rd);
  if (rc) return rc;
  struct vhdkit_disk_info i = VHDKIT_DISK_INFO_INIT;
  if (vhdkit_disk_get_info (rd->d, &i) == -1) {
    rc = call_lib_fail (c);
    reg_put (rd);
    return rc;
  }
  json_t *sd = json_object ();
  json_object_set_new (sd, "__CLASS", json_string ("Msvm_VirtualHardDiskSettingData"));
  json_object_set_new (sd, "InstanceID", json_text (rd->path));
  json_object_set_new (sd, "Path", json_text (rd->path));
  json_object_set_new (sd, "Type", json_integer (i.type));
  json_object_set_new (sd, "Format", json_integer (i.format));
  json_object_set_new (sd, "ParentPath", json_text (i.parent_path));
  json_object_set_new (sd, "ParentIdentifier", json_string (i.parent_linkage));
  json_object_set_new (sd, "MaxInternalSize", jint (i.virtual_size));
  json_object_set_new (sd, "BlockSize", json_integer (i.block_size));
  json_object_set_new (sd, "LogicalSectorSize", json_integer (i.logical_sector_size));
  json_object_set_new (sd, "PhysicalSectorSize", json_integer (i.physical_sector_size));
  json_object_set_new (sd, "VirtualDiskId", json_string (i.virtual_disk_id));
  json_object_set_new (sd, "DataAlignment", json_integer (i.block_size ? i.block_size : i.logical_sector_size));
  json_object_set_new (out, "SettingData", sd);
  reg_put (rd);
  return 0;
}

static uint32_t
m_get_state (struct call *c, json_t *in, json_t *out)
{
  struct reg_disk *rd;
  uint32_t rc = disk_of (c, in, "Path", &rd);
  if (rc) return rc;
  struct vhdkit_disk_info i = VHDKIT_DISK_INFO_INIT;
  if (vhdkit_disk_get_info (rd->d, &i) == -1) {
    rc = call_lib_fail (c);
    reg_put (rd);
    return rc;
  }
  json_t *st = json_object ();
  json_object_set_new (st, "__CLASS", json_string ("Msvm_VirtualHardDiskState"));
  json_object_set_new (st, "FileSize", jint (i.file_size));
  /* Held open by this service (every door shares one handle). */
  json_object_set_new (st, "InUse", json_true ());
  json_object_set_new (st, "MinInternalSize", jint (i.min_internal_size));
  json_object_set_new (st, "PhysicalSectorSize", json_integer (i.physical_sector_size));
  /* 0: aligned to 512 bytes, 1: to 4 KiB (VHDX blocks are MiB aligned). */
  json_object_set_new (st, "Alignment", json_integer (i.format == VHDKIT_FORMAT_VHDX ? 1 : 0));
  json_object_set_new (st, "FragmentationPercentage", json_integer (i.fragmentation_percentage));
  /* vhdkit extras, as `vhdkit info` names them. */
  json_object_set_new (st, "DataWriteGuid", json_string (i.data_write_guid));
  json_object_set_new (st, "ChainDepth", json_integer (i.chain_depth));
  json_object_set_new (st, "AllocatedBytes", jint (i.allocated_bytes));
  json_object_set_new (out, "State", st);
  reg_put (rd);
  return 0;
}

struct report { json_t *list; };

static void
add_problem (void *opaque, const char *problem)
{
  struct report *r = opaque;
  json_array_append_new (r->list, json_string (problem));
}

static uint32_t
m_validate (struct call *c, json_t *in, json_t *out)
{
  char real[4096];
  uint32_t rc = roots_resolve (c, "Path", str (in, "Path"), true, real, sizeof real);
  if (rc) return rc;
  /* Checking reads the files as they are on disk: what the daemon's
   * handle has written must be there first. */
  struct reg_disk *rd;
  if (reg_get (c, real, &rd) == 0) {
    if (vhdkit_disk_flush (rd->d) == -1) {
      rc = call_lib_fail (c);
      reg_put (rd);
      return rc;
    }
    reg_put (rd);
  }
  c->error[0] = 0;
  struct report r = { json_array () };
  int k = vhdkit_check (real, add_problem, &r);
  if (k == -1) {
    json_decref (r.list);
    return call_lib_fail (c);
  }
  if (k == 1) {
    size_t n = json_array_size (r.list);
    const char *first = n ? json_string_value (json_array_get (r.list, 0)) : "problems found";
    rc = call_fail (c, VHDKIT_RC_FAILED, "%s: %zu problem%s, the first: %s", real, n, n == 1 ? "" : "s", first);
    json_decref (r.list);         /* FIRST is one of its strings */
    return rc;
  }
  json_decref (r.list);
  return 0;
}

/* The fields of an embedded Msvm_VirtualHardDiskSettingData. */
static uint32_t
setting_data (struct call *c, json_t *sd, const char *param, char *real, size_t n,
              struct vhdkit_create_params *p, char *parent, size_t pn, bool convert)
{
  const char *path = str (sd, "Path");
  if (!path)
    return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s: Path is missing", param);
  uint32_t rc = roots_resolve (c, "Path", path, false, real, n);
  if (rc) return rc;
  if (access (real, F_OK) == 0)
    return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s: %s already exists", param, real);
  int type = (int) u64 (sd, "Type"), format = (int) u64 (sd, "Format");
  if (type != VHDKIT_TYPE_FIXED && type != VHDKIT_TYPE_DYNAMIC && type != VHDKIT_TYPE_DIFFERENCING)
    return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s: Type %d is not 2 (fixed), 3 (dynamic) or 4 (differencing)",
                      param, type);
  if (format != VHDKIT_FORMAT_VHDX)
    return call_fail (c, format == VHDKIT_FORMAT_VHD ? VHDKIT_RC_NOT_SUPPORTED : VHDKIT_RC_INVALID_PARAMETER,
                      "%s: Format %d: only 3 (VHDX) can be created", param, format);
  p->format = format;
  p->type = type;
  p->size = u64 (sd, "MaxInternalSize");
  p->block_size = (uint32_t) u64 (sd, "BlockSize");
  p->logical_sector_size = (uint32_t) u64 (sd, "LogicalSectorSize");
  p->physical_sector_size = (uint32_t) u64 (sd, "PhysicalSectorSize");
  const char *pp = str (sd, "ParentPath");
  if (type == VHDKIT_TYPE_DIFFERENCING) {
    if (!pp || !*pp)
      return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s: a differencing disk needs ParentPath", param);
    rc = roots_resolve (c, "ParentPath", pp, true, parent, pn);
    if (rc) return rc;
    p->parent = parent;
  }
  else if (pp && *pp)
    return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s: ParentPath is only for Type 4 (differencing)", param);
  else if (p->size == 0 && !convert)
    return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "%s: MaxInternalSize is 0", param);
  return 0;
}

uint32_t
settings_check (struct call *c, json_t *sd, const char *param, bool convert)
{
  char real[4096], parent[4096];
  struct vhdkit_create_params p = VHDKIT_CREATE_PARAMS_INIT;
  return setting_data (c, sd, param, real, sizeof real, &p, parent, sizeof parent, convert);
}

static uint32_t
m_create (struct call *c, json_t *in, json_t *out)
{
  char real[4096], parent[4096];
  struct vhdkit_create_params p = VHDKIT_CREATE_PARAMS_INIT;
  uint32_t rc = setting_data (c, json_object_get (in, "VirtualDiskSettingData"), "VirtualDiskSettingData",
                              real, sizeof real, &p, parent, sizeof parent, false);
  if (rc) return rc;
  p.progress = call_progress;
  p.progress_opaque = c;
  if (vhdkit_disk_create (real, &p) == -1) return call_lib_fail (c);
  return 0;
}

static uint32_t
m_convert (struct call *c, json_t *in, json_t *out)
{
  char src[4096], real[4096], parent[4096];
  struct vhdkit_create_params p = VHDKIT_CREATE_PARAMS_INIT;
  uint32_t rc = roots_resolve (c, "SourcePath", str (in, "SourcePath"), true, src, sizeof src);
  if (rc) return rc;
  rc = setting_data (c, json_object_get (in, "VirtualDiskSettingData"), "VirtualDiskSettingData",
                     real, sizeof real, &p, parent, sizeof parent, true);
  if (rc) return rc;
  if (p.type == VHDKIT_TYPE_DIFFERENCING)
    return call_fail (c, VHDKIT_RC_NOT_SUPPORTED, "VirtualDiskSettingData: converting into a differencing disk is not supported");
  /* The source is read as it is on disk, with what the daemon wrote. */
  struct reg_disk *rd;
  if (reg_get (c, src, &rd) == 0) {
    int fr = vhdkit_disk_flush (rd->d);
    reg_put (rd);
    if (fr == -1) return call_lib_fail (c);
    if ((rc = reg_evict (c, src)) != 0) return rc;
  }
  p.size = 0;                   /* the source's */
  p.progress = call_progress;
  p.progress_opaque = c;
  if (vhdkit_disk_convert (src, real, &p) == -1) return call_lib_fail (c);
  return 0;
}

static uint32_t
m_resize (struct call *c, json_t *in, json_t *out)
{
  struct reg_disk *rd;
  uint32_t rc = disk_of (c, in, "Path", &rd);
  if (rc) return rc;
  if (vhdkit_disk_resize (rd->d, u64 (in, "MaxInternalSize")) == -1 || vhdkit_disk_flush (rd->d) == -1)
    rc = call_lib_fail (c);
  reg_put (rd);
  return rc;
}

static uint32_t
m_merge (struct call *c, json_t *in, json_t *out)
{
  char child[4096], dest[4096];
  uint32_t rc = roots_resolve (c, "SourcePath", str (in, "SourcePath"), true, child, sizeof child);
  if (rc) return rc;
  rc = roots_resolve (c, "DestinationPath", str (in, "DestinationPath"), true, dest, sizeof dest);
  if (rc) return rc;
  /* The merge opens both files itself: neither may be held. */
  if ((rc = reg_evict (c, child)) != 0 || (rc = reg_evict (c, dest)) != 0) return rc;
  struct vhdkit_disk *d = vhdkit_disk_open (child, VHDKIT_OPEN_RDONLY);
  if (!d) return call_lib_fail (c);
  struct vhdkit_disk_info i = VHDKIT_DISK_INFO_INIT;
  int ok = vhdkit_disk_get_info (d, &i) == 0;
  char parent[4096] = "";
  if (ok && i.parent_path) snprintf (parent, sizeof parent, "%s", i.parent_path);
  vhdkit_disk_close (d);
  if (!ok) return call_lib_fail (c);
  char rparent[4096];
  if (!*parent || !realpath (parent, rparent))
    return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "SourcePath: %s is not a differencing disk", child);
  if (strcmp (rparent, dest) != 0)
    return call_fail (c, VHDKIT_RC_NOT_SUPPORTED,
                      "DestinationPath: %s is not the immediate parent of %s (%s); merging further up the chain is not supported",
                      dest, child, rparent);
  if (vhdkit_disk_merge (child, call_progress, c) == -1) return call_lib_fail (c);
  return 0;
}

/* GetVirtualDiskChanges (DESIGN.md §3): the library's contract, with
 * the arrays filled for the whole window in one answer. */
static uint32_t
m_changes (struct call *c, json_t *in, json_t *out)
{
  struct reg_disk *rd;
  uint32_t rc = disk_of (c, in, "Path", &rd);
  if (rc) return rc;
  const char *limit = str (in, "LimitId"), *target = str (in, "TargetSnapshotId");
  struct vhdkit_changes ch = VHDKIT_CHANGES_INIT;
  if (vhdkit_disk_get_changes (rd->d, limit ? limit : "", target, u64 (in, "ByteOffset"),
                               u64 (in, "ByteLength"), VHDKIT_CHANGES_MAX_CAP, &ch) == -1) {
    rc = call_lib_fail (c);
    reg_put (rd);
    return rc;
  }
  reg_put (rd);
  json_t *offs = json_array (), *lens = json_array ();
  for (size_t i = 0; i < ch.count; i++) {
    json_array_append_new (offs, jint (ch.offsets[i]));
    json_array_append_new (lens, jint (ch.lengths[i]));
  }
  json_object_set_new (out, "ProcessedByteLength", jint (ch.processed));
  json_object_set_new (out, "ChangedByteOffsets", offs);
  json_object_set_new (out, "ChangedByteLengths", lens);
  vhdkit_changes_free (&ch);
  return 0;
}

/* ---- Vhdkit_ChangeTrackingService ---- */

static uint32_t
m_set_tracking (struct call *c, json_t *in, json_t *out)
{
  struct reg_disk *rd;
  uint32_t rc = disk_of (c, in, "Path", &rd);
  if (rc) return rc;
  json_t *en = json_object_get (in, "Enabled");
  struct vhdkit_rct_status st = VHDKIT_RCT_STATUS_INIT;
  int r = vhdkit_rct_status (rd->d, &st);
  if (r == 0 && json_is_true (en) && !st.enabled)
    r = vhdkit_rct_enable (rd->d, (uint32_t) u64 (in, "Granularity"));
  else if (r == 0 && json_is_false (en) && st.enabled)
    r = vhdkit_rct_disable (rd->d);
  if (r == -1) rc = call_lib_fail (c);
  reg_put (rd);
  return rc;
}

static uint32_t
m_reference_point (struct call *c, json_t *in, json_t *out)
{
  struct reg_disk *rd;
  char id[VHDKIT_RCT_ID_MAX];
  uint32_t rc = disk_of (c, in, "Path", &rd);
  if (rc) return rc;
  if (vhdkit_rct_checkpoint (rd->d, id) == -1) rc = call_lib_fail (c);
  else json_object_set_new (out, "ResilientChangeTrackingId", json_string (id));
  reg_put (rd);
  return rc;
}

static uint32_t
m_tracking_state (struct call *c, json_t *in, json_t *out)
{
  struct reg_disk *rd;
  uint32_t rc = disk_of (c, in, "Path", &rd);
  if (rc) return rc;
  struct vhdkit_rct_status st = VHDKIT_RCT_STATUS_INIT;
  if (vhdkit_rct_status (rd->d, &st) == -1) rc = call_lib_fail (c);
  else {
    json_object_set_new (out, "Enabled", json_boolean (st.enabled));
    json_object_set_new (out, "NewerChanges", json_boolean (st.newer_changes));
    json_object_set_new (out, "MostRecentId", json_string (st.most_recent_id));
    json_object_set_new (out, "Granularity", json_integer (st.granularity));
    json_object_set_new (out, "Problem", json_string (st.problem));
    json_object_set_new (out, "Epoch", json_string (st.epoch));
    json_object_set_new (out, "Generation", json_integer (st.generation));
    json_object_set_new (out, "Recovered", json_boolean (st.recovered));
  }
  reg_put (rd);
  return rc;
}


/* ---- VHD Sets ---- */

static json_t *
str_array (char **v, size_t n)
{
  json_t *a = json_array ();
  for (size_t i = 0; i < n; i++) json_array_append_new (a, json_text (v[i]));
  return a;
}

/* Whether the uint32 array parameter NAME holds V. */
static bool
has_value (json_t *in, const char *name, json_int_t v)
{
  size_t i;
  json_t *e, *a = json_object_get (in, name);
  json_array_foreach (a, i, e)
    if (json_integer_value (e) == v) return true;
  return false;
}

static uint32_t
set_path (struct call *c, json_t *in, char *real, size_t n)
{
  uint32_t rc = roots_resolve (c, "VHDSetPath", str (in, "VHDSetPath"), true, real, n);
  if (rc) return rc;
  size_t l = strlen (real);
  if (l < 5 || strcasecmp (real + l - 5, ".vhds") != 0)
    return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "VHDSetPath: %s is not a VHD Set (.vhds)", real);
  return 0;
}

static uint32_t
m_to_set (struct call *c, json_t *in, json_t *out)
{
  char real[4096];
  uint32_t rc = roots_resolve (c, "VirtualHardDiskPath", str (in, "VirtualHardDiskPath"), true, real, sizeof real);
  if (rc) return rc;
  /* The conversion opens the image itself. */
  struct reg_disk *rd;
  if (reg_get (c, real, &rd) == 0) {
    int fr = vhdkit_disk_flush (rd->d);
    reg_put (rd);
    if (fr == -1) return call_lib_fail (c);
    if ((rc = reg_evict (c, real)) != 0) return rc;
  }
  if (vhdkit_set_convert (real, NULL, 0) == -1) return call_lib_fail (c);
  return 0;
}

static uint32_t
m_set_info (struct call *c, json_t *in, json_t *out)
{
  char real[4096];
  uint32_t rc = set_path (c, in, real, sizeof real);
  if (rc) return rc;
  struct vhdkit_set_info i = VHDKIT_SET_INFO_INIT;
  if (vhdkit_set_get_info (real, &i) == -1) return call_lib_fail (c);
  json_t *v = json_object ();
  json_object_set_new (v, "__CLASS", json_string ("Msvm_VHDSetInformation"));
  json_object_set_new (v, "Path", json_text (i.path));
  json_object_set_new (v, "SnapshotIdList", str_array (i.snapshot_ids, i.n_snapshot_ids));
  json_object_set_new (v, "AllPaths", has_value (in, "AdditionalInformation", 2)
                       ? str_array (i.all_paths, i.n_all_paths) : json_array ());
  json_object_set_new (out, "Information", v);
  vhdkit_set_info_free (&i);
  return 0;
}

static json_t *
snapshot_view (const struct vhdkit_snapshot_info *s, bool parents)
{
  char t[32];
  cim_datetime_format (s->creation_time_ns, t, sizeof t);
  json_t *v = json_object ();
  json_object_set_new (v, "__CLASS", json_string ("Msvm_VHDSnapshotInformation"));
  json_object_set_new (v, "FilePath", json_text (s->file_path));
  json_object_set_new (v, "SnapshotId", json_string (s->snapshot_id));
  json_object_set_new (v, "SnapshotPath", json_text (s->snapshot_path));
  json_object_set_new (v, "ParentPathsList", parents ? str_array (s->parent_paths, s->n_parent_paths) : json_array ());
  json_object_set_new (v, "CreationTime", json_string (t));
  json_object_set_new (v, "ResilientChangeTrackingId", json_string (s->rct_id));
  return v;
}

static uint32_t
m_snapshot_info (struct call *c, json_t *in, json_t *out)
{
  char real[4096];
  uint32_t rc = set_path (c, in, real, sizeof real);
  if (rc) return rc;
  json_t *ids = json_object_get (in, "SnapshotIds");
  size_t nids = json_is_array (ids) ? json_array_size (ids) : 0;
  const char **idv = calloc (nids + 1, sizeof *idv);
  for (size_t i = 0; i < nids; i++) idv[i] = json_string_value (json_array_get (ids, i));
  bool parents = has_value (in, "AdditionalInformation", 2);
  struct vhdkit_snapshot_info **s;
  size_t n;
  int r = vhdkit_set_get_snapshots (real, idv, nids, parents, &s, &n);
  free (idv);
  if (r == -1) return call_lib_fail (c);
  json_t *a = json_array ();
  for (size_t i = 0; i < n; i++) json_array_append_new (a, snapshot_view (s[i], parents));
  vhdkit_snapshots_free (s, n);
  json_object_set_new (out, "SnapshotInformation", a);
  return 0;
}

static uint32_t
m_set_snapshot_info (struct call *c, json_t *in, json_t *out)
{
  json_t *v = json_object_get (in, "Information");
  char real[4096], spath[4096] = "";
  const char *fp = str (v, "FilePath"), *id = str (v, "SnapshotId");
  uint32_t rc = roots_resolve (c, "Information.FilePath", fp, true, real, sizeof real);
  if (rc) return rc;
  if (!id || !*id)
    return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "Information: SnapshotId is missing");
  struct vhdkit_snapshot_info si = VHDKIT_SNAPSHOT_INFO_INIT;
  si.file_path = real;
  snprintf (si.snapshot_id, sizeof si.snapshot_id, "%s", id);
  const char *sp = str (v, "SnapshotPath");
  if (sp && *sp) {
    if ((rc = roots_resolve (c, "Information.SnapshotPath", sp, true, spath, sizeof spath)) != 0) return rc;
    si.snapshot_path = spath;
  }
  else si.snapshot_path = (char *) "";
  const char *rid = str (v, "ResilientChangeTrackingId");
  snprintf (si.rct_id, sizeof si.rct_id, "%s", rid ? rid : "");
  const char *ct = str (v, "CreationTime");
  if (ct && *ct && cim_datetime_parse (ct, &si.creation_time_ns) == -1)
    return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "Information: CreationTime \"%.40s\" is not a CIM datetime", ct);
  if (vhdkit_set_set_snapshot_info (real, &si) == -1) return call_lib_fail (c);
  return 0;
}

static uint32_t
m_delete_snapshot (struct call *c, json_t *in, json_t *out)
{
  char real[4096];
  uint32_t rc = set_path (c, in, real, sizeof real);
  if (rc) return rc;
  if (vhdkit_set_delete_snapshot (real, str (in, "SnapshotId"),
                                  json_is_true (json_object_get (in, "PersistReferenceSnapshot")),
                                  call_progress, c) == -1)
    return call_lib_fail (c);
  return 0;
}

static uint32_t
m_optimize_set (struct call *c, json_t *in, json_t *out)
{
  char real[4096];
  uint32_t rc = set_path (c, in, real, sizeof real);
  if (rc) return rc;
  if (vhdkit_set_optimize (real, call_progress, c) == -1) return call_lib_fail (c);
  return 0;
}

static uint32_t
m_take_snapshot (struct call *c, json_t *in, json_t *out)
{
  char real[4096], id[VHDKIT_GUID_STR];
  uint32_t rc = set_path (c, in, real, sizeof real);
  if (rc) return rc;
  if (vhdkit_set_snapshot (real, NULL, id) == -1) return call_lib_fail (c);
  json_object_set_new (out, "SnapshotId", json_string (id));
  return 0;
}

static uint32_t
m_apply_snapshot (struct call *c, json_t *in, json_t *out)
{
  char real[4096];
  uint32_t rc = set_path (c, in, real, sizeof real);
  if (rc) return rc;
  if (vhdkit_set_apply_snapshot (real, str (in, "SnapshotId")) == -1) return call_lib_fail (c);
  return 0;
}

/* ---- Msvm_ConcreteJob ---- */

static uint32_t
m_job_request_state (struct call *c, json_t *in, json_t *out)
{
  return jobs_request_state (str (in, "InstanceID"), (unsigned) u64 (in, "RequestedState"),
                             c->error, sizeof c->error);
}

static uint32_t
m_job_get_error (struct call *c, json_t *in, json_t *out)
{
  json_t *j = jobs_get (str (in, "InstanceID"));
  if (!j) return call_fail (c, VHDKIT_RC_INVALID_PARAMETER, "InstanceID: no job %s", str (in, "InstanceID"));
  json_t *e = json_object ();
  json_object_set_new (e, "__CLASS", json_string ("Msvm_Error"));
  json_object_set_new (e, "ErrorType", json_integer (1));                /* Other */
  json_object_set_new (e, "OtherErrorType", json_string ("vhdkit"));
  json_object_set_new (e, "CIMStatusCode", json_integer (json_integer_value (json_object_get (j, "ErrorCode")) ? 1 : 0));
  json_object_set (e, "Message", json_object_get (j, "ErrorDescription"));
  json_object_set_new (e, "MessageID", json_sprintf ("%" JSON_INTEGER_FORMAT,   /* a string in Msvm_Error */
                                                     json_integer_value (json_object_get (j, "ErrorCode"))));
  json_object_set (e, "ErrorSource", json_object_get (j, "InstanceID"));
  json_object_set_new (out, "Error", e);
  json_decref (j);
  return 0;
}

/* ---- Vhdkit_Service ---- */

/* What the registry holds: `vhdkit` asks before it tells a user whose
 * local verb found an image in use to go through this service. */
static uint32_t
m_open_disks (struct call *c, json_t *in, json_t *out)
{
  json_t *a = reg_paths ();
  if (!a) return call_fail (c, VHDKIT_RC_OUT_OF_MEMORY, "out of memory listing the open disks");
  json_object_set_new (out, "Paths", a);
  return 0;
}

/* ---- the table ---- */

#define STD_CODES 32768, 32769, 32770, 32771, 32772, 32773, 32774, 32775, 32776, 32777, 32778, 32779, 0
static const uint32_t std_codes[] = { 0, 4096, STD_CODES };
static const uint32_t sync_codes[] = { 0, STD_CODES };
static const uint32_t job_state_codes[] = { 0, 4097, 32773, 0 };

#define JOBREF { "Job", CIM_REFERENCE, P_OUT, JOB, "The job that runs the call (null when it completed)." }
#define END { NULL, 0, 0, NULL, NULL }

static const struct param p_path[] = {
  { "Path", CIM_STRING, P_IN, NULL, "Absolute path of the virtual disk (inside an allowed root)." },
  JOBREF, END,
};
static const struct param p_setting[] = {
  { "Path", CIM_STRING, P_IN, NULL, "Absolute path of the virtual disk." },
  { "SettingData", CIM_STRING, P_OUT, "Msvm_VirtualHardDiskSettingData", "The disk's settings." },
  JOBREF, END,
};
static const struct param p_state[] = {
  { "Path", CIM_STRING, P_IN, NULL, "Absolute path of the virtual disk." },
  { "State", CIM_STRING, P_OUT, "Msvm_VirtualHardDiskState",
    "The disk's state, with the vhdkit extras DataWriteGuid, ChainDepth and AllocatedBytes." },
  JOBREF, END,
};
static const struct param p_create[] = {
  { "VirtualDiskSettingData", CIM_STRING, P_IN, "Msvm_VirtualHardDiskSettingData",
    "Path, Type (2 fixed, 3 dynamic, 4 differencing), Format (3 VHDX), MaxInternalSize, BlockSize, "
    "LogicalSectorSize, PhysicalSectorSize (0: defaults), ParentPath (differencing only)." },
  JOBREF, END,
};
static const struct param p_convert[] = {
  { "SourcePath", CIM_STRING, P_IN, NULL, "The disk to copy (left unchanged)." },
  { "VirtualDiskSettingData", CIM_STRING, P_IN, "Msvm_VirtualHardDiskSettingData",
    "The new disk: Path, Type (2 fixed or 3 dynamic), Format (3), BlockSize, LogicalSectorSize (0: the source's)." },
  JOBREF, END,
};
static const struct param p_resize[] = {
  { "Path", CIM_STRING, P_IN, NULL, "Absolute path of the virtual disk." },
  { "MaxInternalSize", CIM_UINT64, P_IN, NULL, "The new virtual size in bytes." },
  JOBREF, END,
};
static const struct param p_merge[] = {
  { "SourcePath", CIM_STRING, P_IN, NULL, "The differencing disk to merge." },
  { "DestinationPath", CIM_STRING, P_IN, NULL, "Its parent, which receives the data." },
  JOBREF, END,
};
static const struct param p_changes[] = {
  { "Path", CIM_STRING, P_IN, NULL, "The disk, or a VHD Set (.vhds)." },
  { "LimitId", CIM_STRING, P_IN, NULL, "The RCT ID (or, for a set, snapshot ID) to compare with." },
  { "TargetSnapshotId", CIM_STRING, P_IN, NULL, "VHD Sets: compare with this snapshot instead of the current state (null or \"\": the current state)." },
  { "ByteOffset", CIM_UINT64, P_IN, NULL, "Start of the window." },
  { "ByteLength", CIM_UINT64, P_IN, NULL, "Length of the window." },
  { "ProcessedByteLength", CIM_UINT64, P_OUT, NULL, "How much of the window the answer covers (never 0 for a non-empty window)." },
  { "ChangedByteOffsets", CIM_UINT64, P_OUT | P_ARRAY, NULL, "Starts of the changed ranges, sorted." },
  { "ChangedByteLengths", CIM_UINT64, P_OUT | P_ARRAY, NULL, "Their lengths." },
  JOBREF, END,
};
static const struct param p_set_tracking[] = {
  { "Path", CIM_STRING, P_IN, NULL, "Absolute path of the virtual disk." },
  { "Enabled", CIM_BOOLEAN, P_IN, NULL, "true: start tracking; false: stop and delete the tracking files." },
  { "Granularity", CIM_UINT32, P_IN, NULL, "Bytes per tracked block when enabling: a power of two from the sector size to 2 MiB (0: 64 KiB)." },
  JOBREF, END,
};
static const struct param p_refpoint[] = {
  { "Path", CIM_STRING, P_IN, NULL, "Absolute path of the tracked disk." },
  { "ResilientChangeTrackingId", CIM_STRING, P_OUT, NULL, "The new reference point's ID." },
  JOBREF, END,
};
static const struct param p_tracking_state[] = {
  { "Path", CIM_STRING, P_IN, NULL, "Absolute path of the virtual disk." },
  { "Enabled", CIM_BOOLEAN, P_OUT, NULL, "Whether the disk is tracked." },
  { "NewerChanges", CIM_BOOLEAN, P_OUT, NULL, "Whether it was written since MostRecentId." },
  { "MostRecentId", CIM_STRING, P_OUT, NULL, "The newest reference point (\"\" before the first)." },
  { "Granularity", CIM_UINT32, P_OUT, NULL, "Bytes per tracked block." },
  { "Problem", CIM_STRING, P_OUT, NULL, "\"\", or why every reference point is invalid (a full backup is needed)." },
  { "Epoch", CIM_STRING, P_OUT, NULL, "The GUID of the tracking epoch (\"\" when not tracked)." },
  { "Generation", CIM_UINT32, P_OUT, NULL, "The generation now being written (each reference point seals one)." },
  { "Recovered", CIM_BOOLEAN, P_OUT, NULL, "Whether opening the disk recovered tracking state left by a crash." },
  JOBREF, END,
};
static const struct param p_to_set[] = {
  { "VirtualHardDiskPath", CIM_STRING, P_IN, NULL, "A VHDX (not differencing); the set is made beside it with the .vhds extension." },
  JOBREF, END,
};
static const struct param p_set_info[] = {
  { "VHDSetPath", CIM_STRING, P_IN, NULL, "The VHD Set (.vhds)." },
  { "AdditionalInformation", CIM_UINT32, P_IN | P_ARRAY, NULL, "2 (Paths): fill AllPaths; null or [] for none." },
  { "Information", CIM_STRING, P_OUT, "Msvm_VHDSetInformation", "Path, SnapshotIdList, AllPaths." },
  JOBREF, END,
};
static const struct param p_snapshot_info[] = {
  { "VHDSetPath", CIM_STRING, P_IN, NULL, "The VHD Set (.vhds)." },
  { "SnapshotIds", CIM_STRING, P_IN | P_ARRAY, NULL, "The snapshots to describe; null or [] for all." },
  { "AdditionalInformation", CIM_UINT32, P_IN | P_ARRAY, NULL, "2 (Parent Paths): fill ParentPathsList." },
  { "SnapshotInformation", CIM_STRING, P_OUT | P_ARRAY, "Msvm_VHDSnapshotInformation", "One per snapshot, oldest first." },
  JOBREF, END,
};
static const struct param p_set_snapshot_info[] = {
  { "Information", CIM_STRING, P_IN, "Msvm_VHDSnapshotInformation",
    "FilePath and SnapshotId name the record; CreationTime may change; a new record takes SnapshotPath or ResilientChangeTrackingId." },
  JOBREF, END,
};
static const struct param p_delete_snapshot[] = {
  { "VHDSetPath", CIM_STRING, P_IN, NULL, "The VHD Set (.vhds)." },
  { "SnapshotId", CIM_STRING, P_IN, NULL, "The snapshot (a GUID)." },
  { "PersistReferenceSnapshot", CIM_BOOLEAN, P_IN, NULL, "Keep a reference point in its place (usable as a LimitId)." },
  JOBREF, END,
};
static const struct param p_optimize_set[] = {
  { "VHDSetPath", CIM_STRING, P_IN, NULL, "The VHD Set (.vhds)." },
  JOBREF, END,
};
static const struct param p_take_snapshot[] = {
  { "VHDSetPath", CIM_STRING, P_IN, NULL, "The VHD Set (.vhds); its leaf may be open and being written." },
  { "SnapshotId", CIM_STRING, P_OUT, NULL, "The new snapshot's ID (a GUID)." },
  JOBREF, END,
};
static const struct param p_apply_snapshot[] = {
  { "VHDSetPath", CIM_STRING, P_IN, NULL, "The VHD Set (.vhds)." },
  { "SnapshotId", CIM_STRING, P_IN, NULL, "The snapshot to revert the leaf to." },
  JOBREF, END,
};
static const struct param p_open_disks[] = {
  { "Paths", CIM_STRING, P_OUT | P_ARRAY, NULL,
    "The real paths of the disks the service holds open (their parents are open too, read-only)." },
  JOBREF, END,
};
static const struct param p_job_state[] = {
  { "InstanceID", CIM_STRING, P_IN, NULL, "The job (in CIM-XML, the instance the method is called on)." },
  { "RequestedState", CIM_UINT16, P_IN, NULL, "4 Terminate or 5 Kill: cancel the job." },
  { "TimeoutPeriod", CIM_DATETIME, P_IN, NULL, "Ignored (null allowed)." },
  JOBREF, END,
};
static const struct param p_job_error[] = {
  { "InstanceID", CIM_STRING, P_IN, NULL, "The job." },
  { "Error", CIM_STRING, P_OUT, "Msvm_Error", "What went wrong (Message, MessageID = the return code)." },
  END,
};

#define M(k, n, p, j, c, d, f, ...) { .klass = k, .name = n, .params = p, .job = j, .codes = c, \
                                    .doc = d, .fn = f, __VA_ARGS__ }
const struct method vhdkitd_methods[] = {
  M (IMS, "CreateVirtualHardDisk", p_create, true, std_codes,
    "Create a new VHDX: fixed, dynamic or differencing.", m_create),
  M (IMS, "GetVirtualHardDiskSettingData", p_setting, false, sync_codes,
    "The settings of a disk, as an embedded Msvm_VirtualHardDiskSettingData.", m_get_setting_data),
  M (IMS, "GetVirtualHardDiskState", p_state, false, sync_codes,
    "The state of a disk (file size, minimum size, fragmentation), as an embedded Msvm_VirtualHardDiskState.",
    m_get_state),
  M (IMS, "ValidateVirtualHardDisk", p_path, true, std_codes,
    "Check a disk and its parent chain without changing anything; the job fails naming the first problem.",
    m_validate),
  M (IMS, "ConvertVirtualHardDisk", p_convert, true, std_codes,
    "Copy a disk into a new one of another type (sparse-aware).", m_convert),
  M (IMS, "ResizeVirtualHardDisk", p_resize, true, std_codes,
    "Grow or shrink a disk (a shrink only over a tail that holds no data).", m_resize),
  M (IMS, "MergeVirtualHardDisk", p_merge, true, std_codes,
    "Merge a differencing disk into its parent; neither may be in use by a call.", m_merge),
  M (IMS, "ConvertVirtualHardDiskToVHDSet", p_to_set, true, std_codes,
    "Make a VHDX the base of a new VHD Set of the same name (.vhds).", m_to_set),
  M (IMS, "GetVHDSetInformation", p_set_info, false, sync_codes,
    "What a VHD Set holds, as an embedded Msvm_VHDSetInformation.", m_set_info),
  M (IMS, "GetVHDSnapshotInformation", p_snapshot_info, false, sync_codes,
    "The snapshots of a VHD Set, each an embedded Msvm_VHDSnapshotInformation.", m_snapshot_info),
  M (IMS, "SetVHDSnapshotInformation", p_set_snapshot_info, false, sync_codes,
    "Change a snapshot record's creation time, or add a record.", m_set_snapshot_info),
  M (IMS, "DeleteVHDSnapshot", p_delete_snapshot, true, std_codes,
    "Delete a snapshot of a VHD Set (its image is merged away when nothing else needs it).", m_delete_snapshot),
  M (IMS, "OptimizeVHDSet", p_optimize_set, true, std_codes,
    "Finish an interrupted set operation and remove what no snapshot needs.", m_optimize_set),
  M (IMS, "GetVirtualDiskChanges", p_changes, false, std_codes,
    "The byte ranges changed since a reference point (DESIGN.md §3), for the whole window in one answer; "
    "an answer that takes longer than 20 s becomes a job, whose instance then carries the out-parameters.",
    m_changes, .deadline_ms = 20000),
  M (CTS, "SetChangeTracking", p_set_tracking, false, sync_codes,
    "Start or stop resilient change tracking on a disk.", m_set_tracking),
  M (CTS, "CreateReferencePoint", p_refpoint, false, sync_codes,
    "Seal the current changes: a new reference point, on a disk that may be being written.", m_reference_point),
  M (CTS, "GetChangeTrackingState", p_tracking_state, false, sync_codes,
    "Whether a disk is tracked, and its newest reference point.", m_tracking_state),
  M (VSS, "TakeSnapshot", p_take_snapshot, false, sync_codes,
    "Take a snapshot of a VHD Set whose leaf may be open and being written.", m_take_snapshot),
  M (VSS, "ApplySnapshot", p_apply_snapshot, false, sync_codes,
    "Revert a VHD Set's leaf to a snapshot (the daemon's open handle follows).", m_apply_snapshot),
  M (VKS, "ListOpenDisks", p_open_disks, false, sync_codes,
    "The disks the service holds open; a local `vhdkit` that finds one in use names this service's socket.",
    m_open_disks),
  M (JOB, "RequestStateChange", p_job_state, false, job_state_codes,
    "Cancel a running job (4 Terminate, 5 Kill); the disk is left as its crash-safety rules allow.",
    m_job_request_state),
  M (JOB, "GetError", p_job_error, false, sync_codes,
    "The error of a finished job, as an embedded Msvm_Error.", m_job_get_error),
};
const size_t vhdkitd_nmethods = sizeof vhdkitd_methods / sizeof vhdkitd_methods[0];

const struct method *
method_find (const char *klass, const char *name)
{
  for (size_t i = 0; i < vhdkitd_nmethods; i++)
    if (strcmp (vhdkitd_methods[i].klass, klass) == 0 && strcmp (vhdkitd_methods[i].name, name) == 0)
      return &vhdkitd_methods[i];
  return NULL;
}

bool
class_known (const char *klass)
{
  for (size_t i = 0; i < vhdkitd_nmethods; i++)
    if (strcmp (vhdkitd_methods[i].klass, klass) == 0)
      return true;
  return false;
}

/* ---- docs/API.md ---- */

static const char *
type_name (const struct param *p)
{
  switch (p->type) {
  case CIM_STRING: return p->klass ? "string (embedded instance)" : "string";
  case CIM_BOOLEAN: return "boolean";
  case CIM_UINT16: return "uint16";
  case CIM_UINT32: return "uint32";
  case CIM_UINT64: return "uint64";
  case CIM_DATETIME: return "datetime";
  case CIM_REFERENCE: return "REF";
  }
  return "?";
}

void
api_doc_print (FILE *f)
{
  const char *last = "";
  fprintf (f, "# vhdkitd API reference\n\n"
           "Printed by `vhdkitd --api-doc` from the daemon's method table; a test\n"
           "fails when this file and the table differ. The doors are described in\n"
           "docs/vhdkitd.8.md. Over JSON a method is `POST /%s/<Class>/<Method>`\n"
           "with the in-parameters as one JSON object; the answer holds\n"
           "`ReturnValue`, the out-parameters, `Job` (the job's path or null) and\n"
           "`ErrorDescription`. An embedded instance is a JSON object with its\n"
           "class in `__CLASS`.\n", VHDKITD_NAMESPACE);
  for (size_t i = 0; i < vhdkitd_nmethods; i++) {
    const struct method *m = &vhdkitd_methods[i];
    if (strcmp (m->klass, last) != 0) {
      fprintf (f, "\n## %s\n", m->klass);
      last = m->klass;
    }
    fprintf (f, "\n### %s\n\n%s %s\n\n", m->name, m->doc,
             m->job ? "Runs as a job: answers 4096 and a Job at once." :
             m->deadline_ms ? "Answers when done, or with 4096 and a Job when slow." : "Answers at once.");
    fprintf (f, "| Parameter | Direction | CIM type | Meaning |\n|---|---|---|---|\n");
    for (const struct param *p = m->params; p->name; p++)
      fprintf (f, "| %s | %s | %s%s%s%s | %s |\n", p->name, p->flags & P_IN ? "in" : "out", type_name (p),
               p->flags & P_ARRAY ? "[]" : "", p->klass ? ": " : "", p->klass ? p->klass : "", p->doc);
    fprintf (f, "\nReturn codes:");
    for (const uint32_t *rc = m->codes; rc == m->codes || *rc; rc++)
      fprintf (f, "%s %" PRIu32 " (%s)", rc == m->codes ? "" : ",", *rc,
               *rc == 4097 ? "Invalid State Transition" : rc_description (*rc));
    fprintf (f, ".\n");
  }
}

/* vhdkit info: the properties of an image under their Msvm names
 * (Msvm_VirtualHardDiskSettingData / Msvm_VirtualHardDiskState), plus a
 * few vhdkit extras, as aligned "Name: value" lines or one JSON object.
 *
 * A differencing image whose parent (or a further ancestor) is missing is
 * still described: the image is reopened without its chain and a warning
 * names the cause.
 *
 * Through vhdkitd (--connect) the same fields come from
 * GetVirtualHardDiskSettingData and GetVirtualHardDiskState; InUse and
 * Alignment are then the service's (it holds the disk open: InUse is
 * true).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "vhdkit.h"
#include "cli.h"
#include "remote.h"

static const char *
format_name (int format)
{
  switch (format) {
  case VHDKIT_FORMAT_VHD: return "VHD";
  case VHDKIT_FORMAT_VHDX: return "VHDX";
  case VHDKIT_FORMAT_VHDSET: return "VHDSet";
  case VHDKIT_FORMAT_RAW: return "Raw";
  default: return "Unknown";
  }
}

static const char *
type_name (int type)
{
  switch (type) {
  case VHDKIT_TYPE_FIXED: return "Fixed";
  case VHDKIT_TYPE_DYNAMIC: return "Dynamic";
  case VHDKIT_TYPE_DIFFERENCING: return "Differencing";
  default: return "Unknown";
  }
}

static const char *
nonempty (const char *s)
{
  return s && *s ? s : NULL;
}

/* Open PATH read-only.  If that fails with File not found, which may
 * mean a parent is missing, try the image alone: the caller describes a
 * differencing image anyway, with the reason left in *WHY (to be freed).
 * Any other failure (a broken linkage, a parent loop) is reported as is.
 * NULL after reporting. */
static struct vhdkit_disk *
open_image (const char *path, char **why)
{
  struct vhdkit_disk *d;

  *why = NULL;
  d = vhdkit_disk_open (path, VHDKIT_OPEN_RDONLY);
  if (d || vhdkit_get_error_code () != VHDKIT_RC_FILE_NOT_FOUND) {
    if (d == NULL)
      cli_lib_error ();
    return d;
  }
  *why = strdup (vhdkit_get_error ());
  if (*why == NULL) {
    cli_lib_error ();
    return NULL;
  }
  d = vhdkit_disk_open (path, VHDKIT_OPEN_RDONLY | VHDKIT_OPEN_NO_PARENT);
  if (d == NULL) {              /* the image itself is missing */
    cli_error (VHDKIT_RC_FILE_NOT_FOUND, "%s", *why);
    free (*why);
    *why = NULL;
  }
  return d;
}

/* The properties of I; ALIGNMENT and IN_USE are the caller's to say. */
static void
print_info (const struct vhdkit_disk_info *i, uint64_t alignment, bool in_use)
{
  const struct cli_field f[] = {
    { "Path", CLI_BOTH, CLI_STR, i->path, 0 },
    { "Format", CLI_TEXT, CLI_STR, format_name (i->format), 0 },
    { "Format", CLI_JSON, CLI_NUM, NULL, (uint64_t) i->format },
    { "FormatName", CLI_JSON, CLI_STR, format_name (i->format), 0 },
    { "Type", CLI_TEXT, CLI_STR, type_name (i->type), 0 },
    { "Type", CLI_JSON, CLI_NUM, NULL, (uint64_t) i->type },
    { "TypeName", CLI_JSON, CLI_STR, type_name (i->type), 0 },
    { "ParentPath", CLI_BOTH, CLI_STR, nonempty (i->parent_path), 0 },
    { "MaxInternalSize", CLI_BOTH, CLI_NUM, NULL, i->virtual_size },
    { "MinInternalSize", CLI_BOTH, CLI_NUM, NULL, i->min_internal_size },
    { "BlockSize", CLI_BOTH, CLI_NUM, NULL, i->block_size },
    { "LogicalSectorSize", CLI_BOTH, CLI_NUM, NULL, i->logical_sector_size },
    { "PhysicalSectorSize", CLI_BOTH, CLI_NUM, NULL, i->physical_sector_size },
    { "VirtualDiskId", CLI_BOTH, CLI_STR, nonempty (i->virtual_disk_id), 0 },
    { "FileSize", CLI_BOTH, CLI_NUM, NULL, i->file_size },
    { "FragmentationPercentage", CLI_BOTH, CLI_NUM, NULL,
      i->fragmentation_percentage },
    { "Alignment", CLI_BOTH, CLI_NUM, NULL, alignment },
    { "InUse", CLI_BOTH, CLI_BOOL, NULL, in_use },
    { "DataWriteGuid", CLI_BOTH, CLI_STR, nonempty (i->data_write_guid), 0 },
    { "ParentLinkage", CLI_BOTH, CLI_STR, nonempty (i->parent_linkage), 0 },
    { "ChainDepth", CLI_BOTH, CLI_NUM, NULL, i->chain_depth },
    { "AllocatedBytes", CLI_BOTH, CLI_NUM, NULL, i->allocated_bytes },
  };

  cli_print_fields (f, sizeof f / sizeof f[0], cli_json);
}

/* PATH through vhdkitd. */
static int
run_remote (const char *path)
{
  struct vhdkit_disk_info i = VHDKIT_DISK_INFO_INIT;
  json_t *p = remote_path (path), *sd = NULL, *st = NULL;
  const char *parent, *linkage, *id, *dwg;
  json_int_t type, format, size, bs, lss, pss, fsize, minsize, align, frag,
    depth, alloc;
  int in_use, r;

  if (p == NULL)
    return CLI_EXIT_FAILURE;
  r = remote_run (REMOTE_IMS, "GetVirtualHardDiskSettingData",
                  json_pack ("{s:O}", "Path", p), 0, &sd);
  if (r == CLI_EXIT_OK)
    r = remote_run (REMOTE_IMS, "GetVirtualHardDiskState",
                    json_pack ("{s:O}", "Path", p), 0, &st);
  json_decref (p);
  if (r == CLI_EXIT_OK)
    r = remote_unpack (sd, "GetVirtualHardDiskSettingData",
                       "{s:{s:I, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:s}}",
                       "SettingData", "Type", &type, "Format", &format,
                       "ParentPath", &parent, "ParentIdentifier", &linkage,
                       "MaxInternalSize", &size, "BlockSize", &bs,
                       "LogicalSectorSize", &lss, "PhysicalSectorSize", &pss,
                       "VirtualDiskId", &id);
  if (r == CLI_EXIT_OK)
    r = remote_unpack (st, "GetVirtualHardDiskState",
                       "{s:{s:I, s:b, s:I, s:I, s:I, s:s, s:I, s:I}}",
                       "State", "FileSize", &fsize, "InUse", &in_use,
                       "MinInternalSize", &minsize, "Alignment", &align,
                       "FragmentationPercentage", &frag,
                       "DataWriteGuid", &dwg, "ChainDepth", &depth,
                       "AllocatedBytes", &alloc);
  if (r == CLI_EXIT_OK) {
    i.path = path;              /* as named, as the local verb prints it */
    i.format = (int) format;
    i.type = (int) type;
    i.parent_path = parent;
    i.virtual_size = (uint64_t) size;
    i.min_internal_size = (uint64_t) minsize;
    i.block_size = (uint32_t) bs;
    i.logical_sector_size = (uint32_t) lss;
    i.physical_sector_size = (uint32_t) pss;
    i.file_size = (uint64_t) fsize;
    i.fragmentation_percentage = (unsigned) frag;
    i.chain_depth = (unsigned) depth;
    i.allocated_bytes = (uint64_t) alloc;
    snprintf (i.virtual_disk_id, sizeof i.virtual_disk_id, "%s", id);
    snprintf (i.data_write_guid, sizeof i.data_write_guid, "%s", dwg);
    snprintf (i.parent_linkage, sizeof i.parent_linkage, "%s", linkage);
    print_info (&i, (uint64_t) align, in_use);
  }
  json_decref (sd);
  json_decref (st);
  return r;
}

static int
run (int argc, char **argv)
{
  struct vhdkit_disk_info i = VHDKIT_DISK_INFO_INIT;
  struct vhdkit_disk *d;
  char **ops, *why;
  int r;
  struct cli_opt opts[] = {
    CLI_FLAG ("json", &cli_json, 1, "print one JSON object"),
    CLI_END,
  };

  r = cli_parse_args (&cli_verb_info, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE)
    return r;
  if (remote_socket ())
    return run_remote (ops[0]);

  d = open_image (ops[0], &why);
  if (d == NULL)
    return CLI_EXIT_FAILURE;
  if (vhdkit_disk_get_info (d, &i) == -1)
    r = cli_lib_error ();
  else if (why && i.type != VHDKIT_TYPE_DIFFERENCING)
    r = cli_error (VHDKIT_RC_FILE_NOT_FOUND, "%s", why);
  else {
    if (why)
      cli_warning ("parent chain not opened: %s", why);
    /* VHDX blocks sit at 1 MiB multiples; raw has no blocks. */
    print_info (&i, 1, false);
    r = CLI_EXIT_OK;
  }
  free (why);
  if (vhdkit_disk_close (d) == -1 && r == CLI_EXIT_OK)
    r = cli_lib_error ();
  return r;
}

const struct cli_verb cli_verb_info = {
  "info", "PATH", 1, "[--json]", "Show the properties of an image", run,
};

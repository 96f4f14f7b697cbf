/* vhdkit info: the properties of an image under their Msvm names
 * (Msvm_VirtualHardDiskSettingData / Msvm_VirtualHardDiskState), plus a
 * few vhdkit extras, as aligned "Name: value" lines or one JSON object.
 *
 * A differencing image whose parent (or a further ancestor) is missing is
 * still described: the image is reopened without its chain and a warning
 * names the cause.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "vhdkit.h"
#include "cli.h"

enum { TEXT = 1, JSON = 2, BOTH = 3 };

struct field {
  const char *name;
  int where;                    /* TEXT, JSON or BOTH */
  enum { STR, NUM, BOOL } kind;
  const char *str;              /* STR; NULL = absent */
  uint64_t num;                 /* NUM, BOOL */
};

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

static void
print_text (const struct field *f, size_t n)
{
  size_t i, width = 0;

  for (i = 0; i < n; i++) {
    if ((f[i].where & TEXT) && strlen (f[i].name) > width)
      width = strlen (f[i].name);
  }
  for (i = 0; i < n; i++) {
    int pad = (int) (width - strlen (f[i].name)) + 1;

    if (!(f[i].where & TEXT))
      continue;
    if (f[i].kind == STR && f[i].str == NULL)
      printf ("%s:\n", f[i].name);
    else if (f[i].kind == STR)
      printf ("%s:%*s%s\n", f[i].name, pad, "", f[i].str);
    else if (f[i].kind == NUM)
      printf ("%s:%*s%" PRIu64 "\n", f[i].name, pad, "", f[i].num);
    else
      printf ("%s:%*s%s\n", f[i].name, pad, "", f[i].num ? "true" : "false");
  }
}

static void
print_json (const struct field *f, size_t n)
{
  const char *sep = "{\n";
  size_t i;

  for (i = 0; i < n; i++) {
    if (!(f[i].where & JSON))
      continue;
    printf ("%s  ", sep);
    cli_json_string (stdout, f[i].name);
    printf (": ");
    if (f[i].kind == STR && f[i].str == NULL)
      printf ("null");
    else if (f[i].kind == STR)
      cli_json_string (stdout, f[i].str);
    else if (f[i].kind == NUM)
      printf ("%" PRIu64, f[i].num);
    else
      printf ("%s", f[i].num ? "true" : "false");
    sep = ",\n";
  }
  printf ("\n}\n");
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

static int
run (int argc, char **argv)
{
  struct vhdkit_disk_info i;
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

  d = open_image (ops[0], &why);
  if (d == NULL)
    return CLI_EXIT_FAILURE;
  if (vhdkit_disk_get_info (d, &i) == -1)
    r = cli_lib_error ();
  else if (why && i.type != VHDKIT_TYPE_DIFFERENCING)
    r = cli_error (VHDKIT_RC_FILE_NOT_FOUND, "%s", why);
  else {
    const struct field f[] = {
      { "Path", BOTH, STR, i.path, 0 },
      { "Format", TEXT, STR, format_name (i.format), 0 },
      { "Format", JSON, NUM, NULL, (uint64_t) i.format },
      { "FormatName", JSON, STR, format_name (i.format), 0 },
      { "Type", TEXT, STR, type_name (i.type), 0 },
      { "Type", JSON, NUM, NULL, (uint64_t) i.type },
      { "TypeName", JSON, STR, type_name (i.type), 0 },
      { "ParentPath", BOTH, STR, nonempty (i.parent_path), 0 },
      { "MaxInternalSize", BOTH, NUM, NULL, i.virtual_size },
      { "MinInternalSize", BOTH, NUM, NULL, i.min_internal_size },
      { "BlockSize", BOTH, NUM, NULL, i.block_size },
      { "LogicalSectorSize", BOTH, NUM, NULL, i.logical_sector_size },
      { "PhysicalSectorSize", BOTH, NUM, NULL, i.physical_sector_size },
      { "VirtualDiskId", BOTH, STR, nonempty (i.virtual_disk_id), 0 },
      { "FileSize", BOTH, NUM, NULL, i.file_size },
      { "FragmentationPercentage", BOTH, NUM, NULL,
        i.fragmentation_percentage },
      /* VHDX blocks sit at 1 MiB multiples; raw has no blocks. */
      { "Alignment", BOTH, NUM, NULL, 1 },
      { "InUse", BOTH, BOOL, NULL, 0 },
      { "DataWriteGuid", BOTH, STR, nonempty (i.data_write_guid), 0 },
      { "ParentLinkage", BOTH, STR, nonempty (i.parent_linkage), 0 },
      { "ChainDepth", BOTH, NUM, NULL, i.chain_depth },
      { "AllocatedBytes", BOTH, NUM, NULL, i.allocated_bytes },
    };
    size_t n = sizeof f / sizeof f[0];

    if (why)
      cli_warning ("parent chain not opened: %s", why);
    if (cli_json)
      print_json (f, n);
    else
      print_text (f, n);
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

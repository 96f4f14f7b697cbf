/* The CIM classes vhdkitd serves (vhdkitd.h, docs/vhdkitd.8.md "CIM-XML").
 *
 * Two kinds:
 *   - service classes: every class of the method table except the ones
 *     listed below.  They share one property list (CIM_Service's keys
 *     and state) and have exactly one instance, built here;
 *   - the classes whose instances the methods and jobs build as JSON
 *     objects (methods.c, jobs.c): their property lists are written
 *     once, in `plain[]` below, and are the only place the CIM-XML door
 *     learns their CIM types from.
 * The JSON side builds those instances by name, so the two must agree:
 * classes_check (at start) names every embedded class of the method
 * table that has no entry here, and the CIM-XML door logs any property
 * an instance carries that its class does not declare
 * (tests/daemon/test-daemon-wbemcli.sh fails on either line).
 *
 * Methods come from the method table only: a class's METHODs are the
 * table's entries for it.
 *
 * Built once by classes_init before the doors open; read-only after.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "vhdkitd.h"

#define K CP_KEY
#define A CP_ARRAY
#define PEND { NULL, 0, 0, NULL, NULL }

/* CIM_Service's keys and the state every service instance reports. */
static const struct cim_prop service_props[] = {
  { "CreationClassName", CIM_STRING, K, NULL, "The class of this instance." },
  { "Name", CIM_STRING, K, NULL, "The service's name (vhdsvc for Msvm_ImageManagementService)." },
  { "SystemCreationClassName", CIM_STRING, K, NULL, "Msvm_ComputerSystem." },
  { "SystemName", CIM_STRING, K, NULL, "The host's name (gethostname)." },
  { "Caption", CIM_STRING, 0, NULL, NULL },
  { "Description", CIM_STRING, 0, NULL, NULL },
  { "ElementName", CIM_STRING, 0, NULL, NULL },
  { "EnabledState", CIM_UINT16, 0, "2=Enabled,3=Disabled", NULL },
  { "RequestedState", CIM_UINT16, 0, "12=Not Applicable", NULL },
  { "EnabledDefault", CIM_UINT16, 0, "2=Enabled", NULL },
  { "HealthState", CIM_UINT16, 0, "5=OK", NULL },
  { "OperationalStatus", CIM_UINT16, A, "2=OK,6=Error,10=Stopping", NULL },
  { "Started", CIM_BOOLEAN, 0, NULL, NULL },
  PEND,
};

/* As jobs.c builds them (view_locked). */
static const struct cim_prop job_props[] = {
  { "InstanceID", CIM_STRING, K, NULL, "The job's GUID." },
  { "Name", CIM_STRING, 0, NULL, "The method that runs as this job." },
  { "Caption", CIM_STRING, 0, NULL, NULL },
  { "Description", CIM_STRING, 0, NULL, NULL },
  { "ElementName", CIM_STRING, 0, NULL, NULL },
  { "JobType", CIM_UINT16, 0, NULL, NULL },
  { "JobState", CIM_UINT16, 0, "2=New,3=Starting,4=Running,5=Suspended,6=Shutting Down,7=Completed,"
    "8=Terminated,9=Killed,10=Exception,11=Service", "4 while it runs, then 7, 8, 9 or 10." },
  { "JobStatus", CIM_STRING, 0, NULL, NULL },
  { "PercentComplete", CIM_UINT16, 0, NULL, NULL },
  { "ErrorCode", CIM_UINT16, 0, NULL, "0, or the return code the method failed with." },
  { "ErrorDescription", CIM_STRING, 0, NULL, NULL },
  { "ErrorSummaryDescription", CIM_STRING, 0, NULL, NULL },
  { "TimeSubmitted", CIM_DATETIME, 0, NULL, NULL },
  { "StartTime", CIM_DATETIME, 0, NULL, NULL },
  { "ElapsedTime", CIM_DATETIME, 0, NULL, NULL },
  { "TimeBeforeRemoval", CIM_DATETIME, 0, NULL, NULL },
  { "DeleteOnCompletion", CIM_BOOLEAN, 0, NULL, NULL },
  { "Cancellable", CIM_BOOLEAN, 0, NULL, NULL },
  { "OperationalStatus", CIM_UINT16, A, NULL, NULL },
  { "StatusDescriptions", CIM_STRING, A, NULL, NULL },
  { "HealthState", CIM_UINT16, 0, NULL, NULL },
  { "JobRunTimes", CIM_UINT32, 0, NULL, NULL },
  { "LocalOrUtcTime", CIM_UINT16, 0, "1=Local Time,2=UTC Time", NULL },
  { "Priority", CIM_UINT32, 0, NULL, NULL },
  PEND,
};

/* As methods.c builds them (m_get_setting_data; setting_data reads them). */
static const struct cim_prop vhdsd_props[] = {
  { "InstanceID", CIM_STRING, K, NULL, NULL },
  { "Caption", CIM_STRING, 0, NULL, NULL },
  { "Description", CIM_STRING, 0, NULL, NULL },
  { "ElementName", CIM_STRING, 0, NULL, NULL },
  { "Type", CIM_UINT16, 0, "2=Fixed,3=Dynamic,4=Differencing", NULL },
  { "Format", CIM_UINT16, 0, "2=VHD,3=VHDX,4=VHDSet", NULL },
  { "Path", CIM_STRING, 0, NULL, NULL },
  { "ParentPath", CIM_STRING, 0, NULL, NULL },
  { "ParentTimestamp", CIM_DATETIME, 0, NULL, NULL },
  { "ParentIdentifier", CIM_STRING, 0, NULL, NULL },
  { "MaxInternalSize", CIM_UINT64, 0, NULL, "The virtual size in bytes." },
  { "BlockSize", CIM_UINT32, 0, NULL, NULL },
  { "LogicalSectorSize", CIM_UINT32, 0, NULL, NULL },
  { "PhysicalSectorSize", CIM_UINT32, 0, NULL, NULL },
  { "VirtualDiskId", CIM_STRING, 0, NULL, NULL },
  { "DataAlignment", CIM_UINT64, 0, NULL, NULL },
  { "PmemAddressAbstractionType", CIM_UINT16, 0, "0=None,1=BTT,65535=Unknown", NULL },
  { "IsPmemCompatible", CIM_BOOLEAN, 0, NULL, NULL },
  PEND,
};

/* As methods.c builds them (m_get_state). */
static const struct cim_prop vhdstate_props[] = {
  { "FileSize", CIM_UINT64, 0, NULL, NULL },
  { "InUse", CIM_BOOLEAN, 0, NULL, NULL },
  { "MinInternalSize", CIM_UINT64, 0, NULL, NULL },
  { "PhysicalSectorSize", CIM_UINT32, 0, NULL, NULL },
  { "Alignment", CIM_UINT32, 0, "0=512 bytes,1=4 KiB", NULL },
  { "FragmentationPercentage", CIM_UINT32, 0, NULL, NULL },
  { "Timestamp", CIM_DATETIME, 0, NULL, NULL },
  PEND,
};

/* As methods.c builds them (m_job_get_error). */
static const struct cim_prop error_props[] = {
  { "ErrorType", CIM_UINT16, 0, "0=Unknown,1=Other,2=Communications Error,3=Quality of Service Error,"
    "4=Software Error,5=Hardware Error,6=Environmental Error,7=Security Error,8=Oversubscription Error,"
    "9=Unavailable Resource Error,10=Unsupported Operation Error", NULL },
  { "OtherErrorType", CIM_STRING, 0, NULL, NULL },
  { "OwningEntity", CIM_STRING, 0, NULL, NULL },
  { "MessageID", CIM_STRING, 0, NULL, "The return code the job failed with." },
  { "Message", CIM_STRING, 0, NULL, NULL },
  { "MessageArguments", CIM_STRING, A, NULL, NULL },
  { "PerceivedSeverity", CIM_UINT16, 0, NULL, NULL },
  { "ProbableCause", CIM_UINT16, 0, NULL, NULL },
  { "ProbableCauseDescription", CIM_STRING, 0, NULL, NULL },
  { "RecommendedActions", CIM_STRING, A, NULL, NULL },
  { "ErrorSource", CIM_STRING, 0, NULL, NULL },
  { "ErrorSourceFormat", CIM_UINT16, 0, "0=Unknown,1=Other,2=CIMObjectHandle", NULL },
  { "OtherErrorSourceFormat", CIM_STRING, 0, NULL, NULL },
  { "CIMStatusCode", CIM_UINT32, 0, NULL, NULL },
  { "CIMStatusCodeDescription", CIM_STRING, 0, NULL, NULL },
  PEND,
};

/* The VHD Set methods' embedded instances (Microsoft's lists). */
static const struct cim_prop vhdset_props[] = {
  { "Path", CIM_STRING, 0, NULL, "The .vhds file." },
  { "SnapshotIdList", CIM_STRING, A, NULL, NULL },
  { "AllPaths", CIM_STRING, A, NULL, NULL },
  PEND,
};

static const struct cim_prop vhdsnap_props[] = {
  { "FilePath", CIM_STRING, 0, NULL, "The .vhds file." },
  { "SnapshotId", CIM_STRING, 0, NULL, NULL },
  { "SnapshotPath", CIM_STRING, 0, NULL, NULL },
  { "ParentPathsList", CIM_STRING, A, NULL, NULL },
  { "CreationTime", CIM_DATETIME, 0, NULL, NULL },
  { "ResilientChangeTrackingId", CIM_STRING, 0, NULL, NULL },
  PEND,
};

static const struct cim_class plain[] = {
  { "Msvm_ConcreteJob", "A method that runs in the background (jobs.c).", job_props, NULL },
  { "Msvm_VirtualHardDiskSettingData", "The settings of a virtual hard disk.", vhdsd_props, NULL },
  { "Msvm_VirtualHardDiskState", "The state of a virtual hard disk.", vhdstate_props, NULL },
  { "Msvm_Error", "What went wrong in a job.", error_props, NULL },
  { "Msvm_VHDSetInformation", "A VHD Set.", vhdset_props, NULL },
  { "Msvm_VHDSnapshotInformation", "A snapshot of a VHD Set.", vhdsnap_props, NULL },
};
#define NPLAIN (sizeof plain / sizeof plain[0])

#define MAX_CLASSES 64
static struct cim_class all[MAX_CLASSES];
static size_t nall;
static char hostname[256];

static const struct cim_class *
plain_find (const char *name)
{
  for (size_t i = 0; i < NPLAIN; i++)
    if (strcasecmp (plain[i].name, name) == 0) return &plain[i];
  return NULL;
}

void
classes_init (void)
{
  if (gethostname (hostname, sizeof hostname) == -1 || !*hostname)
    snprintf (hostname, sizeof hostname, "localhost");
  hostname[sizeof hostname - 1] = 0;
  nall = 0;
  /* Service classes in the table's order, then the others. */
  for (size_t i = 0; i < vhdkitd_nmethods && nall < MAX_CLASSES - NPLAIN; i++) {
    const char *k = vhdkitd_methods[i].klass;
    bool seen = plain_find (k) != NULL;
    for (size_t j = 0; j < nall && !seen; j++) seen = strcmp (all[j].name, k) == 0;
    if (seen) continue;
    all[nall++] = (struct cim_class) {
      .name = k,
      .doc = strcmp (k, "Msvm_ImageManagementService") == 0
        ? "Creates, inspects and changes virtual hard disks (vhdkitd)." : "A vhdkitd service.",
      .props = service_props,
      .service_name = strcmp (k, "Msvm_ImageManagementService") == 0 ? "vhdsvc" : k,
    };
  }
  for (size_t i = 0; i < NPLAIN; i++) all[nall++] = plain[i];
}

size_t classes_count (void) { return nall; }
const struct cim_class *classes_at (size_t i) { return i < nall ? &all[i] : NULL; }
const char *classes_hostname (void) { return hostname; }

const struct cim_class *
classes_find (const char *name)
{
  for (size_t i = 0; name && i < nall; i++)
    if (strcasecmp (all[i].name, name) == 0) return &all[i];
  return NULL;
}

const struct cim_prop *
classes_prop (const struct cim_class *k, const char *name)
{
  for (const struct cim_prop *p = k->props; name && p->name; p++)
    if (strcasecmp (p->name, name) == 0) return p;
  return NULL;
}

json_t *
classes_service_instance (const struct cim_class *k)
{
  bool ims = strcmp (k->name, "Msvm_ImageManagementService") == 0;
  bool up = !jobs_stopping ();
  char caption[160];
  snprintf (caption, sizeof caption, "%s", ims ? "vhdkit Image Management Service" : k->name);
  return json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:[i], s:b}",
                    "__CLASS", k->name, "CreationClassName", k->name, "Name", k->service_name,
                    "SystemCreationClassName", "Msvm_ComputerSystem", "SystemName", hostname,
                    "Caption", caption, "ElementName", caption, "Description", k->doc,
                    "EnabledState", up ? 2 : 3, "RequestedState", 12, "EnabledDefault", 2, "HealthState", 5,
                    "OperationalStatus", up ? 2 : 10, "Started", up);
}

int
classes_check (void)
{
  int problems = 0;
  for (size_t i = 0; i < vhdkitd_nmethods; i++) {
    const struct method *m = &vhdkitd_methods[i];
    for (const struct param *p = m->params; p->name; p++) {
      if (p->type != CIM_STRING || !p->klass) continue;
      if (!plain_find (p->klass)) {
        vlog ("class table: %s.%s parameter %s embeds %s, which daemon/classes.c does not describe",
              m->klass, m->name, p->name, p->klass);
        problems++;
      }
    }
  }
  return problems;
}

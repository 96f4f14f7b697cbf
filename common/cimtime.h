/* CIM datetimes (DSP0004): "yyyymmddHHMMSS.mmmmmmsUUU", UTC offset UUU
 * in minutes, from and to nanoseconds since 1970-01-01 UTC.  Used by
 * vhdkitd (Msvm_* properties) and by the CLI talking to it. */
#ifndef VHDKIT_CIMTIME_H
#define VHDKIT_CIMTIME_H

#include <stddef.h>
#include <stdint.h>

#define CIM_DATETIME_LEN 25      /* characters, without the NUL */

/* Format NS as UTC ("+000"); N should be at least 26. */
void cim_datetime_format (int64_t ns, char *buf, size_t n);
/* Parse S (exactly 25 characters, any UTC offset); 0 or -1. */
int cim_datetime_parse (const char *s, int64_t *ns);

#endif

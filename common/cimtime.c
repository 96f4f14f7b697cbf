/* CIM datetimes (cimtime.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cimtime.h"

void
cim_datetime_format (int64_t ns, char *buf, size_t n)
{
  time_t t = (time_t) (ns / 1000000000);
  struct tm tm;
  gmtime_r (&t, &tm);
  snprintf (buf, n, "%04d%02d%02d%02d%02d%02d.%06d+000", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
            tm.tm_hour, tm.tm_min, tm.tm_sec, (int) ((ns % 1000000000) / 1000));
}

int
cim_datetime_parse (const char *s, int64_t *ns)
{
  struct tm tm;
  unsigned long us;
  char sign;
  int off;
  memset (&tm, 0, sizeof tm);
  if (strlen (s) != CIM_DATETIME_LEN ||
      sscanf (s, "%4d%2d%2d%2d%2d%2d.%6lu%c%3d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
              &tm.tm_min, &tm.tm_sec, &us, &sign, &off) != 9 || (sign != '+' && sign != '-'))
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  time_t t = timegm (&tm);
  if (t == (time_t) -1) return -1;
  t -= (sign == '+' ? 1 : -1) * off * 60;
  *ns = (int64_t) t * 1000000000 + (int64_t) us * 1000;
  return 0;
}

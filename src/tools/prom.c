#include "tools/prom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool hr_prom_value(const char *text, const char *series, double *out) {
    size_t n = strlen(series);
    for (const char *line = text; line; line = strchr(line, '\n')) {
        if (*line == '\n') line++;
        if (strncmp(line, series, n) != 0 || (line[n] != ' ' && line[n] != '\t')) continue;
        char *end;
        double v = strtod(line + n, &end);
        if (end == line + n || isnan(v)) return false;
        *out = v;
        return true;
    }
    return false;
}
